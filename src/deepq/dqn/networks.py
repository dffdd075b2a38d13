"""The Q-network: an observation encoder chosen by the observation space, then a Q head (plain or
dueling; one value per action, or C51's distribution over returns), with Dense or noisy layers,
in Flax linen; and its numpy twin, which the learner acts with.

Encoders (:func:`encoder_for` picks one from the observation space): an MLP for vector
observations (a 1-D Box); for frames [H, W, C], convolutions then the MLP: ``small_cnn``, the
MinAtar paper's one 3×3 layer of 16 filters (Young & Tian 2019) for frames under 36 pixels a
side, and ``nature_cnn``, Mnih et al.'s 32·8×8/4, 64·4×4/2, 64·3×3/1 (2015) for larger ones. uint8
pixels are scaled by 1/255 inside the network, so replay keeps them as bytes.
"""

from __future__ import annotations

import functools
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


Layer = Callable[[int, str], Callable[[jax.Array], jax.Array]]  # (width, name) -> a layer


def dense_layer(width: int, name: str) -> nn.Dense:
    return nn.Dense(width, name=name)


def hidden_layers(
    obs: jax.Array,
    hidden_sizes: Sequence[int],
    activation: str,
    layer_norm: bool = False,
    layer: Layer = dense_layer,
) -> jax.Array:
    """The MLP trunk both networks share: Dense (or ``layer``) layers named hidden_0, hidden_1,
    ... (each followed by a LayerNorm named norm_i when ``layer_norm``). Called inside a module's
    compact ``__call__``, the layers become that module's parameters."""
    act = ACTIVATIONS[activation]
    x = obs.astype(jnp.float32)
    for i, width in enumerate(hidden_sizes):
        x = layer(width, f"hidden_{i}")(x)
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


def scale_noise(noise: Any, xp: Any = jnp) -> Any:
    """f(ε) = sign(ε) · sqrt(|ε|), Fortunato et al.'s factorised noise (``xp``: jnp or np)."""
    return xp.sign(noise) * xp.sqrt(xp.abs(noise))


class NoisyDense(nn.Module):
    """A Dense layer with learned, factorised Gaussian noise on its weights (Fortunato et al. 2018):

        y = x · (μ_W + σ_W ⊙ f(ε_in) f(ε_out)ᵀ) + μ_b + σ_b ⊙ f(ε_out),   ε ~ N(0, 1)

    The noise is drawn from the ``noise`` RNG stream when the call is given one (training:
    acting and each update); without it the layer is its mean (greedy evaluation). μ starts
    uniform in ±1/sqrt(p) and σ at σ0/sqrt(p), for p inputs; μ keeps Dense's parameter names
    (``kernel``, ``bias``), so the L2 penalty and checkpoints read it as any layer's."""

    features: int
    sigma0: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n_in = x.shape[-1]
        bound, sigma = n_in**-0.5, self.sigma0 * n_in**-0.5
        uniform = nn.initializers.uniform(2 * bound)  # [0, 2·bound): shifted to ±bound below
        kernel = self.param("kernel", lambda k, s: uniform(k, s) - bound, (n_in, self.features))
        bias = self.param("bias", lambda k, s: uniform(k, s) - bound, (self.features,))
        sigma_kernel = self.param(
            "sigma_kernel", nn.initializers.constant(sigma), (n_in, self.features)
        )
        sigma_bias = self.param("sigma_bias", nn.initializers.constant(sigma), (self.features,))
        if not self.has_rng("noise"):
            return x @ kernel + bias
        key_in, key_out = jax.random.split(self.make_rng("noise"))
        noise_in = scale_noise(jax.random.normal(key_in, (n_in,)))
        noise_out = scale_noise(jax.random.normal(key_out, (self.features,)))
        weights = kernel + sigma_kernel * jnp.outer(noise_in, noise_out)
        return x @ weights + bias + sigma_bias * noise_out


