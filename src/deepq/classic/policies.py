"""Hand-written CartPole policies, linear policies, and evaluating any of them over many episodes.

A policy here maps a batch of observations [N, obs_dim] to actions [N]. Evaluation steps many
episodes at once with Gymnasium's vectorised CartPole (numpy across envs, no Python per env) when
the env is CartPole, and with a list of envs otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepq.errors import UsageError

Policy = Callable[[np.ndarray], np.ndarray]  # obs [N, obs_dim] -> actions [N]

# CartPole observation: [cart position, cart velocity, pole angle, pole angular velocity];
# action 0 pushes left, 1 pushes right.


def lean_policy(obs: np.ndarray) -> np.ndarray:
    """The Hands-On ML chapter's basic policy: push toward the side the pole leans to."""
    return (obs[..., 2] >= 0).astype(np.int64)


def angle_and_velocity_policy(obs: np.ndarray) -> np.ndarray:
    """The chapter's second hand-coded policy: push right when angle + angular velocity > 0."""
    return (obs[..., 2] + obs[..., 3] > 0).astype(np.int64)


def lean_and_spin_policy(obs: np.ndarray) -> np.ndarray:
    """Push toward where the pole will be: its angle plus a share of its angular velocity."""
    return (obs[..., 2] + 0.5 * obs[..., 3] >= 0).astype(np.int64)


def linear_policy(weights: np.ndarray, bias: float = 0.0) -> Policy:
    """Push right when w·obs + b > 0, else left."""
    w = np.asarray(weights, dtype=np.float64)
    return lambda obs: (obs @ w + bias > 0).astype(np.int64)


# Hand-picked: the pole's angle and angular velocity, and a little of the cart's velocity.
HAND_PICKED_WEIGHTS = np.array([0.0, 0.25, 1.0, 1.0])

HAND_WRITTEN: dict[str, tuple[Policy, str]] = {
    "lean": (lean_policy, "push toward the pole's lean (the Hands-On ML chapter's basic policy)"),
    "angle+velocity": (
        angle_and_velocity_policy,
        "push toward angle + angular velocity (the chapter's second policy)",
    ),
    "lean+spin": (lean_and_spin_policy, "push toward angle + 0.5 * angular velocity"),
    "linear": (linear_policy(HAND_PICKED_WEIGHTS), "w·obs > 0 with w = [0, 0.25, 1, 1]"),
}


@dataclass(frozen=True)
class EpisodeStats:
    mean: float
    std: float
    min: float
    max: float
    episodes: int

    @classmethod
    def of(cls, returns: np.ndarray) -> EpisodeStats:
        returns = np.asarray(returns, dtype=np.float64)
        return cls(float(returns.mean()), float(returns.std()), float(returns.min()),
                   float(returns.max()), len(returns))  # fmt: skip


def episode_returns(
    policy: Policy,
    episodes: int,
    seed: int = 0,
    env_id: str = "CartPole-v1",
    max_steps: int | None = None,
) -> np.ndarray:
    """Returns [episodes] of ``policy``, all episodes stepped together until each has ended.

    ``max_steps`` cuts episodes (the env's own limit otherwise). Deterministic given the seed.
    """
    import gymnasium as gym

    from deepq.run.envs import make_env

    limit = max_steps
    if env_id == "CartPole-v1":
        limit = max_steps if max_steps is not None else 500
        envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="vector_entry_point",
                            max_episode_steps=limit)  # fmt: skip
        try:
            obs, _ = envs.reset(seed=seed)
            returns = np.zeros(episodes)
            alive = np.ones(episodes, dtype=bool)
            for _ in range(limit):
                obs, rewards, terminated, truncated, _ = envs.step(policy(obs))
                returns += np.where(alive, rewards, 0.0)
                alive &= ~(terminated | truncated)
                if not alive.any():
                    break
            return returns
        finally:
            envs.close()
    env_list = [make_env(env_id, max_steps) for _ in range(episodes)]
    try:
        obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(env_list)])
        returns = np.zeros(episodes)
        alive = np.ones(episodes, dtype=bool)
        while alive.any():
            actions = policy(obs)
            for k in np.flatnonzero(alive):
                obs[k], reward, terminated, truncated, _ = env_list[k].step(int(actions[k]))
                returns[k] += float(reward)
                alive[k] = not (terminated or truncated)
        return returns
    finally:
        for env in env_list:
            env.close()


@dataclass(frozen=True)
class PolicyAgent:
    """A hand-written or searched CartPole policy with what ``deepq video`` and ``deepq play``
    ask of an agent: ``act`` and ``make_env``."""

    name: str
    policy: Policy
    env_id: str = "CartPole-v1"

    def act(self, obs: np.ndarray) -> int:
        return int(self.policy(np.asarray(obs)[None])[0])

    def make_env(self, render_mode: str | None = None) -> Any:
        from deepq.run.envs import make_env

        return make_env(self.env_id, render_mode=render_mode)


def parse_weights(text: str) -> tuple[np.ndarray, float]:
    """``w1,w2,w3,w4[,b]`` -> (weights [4], bias): CartPole's linear policy w·obs + b > 0."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    return _linear_parameters(values, f"weights {text!r}")


def _linear_parameters(values: list[float], what: str) -> tuple[np.ndarray, float]:
    """4 weights and an optional bias (0 when left out), each finite."""
    if len(values) not in (4, 5) or not all(np.isfinite(values)):
        raise UsageError(f"{what} must be 4 or 5 finite numbers: w1,w2,w3,w4[,b]")
    return np.array(values[:4]), (values[4] if len(values) == 5 else 0.0)


def load_policy(spec: str) -> PolicyAgent:
    """The policy ``spec`` names: a hand-written one (lean, angle+velocity, ...), weights
    ``w1,w2,w3,w4[,b]``, or a ``deepq search`` result.json (its best weights and bias)."""
    from deepq.run.files import UnreadableFile, read_json_file

    if spec in HAND_WRITTEN:
        return PolicyAgent(spec, HAND_WRITTEN[spec][0])
    if spec.endswith(".json"):
        try:
            result = read_json_file(spec)
            values = [float(v) for v in [*result["weights"], result["bias"]]]
        except (UnreadableFile, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--policy {spec} is not a deepq search result.json ({exc})") from None
        parameters = _linear_parameters(values, f"the weights and bias in {spec}")
        return PolicyAgent(f"search result {spec}", linear_policy(*parameters))
    if "," in spec:
        weights, bias = parse_weights(spec)
        return PolicyAgent(f"linear policy {spec}", linear_policy(weights, bias))
    names = ", ".join(HAND_WRITTEN)
    raise UsageError(
        f"--policy {spec!r} is not one of {names}, weights w1,w2,w3,w4[,b], or a search's result.json"
    )
