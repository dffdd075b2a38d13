"""Exploration: the ε schedules (pure functions of the run's counters) and ε-greedy action choice."""

from __future__ import annotations

import numpy as np

from deepq.dqn.config import DQNConfig


def exponential_epsilon(episodes: int, start: float, decay: float, end: float) -> float:
    """start * decay**episodes floored at end: the LunarLander lab's ``eps = max(E_MIN, E_DECAY * eps)``."""
    return max(end, start * decay**episodes)


def linear_epsilon(env_steps: int, start: float, end: float, decay_steps: int) -> float:
    """Linear from start (step 0) to end (step decay_steps), then flat."""
    progress = min(1.0, env_steps / max(1, decay_steps))
    return start + progress * (end - start)


def episode_linear_epsilon(episodes: int, start: float, end: float, decay_episodes: int) -> float:
    """The Hands-On ML chapter's ``max(1 - episode / 500, 0.01)``: from start toward 0 over decay_episodes
    finished episodes, floored at end."""
    return max(end, start * (1.0 - episodes / decay_episodes))


def epsilon_at(config: DQNConfig, episodes: int, env_steps: int) -> float:
    """ε after ``episodes`` finished episodes and ``env_steps`` env steps: 1 during the first
    ``random_steps`` (a purely random initial collection), the schedule's value after (0 with
    noisy nets, which explore through their noise)."""
    if env_steps < config.random_steps:
        return 1.0
    if config.noisy:
        return 0.0
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


def select_actions(
    q_values: np.ndarray, epsilon: float, coins: np.ndarray, random_actions: np.ndarray
) -> np.ndarray:
    """ε-greedy: where ``coins < epsilon`` take ``random_actions``, else argmax Q.

    The coins and random actions are drawn by the caller's numpy Generator: one checkpointable
    RNG for all of the run's randomness outside parameter init. The Q-values come from
    :func:`deepq.dqn.networks.host_q_values` (numpy, so that acting never waits for an update).
    """
    return np.where(coins < epsilon, random_actions, np.argmax(q_values, axis=-1))
