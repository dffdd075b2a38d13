"""The Q-network: an observation encoder chosen by the observation space, then a Q head (plain or
dueling), in Flax linen; and its numpy twin, which the learner acts with.

Encoders (:func:`encoder_for` picks one from the observation space): an MLP for vector
observations (a 1-D Box); for frames [H, W, C], convolutions then the MLP: ``small_cnn``, the
MinAtar paper's one 3×3 layer of 16 filters (Young & Tian 2019) for frames under 36 pixels a
side, and ``nature_cnn``, Mnih et al.'s 32·8×8/4, 64·4×4/2, 64·3×3/1 (2015) for larger ones. uint8
pixels are scaled by 1/255 inside the network, so replay keeps them as bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepq.errors import UsageError
from deepq.run.envs import is_frame_shape, looks_channels_first

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "leaky_relu": nn.leaky_relu,
}

# The same functions in numpy, for host_q_values (test_networks checks each against its twin).
HOST_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x * 0.5 * (1.0 + np.tanh(0.5 * x)),  # x·sigmoid(x), without overflow
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
}


def hidden_layers(
    obs: jax.Array, hidden_sizes: Sequence[int], activation: str, layer_norm: bool = False
) -> jax.Array:
    """The MLP trunk both networks share: Dense layers named hidden_0, hidden_1, ... (each
    followed by a LayerNorm named norm_i when ``layer_norm``). Called inside a module's compact
    ``__call__``, the layers become that module's parameters."""
    act = ACTIVATIONS[activation]
    x = obs.astype(jnp.float32)
    for i, width in enumerate(hidden_sizes):
        x = nn.Dense(width, name=f"hidden_{i}")(x)
        if layer_norm:
            x = nn.LayerNorm(name=f"norm_{i}")(x)
        x = act(x)
    return x


# Each convolution: (filters, kernel side, stride), all 'VALID' and followed by the activation.
CONV_LAYERS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "mlp": (),
    "small_cnn": ((16, 3, 1),),
    "nature_cnn": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),
}
NATURE_CNN_MIN_SIDE = 36  # the smallest frame its three layers fit (one pixel out)


def encoder_for_shape(shape: tuple[int, ...], dtype: Any = np.float32) -> tuple[str, float]:
    """The encoder for observations of ``shape`` and ``dtype``, and the scale its inputs are
    multiplied by (1/255 for uint8 pixels, 1 otherwise)."""
    scale = 1.0 / 255.0 if np.dtype(dtype) == np.uint8 else 1.0
    if len(shape) == 1:
        return "mlp", scale
    if looks_channels_first(shape):
        raise UsageError(
            f"observations of shape {tuple(shape)} look channels-first [channels, height, width] "
            "(as Gymnasium's FrameStackObservation stacks them); deepq's CNNs take frames "
            "[height, width, channels]: move the channels last with an observation wrapper"
        )
    if is_frame_shape(shape):
        return ("nature_cnn" if min(shape[:2]) >= NATURE_CNN_MIN_SIDE else "small_cnn"), scale
    raise UsageError(
        f"no encoder for observations of shape {tuple(shape)}: deepq has an MLP for vectors and "
        "CNNs for frames [height, width, channels] of at least 3x3"
    )


def encoder_for(observation_space: Any) -> tuple[str, float]:
    """:func:`encoder_for_shape` of a Gymnasium observation space."""
    shape = getattr(observation_space, "shape", None)
    if shape is None:
        raise UsageError(f"no encoder for {observation_space} observations")
    return encoder_for_shape(tuple(shape), observation_space.dtype)


