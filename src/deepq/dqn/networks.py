"""The Q-network: an observation encoder chosen by the observation space, then a Q head (plain or
dueling), in Flax linen; and its numpy twin, which the learner acts with.

Encoders: an MLP for vector observations (a 1-D Box). :func:`encoder_for` is where the next
encoder (a CNN for frames) is chosen by the observation space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepq.errors import UsageError

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


def encoder_for(observation_space: Any) -> str:
    """The encoder for an observation space: ``"mlp"`` for a 1-D Box (the only one so far)."""
    shape = getattr(observation_space, "shape", None)
    if shape is None or len(shape) != 1:
        raise UsageError(f"no encoder for {observation_space} observations (deepq has an MLP)")
    return "mlp"


class QNetwork(nn.Module):
    """obs [..., obs_dim] -> Q-values [..., n_actions].

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

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = hidden_layers(obs, self.hidden_sizes, self.activation, self.layer_norm)
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
        act = HOST_ACTIVATIONS[self.activation]
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


def _aggregate(advantage: Any, how: str) -> Any:
    """The dueling head's baseline over actions; works on jax and numpy arrays alike."""
    if how == "max":
        return advantage.max(axis=-1, keepdims=True)
    return advantage.mean(axis=-1, keepdims=True)