class QNetwork(nn.Module):
    """obs [..., obs_dim], or frames [..., H, W, C] with a CNN encoder -> Q-values [..., n_actions].

    Dueling (Wang et al. 2016): Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'), which makes V and A
    identifiable: the mean over actions of Q equals V. With ``dueling_aggregation="max"`` it
    subtracts max_a' A(s, a') instead (the paper's first form, and the Hands-On ML chapter's), so
    V is the greedy action's Q.

    The encoder's layers are created inline (no submodule), so the parameter names are
    ``hidden_i``/``norm_i`` and the heads', as checkpoints since deepq's first version hold them.

    C51 (``num_atoms`` > 1, Bellemare et al. 2017): the head gives, for each action, logits over
    ``num_atoms`` returns evenly spaced from ``v_min`` to ``v_max``; Q is the mean of that
    distribution, and ``__call__(obs, logits=True)`` gives the logits [..., n_actions, atoms]
    the loss needs. A dueling C51 head combines V and A per atom, as Rainbow's. ``noisy`` makes
    every Dense layer after the encoder a :class:`NoisyDense`.
    """

    n_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False
    encoder: str = "mlp"
    dueling_aggregation: str = "mean"
    input_scale: float = 1.0
    num_atoms: int = 1
    v_min: float = -10.0
    v_max: float = 10.0
    noisy: bool = False
    noisy_sigma0: float = 0.5

    @property
    def support(self) -> np.ndarray:
        """C51's atoms: the returns its distributions put probability on (float32 [atoms])."""
        return categorical_support(self.v_min, self.v_max, self.num_atoms)

    def _layer(self, width: int, name: str) -> nn.Module:
        if self.noisy:
            return NoisyDense(width, self.noisy_sigma0, name=name)
        return nn.Dense(width, name=name)

    @nn.compact
    def __call__(self, obs: jax.Array, logits: bool = False) -> jax.Array:
        x = obs.astype(jnp.float32)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        if self.encoder != "mlp":  # frames [..., H, W, C]: convolutions, then flattened
            for i, (filters, side, stride) in enumerate(CONV_LAYERS[self.encoder]):
                conv = nn.Conv(filters, (side, side), (stride, stride), "VALID", name=f"conv_{i}")
                x = ACTIVATIONS[self.activation](conv(x))
            x = x.reshape((*x.shape[:-3], -1))
        x = hidden_layers(x, self.hidden_sizes, self.activation, self.layer_norm, self._layer)
        if self.num_atoms == 1:
            if not self.dueling:
                return self._layer(self.n_actions, "q_head")(x)
            value = self._layer(1, "value_head")(x)  # [..., 1]
            advantage = self._layer(self.n_actions, "advantage_head")(x)  # [..., n_actions]
            return value + advantage - _aggregate(advantage, self.dueling_aggregation)
        shape = (*x.shape[:-1], self.n_actions, self.num_atoms)
        if not self.dueling:
            out = self._layer(self.n_actions * self.num_atoms, "q_head")(x).reshape(shape)
        else:
            value = self._layer(self.num_atoms, "value_head")(x)[..., None, :]  # [..., 1, atoms]
            advantage = self._layer(self.n_actions * self.num_atoms, "advantage_head")(x)
            advantage = advantage.reshape(shape)
            out = value + advantage - _aggregate(advantage, self.dueling_aggregation, axis=-2)
        if logits:
            return out
        return jnp.sum(jax.nn.softmax(out, axis=-1) * self.support, axis=-1)

    def host_q_values(
        self, params: Any, obs: np.ndarray, noise_rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """This network's forward pass in numpy, on a host copy of its parameters (noisy layers
        draw their noise from ``noise_rng``, one draw per call; without it they are their mean).

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

        def layer(name: str, x: np.ndarray) -> np.ndarray:
            return host_dense(p[name], x, noise_rng if self.noisy else None)

        for i in range(len(self.hidden_sizes)):
            x = layer(f"hidden_{i}", x)
            if self.layer_norm:  # flax's LayerNorm: fast variance, epsilon 1e-6
                mean = x.mean(axis=-1, keepdims=True)
                variance = np.maximum((x * x).mean(axis=-1, keepdims=True) - mean * mean, 0.0)
                x = (x - mean) / np.sqrt(variance + 1e-6) * p[f"norm_{i}"]["scale"]
                x = x + p[f"norm_{i}"]["bias"]
            x = act(x)
        if self.num_atoms == 1:
            if not self.dueling:
                return layer("q_head", x)
            value, advantage = layer("value_head", x), layer("advantage_head", x)
            return value + advantage - _aggregate(advantage, self.dueling_aggregation)
        shape = (*x.shape[:-1], self.n_actions, self.num_atoms)
        if not self.dueling:
            out = layer("q_head", x).reshape(shape)
        else:
            value = layer("value_head", x)[..., None, :]
            advantage = layer("advantage_head", x).reshape(shape)
            out = value + advantage - _aggregate(advantage, self.dueling_aggregation, axis=-2)
        out = out - out.max(axis=-1, keepdims=True)  # a stable softmax
        probabilities = np.exp(out) / np.exp(out).sum(axis=-1, keepdims=True)
        return probabilities @ self.support


@functools.lru_cache(maxsize=16)
def categorical_support(v_min: float, v_max: float, num_atoms: int) -> np.ndarray:
    """``num_atoms`` returns evenly spaced from ``v_min`` to ``v_max`` (float32, read-only).
    Cached: the numpy twin reads it at every acting step, where a fresh linspace cost ~50 µs."""
    support = np.linspace(v_min, v_max, num_atoms, dtype=np.float32)
    support.flags.writeable = False
    return support


def host_dense(p: dict[str, np.ndarray], x: np.ndarray, noise_rng: Any = None) -> np.ndarray:
    """A Dense layer in numpy, or a :class:`NoisyDense` one with noise from ``noise_rng``.

    The noisy weights are never formed: x · (μ + σ ⊙ f(ε_in) f(ε_out)ᵀ) is computed as
    x · μ + ((x ⊙ f(ε_in)) · σ) ⊙ f(ε_out), two products with the stored matrices where forming
    the [in, out] noisy matrix at every acting step cost more than the products themselves.
    The same value up to float rounding (test_rainbow_parts checks the two forms)."""
    if noise_rng is None:
        return x @ p["kernel"] + p["bias"]
    n_in, n_out = p["kernel"].shape
    noise_in = scale_noise(noise_rng.standard_normal(n_in).astype(np.float32), np)
    noise_out = scale_noise(noise_rng.standard_normal(n_out).astype(np.float32), np)
    noise = ((x * noise_in) @ p["sigma_kernel"] + p["sigma_bias"]) * noise_out
    return x @ p["kernel"] + p["bias"] + noise


def host_conv(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """A 'VALID' convolution in numpy, as flax's Conv computes it: x [N, H, W, C], kernel
    [k, k, C, F] -> [N, H', W', F]. Each output pixel is the dot product of its k×k×C window with
    the kernel; the windows are strided views of x, never copied before the product."""
    side = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (side, side), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [N, H', W', C, k, k]
    return np.tensordot(windows, np.transpose(kernel, (2, 0, 1, 3)), axes=([3, 4, 5], [0, 1, 2]))


def _aggregate(advantage: Any, how: str, axis: int = -1) -> Any:
    """The dueling head's baseline over actions (``axis``); jax and numpy arrays alike."""
    if how == "max":
        return advantage.max(axis=axis, keepdims=True)
    return advantage.mean(axis=axis, keepdims=True)
