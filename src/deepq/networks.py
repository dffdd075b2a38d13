"""The networks: the Q-network (an MLP with an optional dueling head) and the REINFORCE policy (Flax linen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "leaky_relu": nn.leaky_relu,
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


class QNetwork(nn.Module):
    """obs [..., obs_dim] -> Q-values [..., n_actions].

    Dueling (Wang et al. 2016): Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'), which makes V and A
    identifiable: the mean over actions of Q equals V.
    """

    n_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = hidden_layers(obs, self.hidden_sizes, self.activation, self.layer_norm)
        if not self.dueling:
            return nn.Dense(self.n_actions, name="q_head")(x)
        value = nn.Dense(1, name="value_head")(x)  # [..., 1]
        advantage = nn.Dense(self.n_actions, name="advantage_head")(x)  # [..., n_actions]
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class PolicyNetwork(nn.Module):
    """obs [..., obs_dim] -> action logits [..., n_actions] (a softmax policy, for REINFORCE)."""

    n_actions: int
    hidden_sizes: Sequence[int] = (32,)
    activation: str = "elu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = hidden_layers(obs, self.hidden_sizes, self.activation)
        return nn.Dense(self.n_actions, name="logits")(x)
