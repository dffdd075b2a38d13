"""The collector: steps the training envs and turns their steps into replay transitions.

It owns the vector env (Gymnasium's, ``SAME_STEP`` autoreset), the current observations, each
env's unfinished episode (return, length and actions: what a resume replays) and the n-step
accumulator. A finished episode's s' is its real final observation, never the reset one
(:func:`deepq.run.envs.final_observations`), and ``terminated`` and ``truncated`` travel apart.

What is learned from may differ from what is played: ``clip_rewards`` stores the reward's sign
and ``life_loss_terminal`` stores a lost life as terminal, while returns count raw scores and
whole games. With stacked frames (Atari) the collector writes each new frame once into the
:class:`~deepq.dqn.frame_replay.FrameReplay` and stores transitions as frame ids.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from deepq.dqn.config import DQNConfig
from deepq.dqn.frame_replay import FrameReplay
from deepq.errors import TrainingDiverged, UsageError
from deepq.run.atari import life_lost
from deepq.run.envs import final_observations, make_vector_env


class EnvStep(NamedTuple):
    """What one step of every env gives the loop."""

    transitions: tuple[np.ndarray, ...] | None  # complete transitions, as ReplayBuffer.add takes
    finished: list[tuple[float, int]]  # (return, length) of each episode that just ended


class Collector:
    """``num_envs`` envs stepped together, their episodes, and the transitions they make."""

    def __init__(self, config: DQNConfig):
        c = config
        self.env_id = c.env_id
        self.envs = make_vector_env(c.env_id, c.num_envs, c.max_episode_steps, c.time_feature,
                                    "frames", c.sticky_actions)  # fmt: skip
        self.observation_space = self.envs.single_observation_space
        self.n_actions = int(self.envs.single_action_space.n)
        self.spec = self.envs.envs[0].spec
        self.n_step = NStepAccumulator(c.n_step, c.gamma, c.num_envs)
        self.time_limit_terminal = c.time_limit_terminal
        self.clip_rewards, self.life_loss_terminal = c.clip_rewards, c.life_loss_terminal
        self.lives = np.zeros(c.num_envs, dtype=np.int64)
        self.episode_return = np.zeros(c.num_envs)
        self.episode_length = np.zeros(c.num_envs, dtype=np.int64)
        self.episode_actions: list[list[int]] = [[] for _ in range(c.num_envs)]
        self.obs: np.ndarray = np.empty(0)
        # With stacked frames: where new frames go, the ids of each env's current stack and of
        # the frames of its unfinished episode (what a resume rebuilds the stacks from).
        self.frame_store: FrameReplay | None = None
        self.stack_ids = np.zeros((c.num_envs, 0), dtype=np.int64)
        self.episode_frame_ids: list[list[int]] = [[] for _ in range(c.num_envs)]

    def store_frames_in(self, replay: FrameReplay) -> None:
        """Stacked frames: write each new frame once into ``replay`` and emit frame ids."""
        self.frame_store = replay

    def reset(self, seed: int) -> None:
        """Sub-env i gets base seed ``seed + i``, one seed per episode from there."""
        self.obs, infos = self.envs.reset(seed=seed)
        if self.life_loss_terminal:
            if "lives" not in infos:
                raise UsageError(f"life_loss_terminal=true, but {self.env_id} reports no lives")
            self.lives = np.asarray(infos["lives"], dtype=np.int64).copy()
        if self.frame_store is not None:
            first = self.frame_store.add_frames(self.obs[..., -1])
            self.stack_ids = np.repeat(first[:, None], self.obs.shape[-1], axis=1)
            self.episode_frame_ids = [[int(f)] for f in first]

    def step(self, actions: np.ndarray, env_steps: int) -> EnvStep:
        """Step every env with ``actions``; ``env_steps`` (the count after this step) only names
        the step in the error raised for a non-finite reward or observation."""
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        done = terminated | truncated
        real_next_obs = final_observations(next_obs, done, infos)
        if not (np.isfinite(rewards).all() and np.isfinite(real_next_obs).all()):
            what = "reward" if not np.isfinite(rewards).all() else "observation"
            raise TrainingDiverged(
                f"{self.env_id} returned a non-finite {what} at env step {env_steps}"
            )
        learn_rewards = np.sign(rewards) if self.clip_rewards else rewards
        if self.time_limit_terminal:  # the robust-DQN post's `if step == max_steps: done = True`
            terminated, truncated = done, np.zeros_like(truncated)
        if self.life_loss_terminal:  # Mnih et al. 2015: learn as if a lost life ended the game
            terminated = terminated | life_lost(self.lives, infos, done)
            self.lives = np.asarray(infos["lives"], dtype=np.int64).copy()
        obs, real_next = self.obs, real_next_obs
        if self.frame_store is not None:
            obs, real_next = self._store_frames(real_next_obs, next_obs, done)
        transitions = self.n_step.push(
            obs, actions, learn_rewards, real_next, terminated, truncated
        )
        self.obs = next_obs
        self.episode_return += rewards
        self.episode_length += 1
        for i, action in enumerate(actions.tolist()):
            self.episode_actions[i].append(action)
        finished = []
        for i in np.flatnonzero(done):
            finished.append((self.episode_return[i], self.episode_length[i]))
            self.episode_return[i], self.episode_length[i] = 0.0, 0
            self.episode_actions[i].clear()
        return EnvStep(transitions, finished)

    def _store_frames(
        self, real_next_obs: np.ndarray, next_obs: np.ndarray, done: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Write this step's new frames (and the first frame of each episode that starts); the
        frame ids of obs and s', as the transitions hold them."""
        assert self.frame_store is not None
        obs_ids = self.stack_ids
        new = self.frame_store.add_frames(real_next_obs[..., -1])
        next_ids = np.concatenate([obs_ids[:, 1:], new[:, None]], axis=1)
        self.stack_ids = next_ids.copy()
        for i, frame_id in enumerate(new.tolist()):
            self.episode_frame_ids[i].append(frame_id)
        restarted = np.flatnonzero(done)
        if len(restarted):
            first = self.frame_store.add_frames(next_obs[restarted, ..., -1])
            self.stack_ids[restarted] = first[:, None]
            for i, frame_id in zip(restarted.tolist(), first.tolist(), strict=True):
                self.episode_frame_ids[i] = [frame_id]
        return obs_ids, next_ids

    def state_arrays(self, with_frames: bool = True) -> dict[str, np.ndarray]:
        """Each env's unfinished episode: its length and actions so far (padded with zeros), and
        with stacked frames the ids of its frames (when the replay that holds them is saved)."""
        arrays = {
            "envs/episode_actions": _padded(self.episode_actions, 1),
            "envs/episode_length": self.episode_length.copy(),
        }
        if self.frame_store is not None and with_frames:
            arrays["envs/episode_frame_ids"] = _padded(self.episode_frame_ids, 2)
        return arrays

    def state_meta(self) -> dict[str, Any]:
        """Each env's seeds: its base seed and how many episodes it has started."""
        return {
            "base_seeds": [int(env.base_seed) for env in self.envs.envs],
            "episodes_started": [int(env.episode) for env in self.envs.envs],
        }

    def restore(
        self, meta: dict[str, Any], arrays: dict[str, np.ndarray], frames_saved: bool = True
    ) -> None:
        """Put every env back into its unfinished episode: reset with that episode's seed and
        replay its actions, refilling the episode's return, length and pending n-step entries.
        With stacked frames, ``frames_saved`` says the replay (and so each episode's frames)
        was saved; otherwise the episode's frames are written again as it replays."""
        num_envs = len(self.envs.envs)
        lengths = arrays["envs/episode_length"]
        all_actions = arrays["envs/episode_actions"]
        if len(meta["base_seeds"]) != num_envs or len(meta["episodes_started"]) != num_envs:
            raise ValueError(f"the checkpoint holds seeds for other than the {num_envs} envs")
        if lengths.dtype != np.int64 or lengths.shape != (num_envs,):
            raise ValueError(f"envs/episode_length must be int64[{num_envs}]")
        if all_actions.dtype != np.int64 or all_actions.ndim != 2 or len(all_actions) != num_envs:
            raise ValueError(f"envs/episode_actions must be int64[{num_envs}, steps]")
        if ((lengths < 0) | (lengths > all_actions.shape[1])).any():
            raise ValueError("envs/episode_length does not fit envs/episode_actions")
        if all_actions.size and not (0 <= all_actions.min() <= all_actions.max() < self.n_actions):
            raise ValueError(f"envs/episode_actions holds actions outside [0, {self.n_actions})")
        frame_ids = arrays.get("envs/episode_frame_ids")
        if self.frame_store is not None and frames_saved and frame_ids is None:
            raise ValueError("envs/episode_frame_ids is missing")
        if self.frame_store is not None and frame_ids is not None:
            if frame_ids.dtype != np.int64 or frame_ids.shape[:1] != (num_envs,):
                raise ValueError(f"envs/episode_frame_ids must be int64[{num_envs}, steps]")
            if frame_ids.shape[1] < int(lengths.max(initial=0)) + 1:
                raise ValueError("envs/episode_frame_ids does not fit envs/episode_length")
        obs = np.empty(
            (len(self.envs.envs), *self.observation_space.shape), self.observation_space.dtype
        )
        for i, env in enumerate(self.envs.envs):
            env.base_seed = int(meta["base_seeds"][i])
            current, info = env.restart_episode(int(meta["episodes_started"][i]) - 1)
            self.lives[i] = info.get("lives", 0)
            frames = _EpisodeFrames(
                self.frame_store, current, None if frame_ids is None else frame_ids[i]
            )
            for action in all_actions[i, : int(lengths[i])].tolist():
                next_current, reward, terminated, truncated, info = env.step(action)
                if terminated or truncated:
                    raise ValueError(
                        f"env {i} ended its episode while replaying it: not deterministic"
                    )
                lost = self.life_loss_terminal and info["lives"] < self.lives[i]
                self.lives[i] = info.get("lives", 0)
                learn_reward = float(np.sign(reward)) if self.clip_rewards else reward
                self.n_step.refill(i, frames.stack(current), action, learn_reward, ended=lost)
                frames.step(next_current)
                self.episode_return[i] += reward
                self.episode_length[i] += 1
                self.episode_actions[i].append(action)
                current = next_current
            obs[i] = current
            if self.frame_store is not None:
                self.stack_ids[i] = frames.stack(current)
                self.episode_frame_ids[i] = frames.ids
        self.obs = obs

    def close(self) -> None:
        self.envs.close()


