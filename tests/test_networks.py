"""The Q-network: shapes, hidden sizes, activations, the dueling head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepq.networks import ACTIVATIONS, QNetwork


def init(network, obs_dim=5, seed=0):
    return network.init(jax.random.key(seed), jnp.zeros((1, obs_dim)))


@pytest.mark.parametrize("dueling", [False, True])
def test_output_shape_for_single_and_batched_observations(dueling):
    net = QNetwork(n_actions=4, hidden_sizes=(16, 8), dueling=dueling)
    params = init(net)
    assert net.apply(params, jnp.zeros((7, 5))).shape == (7, 4)
    assert net.apply(params, jnp.zeros(5)).shape == (4,)


def test_hidden_sizes_define_the_layers():
    params = init(QNetwork(n_actions=3, hidden_sizes=(32, 16, 8)))["params"]
    assert [params[f"hidden_{i}"]["kernel"].shape for i in range(3)] == [(5, 32), (32, 16), (16, 8)]
    assert params["q_head"]["kernel"].shape == (8, 3)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    net = QNetwork(n_actions=2, hidden_sizes=(4,), activation=activation)
    assert np.isfinite(net.apply(init(net), jnp.ones((3, 5)))).all()


def test_dueling_head_is_identifiable_mean_q_equals_value():
    net = QNetwork(n_actions=4, hidden_sizes=(16,), dueling=True)
    params = init(net)
    obs = jax.random.normal(jax.random.key(1), (6, 5))
    q, state = net.apply(params, obs, capture_intermediates=True)
    value = state["intermediates"]["value_head"]["__call__"][0]  # [6, 1]
    np.testing.assert_allclose(q.mean(axis=-1), value[:, 0], rtol=1e-5, atol=1e-6)


def test_dueling_q_ignores_a_constant_shift_of_the_advantages():
    net = QNetwork(n_actions=3, hidden_sizes=(8,), dueling=True)
    params = init(net)
    shifted = jax.tree_util.tree_map(lambda x: x, params)
    bias = shifted["params"]["advantage_head"]["bias"]
    shifted["params"]["advantage_head"]["bias"] = bias + 7.0
    obs = jnp.ones((2, 5))
    np.testing.assert_allclose(net.apply(params, obs), net.apply(shifted, obs), rtol=1e-5)


def test_dueling_hand_computed():
    # Zero hidden weights: hidden = relu(bias) = bias. V = 1, A = [1, 2, 6] -> Q = 1 + A - 3.
    net = QNetwork(n_actions=3, hidden_sizes=(1,), dueling=True)
    params = jax.tree_util.tree_map(jnp.zeros_like, init(net))
    p = params["params"]
    p["hidden_0"]["bias"] = jnp.array([1.0])
    p["value_head"]["bias"] = jnp.array([1.0])
    p["advantage_head"]["bias"] = jnp.array([1.0, 2.0, 6.0])
    np.testing.assert_allclose(net.apply(params, jnp.zeros(5)), [-1.0, 0.0, 4.0])
