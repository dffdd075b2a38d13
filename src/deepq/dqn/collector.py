"""The collector: steps the training envs and turns their steps into replay transitions.

It owns the vector env (Gymnasium's, ``SAME_STEP`` autoreset), the current observations, each
env's unfinished episode (return, length and actions: what a resume replays) and the n-step
accumulator. A finished episode's s' is its real final observation, never the reset one
(:func:`deepq.run.envs.final_observations`), and ``terminated`` and ``truncated`` travel apart.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from deepq.dqn.config import DQNConfig
from deepq.errors import TrainingDiverged
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
        self.envs = make_vector_env(
            c.env_id, c.num_envs, c.max_episode_steps, c.time_feature, spaces="frames"
        )
        self.observation_space = self.envs.single_observation_space
        self.n_actions = int(self.envs.single_action_space.n)
        self.spec = self.envs.envs[0].spec
        self.n_step = NStepAccumulator(c.n_step, c.gamma, c.num_envs)
        self.time_limit_terminal = c.time_limit_terminal
        self.episode_return = np.zeros(c.num_envs)
        self.episode_length = np.zeros(c.num_envs, dtype=np.int64)
        self.episode_actions: list[list[int]] = [[] for _ in range(c.num_envs)]
        self.obs: np.ndarray = np.empty(0)

    def reset(self, seed: int) -> None:
        """Sub-env i gets base seed ``seed + i``, one seed per episode from there."""
        self.obs, _ = self.envs.reset(seed=seed)

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
        if self.time_limit_terminal:  # the robust-DQN post's `if step == max_steps: done = True`
            terminated, truncated = done, np.zeros_like(truncated)
        transitions = self.n_step.push(
            self.obs, actions, rewards, real_next_obs, terminated, truncated
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

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Each env's unfinished episode: its length and actions so far (padded with zeros)."""
        longest = max(1, max(len(a) for a in self.episode_actions))
        padded_actions = np.zeros((len(self.episode_actions), longest), dtype=np.int64)
        for i, taken in enumerate(self.episode_actions):
            padded_actions[i, : len(taken)] = taken
        return {
            "envs/episode_actions": padded_actions,
            "envs/episode_length": self.episode_length.copy(),
        }

    def state_meta(self) -> dict[str, Any]:
        """Each env's seeds: its base seed and how many episodes it has started."""
        return {
            "base_seeds": [int(env.base_seed) for env in self.envs.envs],
            "episodes_started": [int(env.episode) for env in self.envs.envs],
        }

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Put every env back into its unfinished episode: reset with that episode's seed and
        replay its actions, refilling the episode's return, length and pending n-step entries."""
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
        obs = np.empty(
            (len(self.envs.envs), *self.observation_space.shape), self.observation_space.dtype
        )
        for i, env in enumerate(self.envs.envs):
            env.base_seed = int(meta["base_seeds"][i])
            current, _ = env.restart_episode(int(meta["episodes_started"][i]) - 1)
            for action in all_actions[i, : int(lengths[i])].tolist():
                next_current, reward, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    raise ValueError(
                        f"env {i} ended its episode while replaying it: not deterministic"
                    )
                self.n_step.refill(i, current, action, reward)
                self.episode_return[i] += reward
                self.episode_length[i] += 1
                self.episode_actions[i].append(action)
                current = next_current
            obs[i] = current
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

    def refill(self, env_index: int, obs: np.ndarray, action: int, reward: float) -> None:
        """Replay one step of env ``env_index``'s unfinished episode when resuming: only its
        last n - 1 steps are pending (the transitions of earlier ones are in the buffer)."""
        if self.n == 1:
            return
        queue = self.pending[env_index]
        queue.append((obs.copy(), int(action), float(reward)))
        while len(queue) >= self.n:
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