class QNetwork(nn.Module):
    """obs [..., obs_dim], or frames [..., H, W, C] with a CNN encoder -> Q-values [..., n_actions].

    Dueling (Wang et al. 2016): Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'), which makes V and A
    identifiable: the mean over actions of Q equals V. With ``dueling_aggregation="max"`` it
    subtracts max_a' A(s, a') instead (the paper's first form, and the Hands-On ML chapter's), so
    V is the greedy action's Q.

    The encoder's layers are created inline (no submodule), so the parameter names are
    ``hidden_i``/``norm_i`` and the heads', as checkpoints since deepq's first version hold them.
    """

    n_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False
    encoder: str = "mlp"
    dueling_aggregation: str = "mean"
    input_scale: float = 1.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        if self.encoder != "mlp":  # frames [..., H, W, C]: convolutions, then flattened
            for i, (filters, side, stride) in enumerate(CONV_LAYERS[self.encoder]):
                conv = nn.Conv(filters, (side, side), (stride, stride), "VALID", name=f"conv_{i}")
                x = ACTIVATIONS[self.activation](conv(x))
            x = x.reshape((*x.shape[:-3], -1))
        x = hidden_layers(x, self.hidden_sizes, self.activation, self.layer_norm)
        if not self.dueling:
            return nn.Dense(self.n_actions, name="q_head")(x)
        value = nn.Dense(1, name="value_head")(x)  # [..., 1]
        advantage = nn.Dense(self.n_actions, name="advantage_head")(x)  # [..., n_actions]
        return value + advantage - _aggregate(advantage, self.dueling_aggregation)

    def host_q_values(self, params: Any, obs: np.ndarray) -> np.ndarray:
        """This network's forward pass in numpy, on a host copy of its parameters.

        Why a second implementation: XLA runs the computations of a CPU device one after another
        in the order they were dispatched, so a jitted action selection has to wait for the whole
        update dispatched before it. Acting in numpy lets DQN's training loop dispatch the update
        and act and step the envs on the other core while it runs (+40% env steps/s on a 2-core
        CPU). It reads the layers by the names ``__call__`` gives them (test_networks checks the
        two against each other for every activation, LayerNorm and the dueling head).
        """
        p = params["params"]
        x = np.asarray(obs, dtype=np.float32)
        if self.input_scale != 1.0:
            x = x * np.float32(self.input_scale)
        act = HOST_ACTIVATIONS[self.activation]
        if self.encoder != "mlp":
            single = x.ndim == 3
            x = x[None] if single else x
            for i, (_, _, stride) in enumerate(CONV_LAYERS[self.encoder]):
                conv = p[f"conv_{i}"]
                x = act(host_conv(x, conv["kernel"], stride) + conv["bias"])
            x = x.reshape(len(x), -1)
            x = x[0] if single else x
        for i in range(len(self.hidden_sizes)):
            x = x @ p[f"hidden_{i}"]["kernel"] + p[f"hidden_{i}"]["bias"]
            if self.layer_norm:  # flax's LayerNorm: fast variance, epsilon 1e-6
                mean = x.mean(axis=-1, keepdims=True)
                variance = np.maximum((x * x).mean(axis=-1, keepdims=True) - mean * mean, 0.0)
                x = (x - mean) / np.sqrt(variance + 1e-6) * p[f"norm_{i}"]["scale"]
                x = x + p[f"norm_{i}"]["bias"]
            x = act(x)
        if not self.dueling:
            return x @ p["q_head"]["kernel"] + p["q_head"]["bias"]
        value = x @ p["value_head"]["kernel"] + p["value_head"]["bias"]
        advantage = x @ p["advantage_head"]["kernel"] + p["advantage_head"]["bias"]
        return value + advantage - _aggregate(advantage, self.dueling_aggregation)


def host_conv(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """A 'VALID' convolution in numpy, as flax's Conv computes it: x [N, H, W, C], kernel
    [k, k, C, F] -> [N, H', W', F]. Each output pixel is the dot product of its k×k×C window with
    the kernel; the windows are strided views of x, never copied before the product."""
    side = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (side, side), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [N, H', W', C, k, k]
    return np.tensordot(windows, np.transpose(kernel, (2, 0, 1, 3)), axes=([3, 4, 5], [0, 1, 2]))


def _aggregate(advantage: Any, how: str) -> Any:
    """The dueling head's baseline over actions; works on jax and numpy arrays alike."""
    if how == "max":
        return advantage.max(axis=-1, keepdims=True)
    return advantage.mean(axis=-1, keepdims=True)
