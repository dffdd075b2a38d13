"""Soft (Polyak) and hard target updates, alone and inside the jitted update."""

import jax
import jax.numpy as jnp
import numpy as np

from deepq.dqn.agent import init_params
from deepq.dqn.config import DQNConfig
from deepq.dqn.learner import (
    LearnerState,
    hard_target_update,
    make_optimizer,
    make_update,
    soft_target_update,
)
from deepq.dqn.networks import QNetwork
from deepq.dqn.replay import Batch, pack_batch


def test_soft_update_moves_tau_of_the_way():
    target = {"w": jnp.array([0.0, 10.0])}
    online = {"w": jnp.array([10.0, 10.0])}
    once = soft_target_update(target, online, 0.1)
    np.testing.assert_allclose(once["w"], [1.0, 10.0])
    twice = soft_target_update(once, online, 0.1)
    np.testing.assert_allclose(twice["w"], [1.9, 10.0])  # 1 + 0.1 * (10 - 1)


def test_hard_update_copies_the_online_parameters():
    state = LearnerState(
        {"w": jnp.array([1.0])}, {"w": jnp.array([5.0])}, (), jnp.zeros((), jnp.int32)
    )
    np.testing.assert_array_equal(hard_target_update(state).target_params["w"], [1.0])


def make_state_and_batches(config, k=3):
    params = init_params(config, 3, n_actions=2)
    optimizer = make_optimizer(config)
    state = LearnerState(params, params, optimizer.init(params), jnp.zeros((), jnp.int32))
    rng = np.random.default_rng(0)
    batches = pack_batch(
        Batch(
            obs=rng.standard_normal((k, 8, 3)).astype(np.float32),
            actions=rng.integers(0, 2, (k, 8)).astype(np.int32),
            rewards=rng.standard_normal((k, 8)).astype(np.float32),
            next_obs=rng.standard_normal((k, 8, 3)).astype(np.float32),
            terminated=np.zeros((k, 8), bool),
            truncated=np.zeros((k, 8), bool),
            discounts=np.full((k, 8), 0.99, np.float32),
        )
    )
    update = make_update(config, QNetwork(2, config.hidden_sizes), optimizer)
    return state, batches, update


def leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def test_update_with_soft_tau_one_makes_target_equal_online():
    config = DQNConfig(
        hidden_sizes=(8,), target_update="soft", tau=1.0, batch_size=8, learning_starts=8
    )
    state, batches, update = make_state_and_batches(config)
    new_state, metrics = update(state, batches)
    assert int(new_state.grad_steps) == 3
    for online, target in zip(
        leaves(new_state.params), leaves(new_state.target_params), strict=True
    ):
        np.testing.assert_array_equal(online, target)
    assert np.isfinite(float(metrics["loss"]))


def test_update_with_soft_tau_follows_polyak_each_gradient_step():
    config = DQNConfig(
        hidden_sizes=(8,), target_update="soft", tau=0.5, batch_size=8, learning_starts=8
    )
    state, batches, update = make_state_and_batches(config, k=1)
    new_state, _ = update(state, batches)
    # one step: target = 0.5 * new_online + 0.5 * old_target
    for old_target, online, target in zip(
        leaves(state.target_params),
        leaves(new_state.params),
        leaves(new_state.target_params),
        strict=True,
    ):
        np.testing.assert_allclose(target, 0.5 * online + 0.5 * old_target, rtol=1e-6)


def test_update_with_hard_targets_leaves_the_target_alone():
    config = DQNConfig(hidden_sizes=(8,), target_update="hard", batch_size=8, learning_starts=8)
    state, batches, update = make_state_and_batches(config)
    new_state, _ = update(state, batches)
    for before, after in zip(
        leaves(state.target_params), leaves(new_state.target_params), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(leaves(state.params), leaves(new_state.params), strict=True)
    )
