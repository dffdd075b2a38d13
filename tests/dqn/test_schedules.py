"""Exploration and learning-rate schedules."""

import dataclasses

import jax.numpy as jnp
import pytest

from deepq.dqn.config import DQNConfig, schedules_over_total_steps
from deepq.dqn.exploration import epsilon_at, exponential_epsilon, linear_epsilon
from deepq.dqn.learner import learning_rate_schedule, make_optimizer


def test_exponential_matches_the_labs_iterated_update():
    # The lab: eps = max(E_MIN, E_DECAY * eps) after every episode, from 1.0.
    eps = 1.0
    for episode in range(1, 1200):
        eps = max(0.01, 0.995 * eps)
        assert exponential_epsilon(episode, 1.0, 0.995, 0.01) == pytest.approx(eps)
    assert exponential_epsilon(1, 1.0, 0.995, 0.01) == pytest.approx(0.995)
    assert exponential_epsilon(2, 1.0, 0.995, 0.01) == pytest.approx(0.990025)
    assert (
        exponential_epsilon(919, 1.0, 0.995, 0.01) == 0.01
    )  # 0.995**919 = 0.0100... floor reached


def test_linear_decays_then_stays_flat():
    assert linear_epsilon(0, 1.0, 0.1, 100) == 1.0
    assert linear_epsilon(50, 1.0, 0.1, 100) == pytest.approx(0.55)
    assert linear_epsilon(100, 1.0, 0.1, 100) == pytest.approx(0.1)
    assert linear_epsilon(10_000, 1.0, 0.1, 100) == pytest.approx(0.1)


def test_epsilon_at_follows_the_config():
    linear = DQNConfig(
        epsilon_schedule="linear", total_steps=1000, epsilon_fraction=0.2, epsilon_end=0.05
    )
    assert epsilon_at(linear, episodes=99, env_steps=100) == pytest.approx(1.0 - 0.5 * 0.95)
    absolute = DQNConfig(
        epsilon_schedule="linear", total_steps=10**6, epsilon_decay_steps=100, epsilon_end=0.0
    )
    assert epsilon_at(absolute, episodes=0, env_steps=25) == pytest.approx(0.75)  # fraction ignored
    exponential = DQNConfig(epsilon_schedule="exponential", epsilon_decay=0.5, epsilon_end=0.1)
    assert epsilon_at(exponential, episodes=2, env_steps=10**6) == pytest.approx(0.25)
    assert epsilon_at(exponential, episodes=10, env_steps=0) == pytest.approx(0.1)
    constant = DQNConfig(epsilon_schedule="constant", epsilon_start=0.3, epsilon_end=0.0)
    assert epsilon_at(constant, episodes=500, env_steps=10**6) == 0.3


def test_episode_linear_is_the_chapters_max_one_minus_episode_over_500():
    config = DQNConfig(epsilon_schedule="linear_episodes", epsilon_end=0.01)
    assert epsilon_at(config, 0, 0) == 1.0
    assert epsilon_at(config, 250, 10**6) == pytest.approx(0.5)  # env steps do not matter
    assert epsilon_at(config, 495, 0) == pytest.approx(0.01)
    assert epsilon_at(config, 499, 0) == 0.01  # 1 - 499/500 = 0.002, floored
    assert epsilon_at(config, 5000, 0) == 0.01


