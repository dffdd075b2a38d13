"""Exploration and learning-rate schedules: pure functions of the run's counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepq.config import DQNConfig

if TYPE_CHECKING:
    import optax


def exponential_epsilon(episodes: int, start: float, decay: float, end: float) -> float:
    """start * decay**episodes floored at end: the seeds' ``eps = max(E_MIN, E_DECAY * eps)``."""
    return max(end, start * decay**episodes)


def linear_epsilon(env_steps: int, start: float, end: float, decay_steps: int) -> float:
    """Linear from start (step 0) to end (step decay_steps), then flat."""
    progress = min(1.0, env_steps / max(1, decay_steps))
    return start + progress * (end - start)


def episode_linear_epsilon(episodes: int, start: float, end: float, decay_episodes: int) -> float:
    """Seed 004's ``max(1 - episode / 500, 0.01)``: from start toward 0 over decay_episodes
    finished episodes, floored at end."""
    return max(end, start * (1.0 - episodes / decay_episodes))


def epsilon_at(config: DQNConfig, episodes: int, env_steps: int) -> float:
    """ε after ``episodes`` finished episodes and ``env_steps`` env steps."""
    if config.epsilon_schedule == "exponential":
        return exponential_epsilon(
            episodes, config.epsilon_start, config.epsilon_decay, config.epsilon_end
        )
    if config.epsilon_schedule == "linear":
        if config.epsilon_decay_steps is not None:
            decay_steps = config.epsilon_decay_steps
        else:
            assert config.total_steps is not None  # validated by DQNConfig
            decay_steps = int(config.epsilon_fraction * config.total_steps)
        return linear_epsilon(env_steps, config.epsilon_start, config.epsilon_end, decay_steps)
    if config.epsilon_schedule == "linear_episodes":
        return episode_linear_epsilon(
            episodes, config.epsilon_start, config.epsilon_end, config.epsilon_decay_episodes
        )
    return config.epsilon_start


def learning_rate_schedule(config: DQNConfig) -> float | optax.Schedule:
    """The learning rate by gradient step: constant, or linear from ``learning_rate`` down to
    ``learning_rate_end`` at the gradient step taken at env step ``learning_rate_decay_steps``."""
    if config.learning_rate_end is None:
        return config.learning_rate
    import optax  # here, not at the top: the tabular loop uses this module without JAX

    decay_env_steps = config.learning_rate_decay_steps or config.total_steps
    assert decay_env_steps is not None  # the config validator requires one of them
    decay_grad_steps = (
        (decay_env_steps - config.learning_starts) * config.gradient_steps // config.train_every
    )
    return optax.linear_schedule(
        config.learning_rate, config.learning_rate_end, max(1, decay_grad_steps)
    )