class NStepAccumulator:
    """Turns each env's stream of one-step transitions into n-step ones.

    For env i it emits (s_t, a_t, R, s_{t+m}, terminated, truncated, γ^m) with
    R = r_t + γ r_{t+1} + ... + γ^{m-1} r_{t+m-1}: m = n normally, and fewer at the end of an
    episode, where every pending step is flushed with the episode's final observation. With
    ``n == 1`` it passes transitions straight through.
    """

    def __init__(self, n: int, gamma: float, num_envs: int):
        self.n, self.gamma = n, gamma
        self.pending: list[deque[tuple[np.ndarray, int, float]]] = [
            deque() for _ in range(num_envs)
        ]

    def push(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> tuple[np.ndarray, ...] | None:
        """One vector step in; the transitions now complete out (as ReplayBuffer.add's arguments)."""
        if self.n == 1:
            return obs, actions, rewards, next_obs, terminated, truncated, np.float32(self.gamma)
        out: list[tuple] = []
        for i, queue in enumerate(self.pending):
            queue.append((obs[i].copy(), int(actions[i]), float(rewards[i])))
            if terminated[i] or truncated[i]:
                while queue:
                    out.append(
                        self._emit(queue, next_obs[i], bool(terminated[i]), bool(truncated[i]))
                    )
                    queue.popleft()
            elif len(queue) == self.n:
                out.append(self._emit(queue, next_obs[i], False, False))
                queue.popleft()
        if not out:
            return None
        columns = list(zip(*out, strict=True))
        return (
            np.stack(columns[0]),
            np.asarray(columns[1], dtype=np.int32),
            np.asarray(columns[2], dtype=np.float32),
            np.stack(columns[3]),
            np.asarray(columns[4], dtype=np.bool_),
            np.asarray(columns[5], dtype=np.bool_),
            np.asarray(columns[6], dtype=np.float32),
        )

    def refill(
        self, env_index: int, obs: np.ndarray, action: int, reward: float, ended: bool = False
    ) -> None:
        """Replay one step of env ``env_index``'s unfinished episode when resuming: only its
        last n - 1 steps are pending (the transitions of earlier ones are in the buffer), and
        none from before a step that ``ended`` for learning (a lost life)."""
        if self.n == 1:
            return
        queue = self.pending[env_index]
        queue.append((obs.copy(), int(action), float(reward)))
        while len(queue) >= self.n or (ended and queue):
            queue.popleft()

    def _emit(self, queue: deque, next_obs: np.ndarray, terminated: bool, truncated: bool) -> tuple:
        ret = sum(self.gamma**k * reward for k, (_, _, reward) in enumerate(queue))
        first_obs, first_action, _ = queue[0]
        return (
            first_obs,
            first_action,
            ret,
            next_obs,
            terminated,
            truncated,
            self.gamma ** len(queue),
        )


def _padded(rows: list[list[int]], minimum: int) -> np.ndarray:
    """Lists of ints as one int64 array, each row padded with zeros to the longest."""
    longest = max(minimum, max(len(row) for row in rows))
    out = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class _EpisodeFrames:
    """The frames of one env's unfinished episode while a resume replays it: read back from the
    saved ids (and checked against the replayed screens: a mismatch means the env is not
    deterministic or the checkpoint was altered), or, when the replay was not saved, written anew."""

    def __init__(self, store: FrameReplay | None, first_obs: np.ndarray, saved: np.ndarray | None):
        self.store, self.saved = store, saved
        self.ids: list[int] = []
        if store is not None:
            self._add(first_obs)

    def _add(self, obs: np.ndarray) -> None:
        assert self.store is not None
        if self.saved is None:
            self.ids.append(int(self.store.add_frames(obs[None, ..., -1])[0]))
            return
        frame_id = int(self.saved[len(self.ids)])
        if (
            not self.store.frames_written - self.store.frame_capacity
            <= frame_id
            < self.store.frames_written
        ):
            raise ValueError("envs/episode_frame_ids name frames the replay does not hold")
        if not np.array_equal(self.store.stacks(np.array([frame_id]))[..., 0], obs[..., -1]):
            raise ValueError("the saved frames differ from the replayed episode's")
        self.ids.append(frame_id)

    def step(self, obs: np.ndarray) -> None:
        if self.store is not None:
            self._add(obs)

    def stack(self, obs: np.ndarray) -> np.ndarray:
        """The observation ``obs`` (the latest) as frame ids, or itself without stacked frames."""
        if self.store is None:
            return obs
        k = obs.shape[-1]
        return np.array([self.ids[max(0, j)] for j in range(len(self.ids) - k, len(self.ids))])
