"""The training loop's packed learner state: the update's arithmetic on one vector, fewer leaves
per jitted call."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from deepq.config import DQNConfig
from deepq.dqn import (
    LearnerState,
    hard_target_update,
    make_optimizer,
    make_state_packing,
    make_update,
)
from deepq.networks import QNetwork
from tests.test_target_updates import make_state_and_batches

CONFIG = DQNConfig(hidden_sizes=(8, 4), batch_size=8, learning_starts=8, learning_rate=0.01)


def packing_for(state, config=CONFIG):
    """The loop's packing: the flat update of make_update(..., unravel) inside."""
    optimizer = make_optimizer(config)
    _, unravel = ravel_pytree(state.params)
    flat_update = make_update(config, QNetwork(2, config.hidden_sizes).apply, optimizer, unravel)
    return make_state_packing(state, optimizer, flat_update)


def leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def assert_states_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def distinct_state(config=CONFIG):
    """A state whose online and target parameters and optimiser moments all differ."""
    state, batches, update = make_state_and_batches(config)
    state, _ = update(state, batches)  # moments become non-zero, the count 3
    state = state.replace(
        target_params=jax.tree_util.tree_map(lambda x: x + 1.0, state.target_params),
        grad_steps=jnp.array(7, jnp.int32),
    )
    return state, batches, update


def test_pack_then_unpack_gives_back_the_same_state():
    state, _, update = distinct_state()
    packing = packing_for(state)
    packed = packing.pack(state)
    assert packed.floats.ndim == 1 and packed.floats.dtype == jnp.float32
    assert [int(x) for x in packed.ints] == [3, 7]  # Adam's count, then grad_steps
    assert_states_equal(packing.unpack(packed), state)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"optimizer": "rmsprop", "max_grad_norm": 1.0}, {"target_update": "soft", "tau": 0.1}],
    ids=["adam", "rmsprop-clipped", "soft-target"],
)
def test_the_packed_update_is_the_update_on_trees(overrides):
    # The flat update runs the optimiser on one vector per moment, where XLA may round the last
    # bit differently from per-array operations: equal to float32 precision, not bit for bit.
    config = CONFIG.replace(**overrides) if overrides else CONFIG
    state, batches, update = distinct_state(config)
    packing = packing_for(state, config)
    expected, expected_metrics = update(state, batches)
    packed, metrics = packing.update(packing.pack(state), batches)
    got = packing.unpack(packed)
    for x, y in zip(leaves(got), leaves(expected), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.grad_steps, expected.grad_steps)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-6)
    assert not np.array_equal(
        got.params["params"]["q_head"]["kernel"], state.params["params"]["q_head"]["kernel"]
    )


def test_an_optimiser_whose_state_is_not_shaped_like_the_parameters_is_refused():
    state, _, _ = distinct_state()
    scalar_state = optax.GradientTransformation(
        lambda params: jnp.zeros(()), lambda updates, s, params=None: (updates, s)
    )
    odd = state.replace(opt_state=scalar_state.init(state.params))
    with pytest.raises(TypeError, match="element-wise optimiser"):
        make_state_packing(odd, scalar_state, lambda s, b: (s, {}))


def test_the_packed_hard_target_update_copies_the_online_parameters_only():
    state, _, update = distinct_state()
    packing = packing_for(state)
    synced = packing.unpack(packing.hard_target_update(packing.pack(state)))
    assert_states_equal(synced, hard_target_update(state))


def test_host_params_are_the_online_parameters_in_numpy():
    state, _, update = distinct_state()
    packing = packing_for(state)
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
        make_state_packing(state, optax.identity(), lambda s, b: (s, {}))