def test_learning_rate_decays_linearly_by_gradient_step_to_its_end():
    assert learning_rate_schedule(DQNConfig(learning_rate=3e-4)) == 3e-4  # constant by default
    # Learning from env step 200 to 1000, 2 gradient steps every 4 env steps: 400 gradient
    # steps, so the rate halves at gradient step 200 and is 0 from step 400 (env step 1000) on.
    config = DQNConfig(
        learning_rate=1e-3,
        learning_rate_end=0.0,
        total_steps=1000,
        learning_starts=200,
        train_every=4,
        gradient_steps=2,
    )
    schedule = learning_rate_schedule(config)
    assert [float(schedule(g)) for g in (0, 200, 400, 1000)] == pytest.approx(
        [1e-3, 5e-4, 0.0, 0.0]
    )
    sooner = dataclasses.replace(config, learning_rate_decay_steps=600)
    assert float(learning_rate_schedule(sooner)(100)) == pytest.approx(5e-4)  # 200 grad steps
    # The optimiser applies it: Adam's first step moves each weight by the rate; once decayed, 0.
    optimizer = make_optimizer(config)
    params = {"w": jnp.zeros(2)}
    state = optimizer.init(params)
    grads = {"w": jnp.array([1.0, -2.0])}
    updates, state = optimizer.update(grads, state, params)
    assert updates["w"] == pytest.approx([-1e-3, 1e-3], rel=1e-4)
    for _ in range(400):
        updates, state = optimizer.update(grads, state, params)
    assert updates["w"].tolist() == [0.0, 0.0]


def test_random_steps_act_at_random_first_then_the_schedule_takes_over():
    config = DQNConfig(epsilon_schedule="constant", epsilon_start=0.3, epsilon_end=0.0,
                       random_steps=100)  # fmt: skip
    assert [epsilon_at(config, 0, steps) for steps in (0, 99, 100, 5000)] == [1.0, 1.0, 0.3, 0.3]
    linear = DQNConfig(total_steps=1000, epsilon_decay_steps=200, epsilon_end=0.0, random_steps=50)
    assert epsilon_at(linear, 0, 49) == 1.0
    assert epsilon_at(linear, 0, 50) == pytest.approx(0.75)  # the schedule counts from step 0
    with pytest.raises(Exception, match="random_steps=-1 must be >= 0"):
        DQNConfig(random_steps=-1)


def test_a_run_logs_epsilon_1_until_its_random_steps_are_done(tmp_path):
    import csv

    from deepq.dqn.loop import train

    config = {"env_id": "CartPole-v1", "total_steps": 600, "hidden_sizes": [8],
              "learning_starts": 64, "batch_size": 16, "epsilon_schedule": "constant",
              "epsilon_start": 0.2, "epsilon_end": 0.0, "random_steps": 300, "eval_every": None,
              "final_eval_episodes": 0}  # fmt: skip
    train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    with open(tmp_path / "run" / "progress.csv") as handle:
        rows = [(int(r["env_steps"]), float(r["epsilon"])) for r in csv.DictReader(handle)]
    # an episode's row logs the ε its last action was taken with: 1 up to step 300, then 0.2
    assert len(rows) > 10 and rows[0][0] < 300 < rows[-1][0]
    assert [eps for _, eps in rows] == [1.0 if steps <= 300 else 0.2 for steps, _ in rows]


def test_the_schedules_that_stretch_over_total_steps_are_named():
    """What ``--total-steps`` would bend midway, and so refuses: a schedule whose own length is
    unset and falls back on total_steps."""
    base = DQNConfig(env_id="CartPole-v1", total_steps=5000, epsilon_decay_steps=100)
    assert schedules_over_total_steps(base) == []
    assert schedules_over_total_steps(dataclasses.replace(base, epsilon_decay_steps=None)) == [
        "epsilon's decay (over epsilon_fraction of total_steps)"
    ]
    noisy = dataclasses.replace(base, epsilon_decay_steps=None, noisy=True)
    assert schedules_over_total_steps(noisy) == []  # noisy nets explore without ε
    episodes = dataclasses.replace(base, epsilon_schedule="linear_episodes")
    assert schedules_over_total_steps(episodes) == []
    learning_rate = dataclasses.replace(base, learning_rate_end=1e-5)
    assert schedules_over_total_steps(learning_rate) == ["the learning rate's decay"]
    own_length = dataclasses.replace(learning_rate, learning_rate_decay_steps=4000)
    assert schedules_over_total_steps(own_length) == []
    beta = dataclasses.replace(base, prioritized=True)
    assert schedules_over_total_steps(beta) == ["prioritized replay's beta"]
    assert schedules_over_total_steps(dataclasses.replace(beta, priority_beta_steps=800)) == []
