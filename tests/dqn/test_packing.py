"""The training loop's packed learner state: same arithmetic, fewer leaves per jitted call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_target_updates import make_state_and_batches

from deepq.dqn.config import DQNConfig
from deepq.dqn.learner import LearnerState, hard_target_update
from deepq.dqn.packing import make_state_packing

CONFIG = DQNConfig(hidden_sizes=(8, 4), batch_size=8, learning_starts=8, learning_rate=0.01)


def assert_states_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def distinct_state():
    """A state whose online and target parameters and optimiser moments all differ."""
    state, batches, update = make_state_and_batches(CONFIG)
    state, _ = update(state, batches)  # moments become non-zero, the count 3
    state = state.replace(
        target_params=jax.tree_util.tree_map(lambda x: x + 1.0, state.target_params),
        grad_steps=jnp.array(7, jnp.int32),
    )
    return state, batches, update


def test_pack_then_unpack_gives_back_the_same_state():
    state, _, update = distinct_state()
    packing = make_state_packing(state, update, hard_target_update)
    packed = packing.pack(state)
    assert packed.floats.ndim == 1 and packed.floats.dtype == jnp.float32
    assert [int(x) for x in packed.ints] == [3, 7]  # Adam's count, then grad_steps
    assert_states_equal(packing.unpack(packed), state)


def test_the_packed_update_is_the_update():
    state, batches, update = distinct_state()
    packing = make_state_packing(state, update, hard_target_update)
    expected, expected_metrics = update(state, batches)
    packed, metrics = packing.update(packing.pack(state), batches)
    assert_states_equal(packing.unpack(packed), expected)
    np.testing.assert_array_equal(metrics["loss"], expected_metrics["loss"])


def test_the_packed_hard_target_update_copies_the_online_parameters_only():
    state, _, update = distinct_state()
    packing = make_state_packing(state, update, hard_target_update)
    synced = packing.unpack(packing.hard_target_update(packing.pack(state)))
    assert_states_equal(synced, hard_target_update(state))


def test_host_params_are_the_online_parameters_in_numpy():
    state, _, update = distinct_state()
    packing = make_state_packing(state, update, hard_target_update)
    host = packing.host_params(packing.pack(state))
    for x, y in zip(
        jax.tree_util.tree_leaves(host), jax.tree_util.tree_leaves(state.params), strict=True
    ):
        assert isinstance(x, np.ndarray) and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_integer_parameters_are_refused():
    params = {"w": jnp.zeros(2, jnp.int32)}
    state = LearnerState(params, params, (), jnp.zeros((), jnp.int32))
    with pytest.raises(TypeError, match="floating-point"):
        make_state_packing(state, lambda s, b: (s, {}), hard_target_update)
