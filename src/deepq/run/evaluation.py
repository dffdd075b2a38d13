"""Greedy (or ε-greedy) evaluation over many seeded episodes, batched across envs.

Written here rather than with Gymnasium's vector API because evaluation needs what autoreset
does not give: exactly one episode per seed (episode k is reset with ``seed + k``, so results do
not depend on how many envs run at once) and no wasted steps once an env's episode is done.
Observations are padded to a fixed batch so the jitted policy compiles once. With ``epsilon``,
each episode draws its random actions from its own generator, seeded by the episode's seed, so
those results do not depend on the batch width either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

from deepq.errors import UsageError

# Seeds of evaluation episodes lie above every training seed (training uses seed + i < 2**32):
# periodic evaluations (which pick the best checkpoint) use one fixed set, the final evaluation
# and `deepq eval` another, so the reported score is not the one the checkpoint was chosen on.
SELECTION_EVAL_SEED = 2**32
TEST_EVAL_SEED = 2**32 + 2**20

Policy = Callable[[np.ndarray], np.ndarray]  # obs [batch, obs_dim] -> actions [batch]


def exploration(episode_seed: int, epsilon: float) -> np.random.Generator | None:
    """The random actions of the episode reset with ``episode_seed``, when acting ε-greedily:
    a stream of its own, seeded ``(episode_seed, 1)`` so it is never the env's ``reset(seed)``
    stream, and the same for an evaluation, a video and a window playing that episode. None when
    greedy."""
    if not 0.0 <= epsilon <= 1.0:
        raise UsageError(f"epsilon={epsilon} must be in [0, 1]")
    return np.random.default_rng((episode_seed, 1)) if epsilon > 0 else None


def epsilon_greedy(
    action: int, rng: np.random.Generator | None, epsilon: float, env: gym.Env
) -> int:
    """``action``, or with probability ``epsilon`` a uniformly random one of ``env``'s."""
    if rng is not None and rng.random() < epsilon:
        return int(rng.integers(env.action_space.n))
    return action


def agent_eval_epsilon(agent: object) -> float:
    """The ε an agent is evaluated with unless told otherwise: its config's ``eval_epsilon``
    (the Atari presets' 0.05), else 0 (greedy; hand-written and classic policies have none)."""
    return float(getattr(getattr(agent, "config", None), "eval_epsilon", 0.0))


def acting(epsilon: float) -> str:
    """How an evaluation acted, as lines and reports say it."""
    return f"ε-greedy (ε {epsilon:g})" if epsilon > 0 else "greedy"


@dataclass(frozen=True)
class EvalResult:
    mean: float
    std: float
    min: float
    max: float
    episodes: int
    returns: list[float]
    lengths: list[int]
    epsilon: float = 0.0  # probability of a random action; 0: greedy

    @classmethod
    def from_episodes(
        cls, returns: list[float], lengths: list[int], epsilon: float = 0.0
    ) -> EvalResult:
        values = np.asarray(returns, dtype=np.float64)
        return cls(
            mean=float(values.mean()),
            std=float(values.std()),
            min=float(values.min()),
            max=float(values.max()),
            episodes=len(returns),
            returns=[float(r) for r in returns],
            lengths=[int(n) for n in lengths],
            epsilon=float(epsilon),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{acting(self.epsilon)} return {self.mean:.2f} ± {self.std:.2f} "
            f"(min {self.min:.2f}, max {self.max:.2f}, {self.episodes} episodes)"
        )


class Evaluator:
    """Runs greedy or ε-greedy episodes on up to ``max_parallel`` envs made once by
    ``make_env``."""

    def __init__(self, make_env: Callable[[], gym.Env], max_parallel: int = 32):
        self._make_env = make_env
        self._max_parallel = max_parallel
        self._envs: list[gym.Env] = []

    def run(self, policy: Policy, episodes: int, seed: int, epsilon: float = 0.0) -> EvalResult:
        """Episode k starts from ``reset(seed=seed + k)``. With ``epsilon`` > 0 each step takes a
        uniformly random action with that probability, drawn from episode k's own generator
        (seeded with ``(seed + k, 1)``): Mnih et al. (2015) evaluated Atari agents with 0.05,
        since a greedy agent can stall, e.g. never serve the ball again in Breakout."""
        width = min(episodes, self._max_parallel)
        while len(self._envs) < width:
            self._envs.append(self._make_env())
        envs = self._envs[:width]
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        obs = np.stack([env.reset(seed=seed + slot)[0] for slot, env in enumerate(envs)])
        slot_episode = np.arange(width)  # episode index each env is running, -1 when idle
        explore = [exploration(seed + slot, epsilon) for slot in range(width)]
        next_episode = width
        while (slot_episode >= 0).any():
            actions = np.asarray(policy(obs))
            for slot in np.flatnonzero(slot_episode >= 0):
                episode = slot_episode[slot]
                action = epsilon_greedy(int(actions[slot]), explore[slot], epsilon, envs[slot])
                step_obs, reward, terminated, truncated, _ = envs[slot].step(action)
                returns[episode] += float(reward)
                lengths[episode] += 1
                if terminated or truncated:
                    if next_episode < episodes:
                        slot_episode[slot] = next_episode
                        step_obs, _ = envs[slot].reset(seed=seed + next_episode)
                        explore[slot] = exploration(seed + next_episode, epsilon)
                        next_episode += 1
                    else:
                        slot_episode[slot] = -1
                obs[slot] = step_obs
        return EvalResult.from_episodes(returns.tolist(), lengths.tolist(), epsilon)

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
