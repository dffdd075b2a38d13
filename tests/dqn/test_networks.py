"""The Q-network: shapes, hidden sizes, activations, the dueling head, and its numpy twin."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepq.dqn.networks import (
    ACTIVATIONS,
    CONV_LAYERS,
    HOST_ACTIVATIONS,
    QNetwork,
    encoder_for,
    host_conv,
)
from deepq.errors import UsageError


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


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("mean", [-1.0, 0.0, 4.0]), ("max", [-4.0, -3.0, 1.0])],
)
def test_dueling_hand_computed(aggregation, expected):
    # Zero hidden weights: hidden = relu(bias) = bias. V = 1, A = [1, 2, 6]:
    # mean -> Q = 1 + A - 3; max (the Hands-On ML chapter's) -> Q = 1 + A - 6, so max Q = V.
    net = QNetwork(n_actions=3, hidden_sizes=(1,), dueling=True, dueling_aggregation=aggregation)
    params = jax.tree_util.tree_map(jnp.zeros_like, init(net))
    p = params["params"]
    p["hidden_0"]["bias"] = jnp.array([1.0])
    p["value_head"]["bias"] = jnp.array([1.0])
    p["advantage_head"]["bias"] = jnp.array([1.0, 2.0, 6.0])
    np.testing.assert_allclose(net.apply(params, jnp.zeros(5)), expected)
    np.testing.assert_allclose(net.host_q_values(jax.device_get(params), np.zeros(5)), expected)


def test_layer_norm_normalises_each_hidden_layer_before_the_activation():
    net = QNetwork(n_actions=2, hidden_sizes=(6, 4), layer_norm=True)
    params = init(net)
    assert [params["params"][f"norm_{i}"]["scale"].shape for i in range(2)] == [(6,), (4,)]
    obs = jax.random.normal(jax.random.key(2), (3, 5)) * 100.0
    _, state = net.apply(params, obs, capture_intermediates=True)
    for i in range(2):
        normed = state["intermediates"][f"norm_{i}"]["__call__"][0]  # fresh scale 1, bias 0
        np.testing.assert_allclose(normed.mean(axis=-1), 0.0, atol=1e-5)
        np.testing.assert_allclose(normed.std(axis=-1), 1.0, rtol=1e-3)


def test_layer_norm_hand_computed():
    # One hidden unit pair with bias [1, 3]: mean 2, std 1 -> normalised [-1, 1]; relu -> [0, 1].
    net = QNetwork(n_actions=1, hidden_sizes=(2,), layer_norm=True)
    params = jax.tree_util.tree_map(jnp.zeros_like, init(net))
    p = params["params"]
    p["hidden_0"]["bias"] = jnp.array([1.0, 3.0])
    p["norm_0"]["scale"] = jnp.array([1.0, 1.0])
    p["q_head"]["kernel"] = jnp.array([[5.0], [7.0]])
    np.testing.assert_allclose(net.apply(params, jnp.zeros(5)), [7.0], rtol=1e-5)


def test_without_layer_norm_there_are_no_norm_parameters():
    assert not any(name.startswith("norm_") for name in init(QNetwork(n_actions=2))["params"])


def test_every_activation_has_a_numpy_twin_that_agrees():
    assert set(HOST_ACTIVATIONS) == set(ACTIVATIONS)
    x = np.concatenate([np.linspace(-8, 8, 161), [-1000.0, 1000.0]]).astype(np.float32)
    for name, activation in ACTIVATIONS.items():
        np.testing.assert_allclose(
            HOST_ACTIVATIONS[name](x),
            activation(jnp.asarray(x)),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )


def test_host_activations_hand_computed():
    x = np.array([-2.0, 0.0, 3.0], np.float32)
    np.testing.assert_allclose(HOST_ACTIVATIONS["relu"](x), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(HOST_ACTIVATIONS["leaky_relu"](x), [-0.02, 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(HOST_ACTIVATIONS["elu"](x), [np.exp(-2.0) - 1, 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(
        HOST_ACTIVATIONS["silu"](x),
        [-2 / (1 + np.exp(2.0)), 0.0, 3 / (1 + np.exp(-3.0))],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "activation, dueling, layer_norm, aggregation",
    [
        ("relu", False, False, "mean"),
        ("relu", False, True, "mean"),
        ("relu", True, False, "mean"),
        ("gelu", True, True, "mean"),
        ("elu", True, False, "max"),
    ],
)
def test_host_q_values_equal_the_networks(activation, dueling, layer_norm, aggregation):
    net = QNetwork(4, (16, 8), activation, dueling, layer_norm, dueling_aggregation=aggregation)
    params = init(net, obs_dim=5, seed=3)
    if layer_norm:  # make the LayerNorm's scale and bias count
        norm = params["params"]["norm_1"]
        norm["scale"], norm["bias"] = norm["scale"] * 1.5, norm["bias"] + 0.25
    obs = np.asarray(jax.random.normal(jax.random.key(4), (9, 5))) * 3.0
    expected = np.asarray(net.apply(params, obs))
    np.testing.assert_allclose(
        net.host_q_values(jax.device_get(params), obs), expected, rtol=1e-5, atol=1e-5
    )
    assert net.host_q_values(jax.device_get(params), obs[0]).shape == (4,)


def test_host_q_values_hand_computed_layer_norm():
    # As test_layer_norm_hand_computed: normalised [-1, 1] -> relu [0, 1] -> 5*0 + 7*1 = 7.
    net = QNetwork(n_actions=1, hidden_sizes=(2,), layer_norm=True)
    params = jax.device_get(jax.tree_util.tree_map(jnp.zeros_like, init(net)))
    p = params["params"]
    p["hidden_0"]["bias"] = np.array([1.0, 3.0], np.float32)
    p["norm_0"]["scale"] = np.array([1.0, 1.0], np.float32)
    p["q_head"]["kernel"] = np.array([[5.0], [7.0]], np.float32)
    np.testing.assert_allclose(net.host_q_values(params, np.zeros(5)), [7.0], rtol=1e-5)


def test_the_encoder_is_chosen_by_the_observation_space():
    assert encoder_for(gym.spaces.Box(-1.0, 1.0, (8,))) == ("mlp", 1.0)
    # MinAtar's 10×10×k binary frames: the paper's small CNN, values as they are
    assert encoder_for(gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool)) == ("small_cnn", 1.0)
    # Atari's 84×84 pixels: the Nature CNN, bytes scaled into [0, 1]
    assert encoder_for(gym.spaces.Box(0, 255, (84, 84, 4), dtype=np.uint8)) == (
        "nature_cnn",
        1 / 255,
    )
    for shape in [(4, 84, 84, 1), (2, 2, 3), (84, 84)]:
        with pytest.raises(UsageError, match="no encoder for"):
            encoder_for(gym.spaces.Box(0, 255, shape, dtype=np.uint8))
    # FrameStackObservation's [4, 84, 84] is refused, not read as a 4×84 image of 84 channels;
    # a small frame of many channels is still a frame
    with pytest.raises(UsageError, match=r"look channels-first \[channels, height, width\]"):
        encoder_for(gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8))
    assert encoder_for(gym.spaces.Box(0, 1, (10, 10, 32), dtype=bool))[0] == "small_cnn"


def test_host_conv_hand_computed():
    # One 3×3 single-channel image 1..9, a 2×2 kernel of ones, stride 1: each output is the sum
    # of a 2×2 window: [[1+2+4+5, 2+3+5+6], [4+5+7+8, 5+6+8+9]]; stride 2 keeps the first.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    kernel = np.ones((2, 2, 1, 1))
    np.testing.assert_array_equal(host_conv(x, kernel, 1)[0, :, :, 0], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(host_conv(x, kernel, 2)[0, :, :, 0], [[12]])


@pytest.mark.parametrize(
    ("encoder", "shape", "scale"),
    [("small_cnn", (10, 10, 3), 1.0), ("nature_cnn", (84, 84, 4), 1 / 255)],
)
def test_host_q_values_equal_the_cnns(encoder, shape, scale):
    """The numpy twin the learner acts with, for frames: one observation and a batch, uint8
    pixels scaled inside both."""
    net = QNetwork(5, (16,), "relu", dueling=True, encoder=encoder, input_scale=scale)
    params = net.init(jax.random.key(0), jnp.zeros((1, *shape)))
    frames = np.random.default_rng(0).integers(0, 256 if scale < 1 else 2, (3, *shape))
    frames = frames.astype(np.uint8)
    expected = np.asarray(net.apply(params, frames))
    host = jax.device_get(params)
    np.testing.assert_allclose(net.host_q_values(host, frames), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        net.host_q_values(host, frames[0]), expected[0], rtol=1e-5, atol=1e-5
    )
    assert {f"conv_{i}" for i in range(len(CONV_LAYERS[encoder]))} <= params["params"].keys()
