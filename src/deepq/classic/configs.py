"""The configs of the classic ladder's trainers: tabular Q-learning and REINFORCE.

Kept apart from their loops so that ``import deepq`` (which exports them) stays free of JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepq.run.config import MAX_SEED, Config, documented, require


@dataclass(frozen=True)
class QLearningConfig(Config):
    """Everything that defines a tabular Q-learning run."""

    env_id: str = documented(
        "Gymnasium env id with Discrete observations and actions.", "FrozenLake-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None
    )
    max_episodes: int | None = documented("Stop after this many training episodes.", 5000)
    total_steps: int | None = documented(
        "Stop after this many env steps (null: no step limit).", None
    )
    gamma: float = documented("Discount factor in [0, 1].", 0.99)
    alpha0: float = documented(
        "Initial learning rate; step t uses alpha0 / (1 + t * alpha_decay).", 0.5
    )
    alpha_decay: float = documented("Learning-rate decay per update (0: constant).", 0.0)
    initial_q: float = documented("Initial value of every table cell.", 0.0)
    epsilon_start: float = documented("Initial exploration rate in [0, 1].", 1.0)
    epsilon_end: float = documented("Final exploration rate in [0, epsilon_start].", 0.05)
    epsilon_decay_episodes: int = documented(
        "Episodes over which ε falls linearly to its end.", 2000
    )
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented("Episodes in the solved moving average.", 100)
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_episodes: int | None = documented(
        "Greedy evaluation every this many training episodes (null: only at the end).", 500
    )
    eval_episodes: int = documented("Episodes per periodic greedy evaluation.", 100)
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100
    )
    seed: int = documented("Seed for exploration and env resets.", 0)

    def validate(self) -> None:
        c = self
        require(bool(c.env_id.strip()), "env_id must not be empty")
        for name in ("max_episodes", "total_steps", "max_episode_steps", "eval_every_episodes"):
            value = getattr(c, name)
            require(value is None or value >= 1, f"{name}={value} must be >= 1 or null")
        require(
            c.max_episodes is not None or c.total_steps is not None,
            "set max_episodes or total_steps",
        )
        require(0.0 <= c.gamma <= 1.0, f"gamma={c.gamma} must be in [0, 1]")
        require(0.0 < c.alpha0 <= 1.0, f"alpha0={c.alpha0} must be in (0, 1]")
        require(c.alpha_decay >= 0, f"alpha_decay={c.alpha_decay} must be >= 0")
        require(0.0 <= c.epsilon_start <= 1.0, f"epsilon_start={c.epsilon_start} must be in [0, 1]")
        require(
            0.0 <= c.epsilon_end <= c.epsilon_start,
            f"epsilon_end={c.epsilon_end} must be in [0, epsilon_start={c.epsilon_start}]",
        )
        for name in ("epsilon_decay_episodes", "solved_window", "eval_episodes"):
            require(getattr(c, name) >= 1, f"{name}={getattr(c, name)} must be >= 1")
        require(
            c.final_eval_episodes >= 0, f"final_eval_episodes={c.final_eval_episodes} must be >= 0"
        )
        require(0 <= c.seed <= MAX_SEED, f"seed={c.seed} must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class ReinforceConfig(Config):
    """Everything that defines a REINFORCE run."""

    env_id: str = documented(
        "Gymnasium env id (1-D Box observations, Discrete actions).", "CartPole-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None
    )
    iterations: int = documented("Policy updates (each on episodes_per_update episodes).", 150)
    episodes_per_update: int = documented("Episodes played (side by side) per update.", 10)
    gamma: float = documented("Discount factor in [0, 1].", 0.95)
    normalize_advantages: bool = documented(
        "Normalise discounted returns across the update's episodes (mean 0, std 1).", True
    )
    hidden_sizes: tuple[int, ...] = documented("Hidden layer widths of the policy MLP.", (32,))
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = documented(
        "Hidden activation.", "elu"
    )
    learning_rate: float = documented("Adam learning rate (> 0).", 0.01)
    temperature: float = documented(
        "Sampling temperature while training: probabilities p^(1/T), renormalised (1: as is).", 1.0
    )
    imitation_policy: Literal["none", "lean", "lean+spin"] = documented(
        "Warm-up: first imitate this hand-written CartPole policy (none: skip).", "none"
    )
    imitation_iterations: int = documented(
        "Warm-up gradient steps (one per parallel env step).", 1000
    )
    imitation_envs: int = documented("Parallel envs stepped during the warm-up.", 50)
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented("Episodes in the solved moving average.", 100)
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_iterations: int | None = documented(
        "Greedy evaluation every this many updates (null: only at the end).", 10
    )
    eval_episodes: int = documented("Episodes per periodic greedy evaluation.", 20)
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100
    )
    seed: int = documented("Seed for the network, action sampling and env resets.", 0)

    def validate(self) -> None:
        c = self
        require(bool(c.env_id.strip()), "env_id must not be empty")
        for name in ("max_episode_steps", "eval_every_iterations"):
            value = getattr(c, name)
            require(value is None or value >= 1, f"{name}={value} must be >= 1 or null")
        for name in (
            "iterations",
            "episodes_per_update",
            "imitation_envs",
            "solved_window",
            "eval_episodes",
        ):
            require(getattr(c, name) >= 1, f"{name}={getattr(c, name)} must be >= 1")
        require(
            c.imitation_iterations >= 0,
            f"imitation_iterations={c.imitation_iterations} must be >= 0",
        )
        require(0.0 <= c.gamma <= 1.0, f"gamma={c.gamma} must be in [0, 1]")
        require(
            len(c.hidden_sizes) >= 1 and min(c.hidden_sizes) >= 1,
            "hidden_sizes must list widths >= 1",
        )
        require(c.learning_rate > 0, f"learning_rate={c.learning_rate} must be > 0")
        require(c.temperature > 0, f"temperature={c.temperature} must be > 0")
        require(
            c.final_eval_episodes >= 0, f"final_eval_episodes={c.final_eval_episodes} must be >= 0"
        )
        require(0 <= c.seed <= MAX_SEED, f"seed={c.seed} must be in [0, {MAX_SEED}]")
