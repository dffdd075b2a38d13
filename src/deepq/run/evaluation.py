"""Greedy evaluation over many seeded episodes, batched across envs.

Written here rather than with Gymnasium's vector API because evaluation needs what autoreset
does not give: exactly one episode per seed (episode k is reset with ``seed + k``, so results do
not depend on how many envs run at once) and no wasted steps once an env's episode is done.
Observations are padded to a fixed batch so the jitted policy compiles once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

# Seeds of evaluation episodes lie above every training seed (training uses seed + i < 2**32):
# periodic evaluations (which pick the best checkpoint) use one fixed set, the final evaluation
# and `deepq eval` another, so the reported score is not the one the checkpoint was chosen on.
SELECTION_EVAL_SEED = 2**32
TEST_EVAL_SEED = 2**32 + 2**20

Policy = Callable[[np.ndarray], np.ndarray]  # obs [batch, obs_dim] -> actions [batch]


@dataclass(frozen=True)
class EvalResult:
    mean: float
    std: float
    min: float
    max: float
    episodes: int
    returns: list[float]
    lengths: list[int]

    @classmethod
    def from_episodes(cls, returns: list[float], lengths: list[int]) -> EvalResult:
        values = np.asarray(returns, dtype=np.float64)
        return cls(
            mean=float(values.mean()),
            std=float(values.std()),
            min=float(values.min()),
            max=float(values.max()),
            episodes=len(returns),
            returns=[float(r) for r in returns],
            lengths=[int(n) for n in lengths],
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (
            f"greedy return {self.mean:.2f} ± {self.std:.2f} "
            f"(min {self.min:.2f}, max {self.max:.2f}, {self.episodes} episodes)"
        )


class Evaluator:
    """Runs greedy episodes on up to ``max_parallel`` envs made once by ``make_env``."""

    def __init__(self, make_env: Callable[[], gym.Env], max_parallel: int = 32):
        self._make_env = make_env
        self._max_parallel = max_parallel
        self._envs: list[gym.Env] = []

    def run(self, policy: Policy, episodes: int, seed: int) -> EvalResult:
        """Episode k starts from ``reset(seed=seed + k)``."""
        width = min(episodes, self._max_parallel)
        while len(self._envs) < width:
            self._envs.append(self._make_env())
        envs = self._envs[:width]
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        obs = np.stack([env.reset(seed=seed + slot)[0] for slot, env in enumerate(envs)])
        slot_episode = np.arange(width)  # episode index each env is running, -1 when idle
        next_episode = width
        while (slot_episode >= 0).any():
            actions = np.asarray(policy(obs))
            for slot in np.flatnonzero(slot_episode >= 0):
                episode = slot_episode[slot]
                step_obs, reward, terminated, truncated, _ = envs[slot].step(int(actions[slot]))
                returns[episode] += float(reward)
                lengths[episode] += 1
                if terminated or truncated:
                    if next_episode < episodes:
                        slot_episode[slot] = next_episode
                        step_obs, _ = envs[slot].reset(seed=seed + next_episode)
                        next_episode += 1
                    else:
                        slot_episode[slot] = -1
                obs[slot] = step_obs
        return EvalResult.from_episodes(returns.tolist(), lengths.tolist())

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
