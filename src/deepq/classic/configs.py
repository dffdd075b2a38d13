"""The configs of the classic ladder's trainers: tabular Q-learning and REINFORCE.

Kept apart from their loops so that ``import deepq`` (which exports them) stays free of JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepq.run.config import (
    MAX_EVAL_EPISODES,
    MAX_LAYERS,
    MAX_SEED,
    MAX_WIDTH,
    MAX_WINDOW,
    Config,
    documented,
    require,
    require_env_id,
)

MAX_PARALLEL_ENVS = 10_000  # envs stepped side by side: each is a Gymnasium env in memory


@dataclass(frozen=True)
class QLearningConfig(Config):
    """Everything that defines a tabular Q-learning run."""

    env_id: str = documented(
        "Gymnasium env id with Discrete observations and actions.", "FrozenLake-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None, ge=1
    )
    max_episodes: int | None = documented("Stop after this many training episodes.", 5000, ge=1)
    total_steps: int | None = documented(
        "Stop after this many env steps (null: no step limit).", None, ge=1
    )
    gamma: float = documented("Discount factor.", 0.99, ge=0, le=1)
    alpha0: float = documented(
        "Initial learning rate; step t uses alpha0 / (1 + t * alpha_decay).", 0.5, gt=0, le=1
    )
    alpha_decay: float = documented("Learning-rate decay per update (0: constant).", 0.0, ge=0)
    initial_q: float = documented("Initial value of every table cell.", 0.0)
    epsilon_start: float = documented("Initial exploration rate.", 1.0, ge=0, le=1)
    epsilon_end: float = documented("Final exploration rate in [0, epsilon_start].", 0.05)
    epsilon_decay_episodes: int = documented(
        "Episodes over which ε falls linearly to its end.", 2000, ge=1
    )
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented(
        "Episodes in the solved moving average.", 100, ge=1, le=MAX_WINDOW
    )
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_episodes: int | None = documented(
        "Greedy evaluation every this many training episodes (null: only at the end).", 500, ge=1
    )
    eval_episodes: int = documented(
        "Episodes per periodic greedy evaluation.", 100, ge=1, le=MAX_EVAL_EPISODES
    )
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100, ge=0, le=MAX_EVAL_EPISODES
    )
    seed: int = documented("Seed for exploration and env resets.", 0, ge=0, le=MAX_SEED)

    def validate(self) -> None:
        """The rules that tie fields together (each field's own bounds are beside it)."""
        require_env_id(self.env_id)
        require(
            self.max_episodes is not None or self.total_steps is not None,
            "set max_episodes or total_steps",
        )
        require(
            0.0 <= self.epsilon_end <= self.epsilon_start,
            f"epsilon_end={self.epsilon_end} must be in [0, epsilon_start={self.epsilon_start}]",
        )


@dataclass(frozen=True)
class ReinforceConfig(Config):
    """Everything that defines a REINFORCE run."""

    env_id: str = documented(
        "Gymnasium env id (1-D Box observations, Discrete actions).", "CartPole-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None, ge=1
    )
    iterations: int = documented(
        "Policy updates (each on episodes_per_update episodes); 0 with an imitation_policy: "
        "imitation only, as the Hands-On ML chapter's first neural-network policy.",
        150,
        ge=0,
    )
    episodes_per_update: int = documented(
        "Episodes played (side by side) per update.", 10, ge=1, le=MAX_PARALLEL_ENVS
    )
    gamma: float = documented("Discount factor.", 0.95, ge=0, le=1)
    normalize_advantages: bool = documented(
        "Normalise discounted returns across the update's episodes (mean 0, std 1).", True
    )
    hidden_sizes: tuple[int, ...] = documented(
        "Hidden layer widths of the policy MLP; empty (hidden_sizes=) for a linear policy, as the "
        "chapter's final REINFORCE policy.",
        (32,),
        ge=1,
        le=MAX_WIDTH,
    )
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = documented(
        "Hidden activation.", "elu"
    )
    policy_head: Literal["softmax", "sigmoid"] = documented(
        "softmax: one logit per action; sigmoid (2 actions only): one output p(action 0) = "
        "sigmoid(z), the chapter's Dense(1, activation='sigmoid') trained with binary "
        "cross-entropy.",
        "softmax",
    )
    optimizer: Literal["adam", "rmsprop", "sgd"] = documented(
        "Optimiser of the policy-gradient updates (Keras' defaults besides the learning rate).",
        "adam",
    )
    learning_rate: float = documented("Learning rate of the policy-gradient updates.", 0.01, gt=0)
    temperature: float = documented(
        "Sampling temperature while training: probabilities p^(1/T), renormalised (1: as is).",
        1.0,
        gt=0,
    )
    imitation_policy: Literal["none", "lean", "lean+spin"] = documented(
        "Warm-up: first imitate this hand-written CartPole policy (none: skip).", "none"
    )
    imitation_iterations: int = documented(
        "Warm-up gradient steps (one per parallel env step).", 5000, ge=0
    )
    imitation_envs: int = documented(
        "Parallel envs stepped during the warm-up.", 50, ge=1, le=MAX_PARALLEL_ENVS
    )
    imitation_optimizer: Literal["adam", "rmsprop", "sgd"] = documented(
        "Optimiser of the warm-up (the chapter's keras.optimizers.RMSprop()).", "rmsprop"
    )
    imitation_learning_rate: float = documented(
        "Learning rate of the warm-up (Keras' RMSprop default).", 0.001, gt=0
    )
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented(
        "Episodes in the solved moving average.", 100, ge=1, le=MAX_WINDOW
    )
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_iterations: int | None = documented(
        "Greedy evaluation every this many updates (null: only at the end).", 10, ge=1
    )
    eval_episodes: int = documented(
        "Episodes per periodic greedy evaluation.", 20, ge=1, le=MAX_EVAL_EPISODES
    )
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100, ge=0, le=MAX_EVAL_EPISODES
    )
    seed: int = documented(
        "Seed for the network, action sampling and env resets.", 0, ge=0, le=MAX_SEED
    )

    def validate(self) -> None:
        """The rules that tie fields together (each field's own bounds are beside it)."""
        require_env_id(self.env_id)
        require(
            len(self.hidden_sizes) <= MAX_LAYERS,
            f"hidden_sizes must list at most {MAX_LAYERS} layer widths",
        )
        imitates = self.imitation_policy != "none" and self.imitation_iterations > 0
        require(
            self.iterations > 0 or imitates,
            "iterations=0 trains nothing: set iterations >= 1, or an imitation_policy with "
            "imitation_iterations >= 1",
        )
