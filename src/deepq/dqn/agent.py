"""A trained DQN agent (config, env facts, parameters) and how it is saved and loaded.

What a checkpoint contains: :mod:`deepq.run.checkpoint` (the format), and here, for an agent,
its ``params`` arrays and a meta.json with ``kind``, the config, ``obs_dim``, ``n_actions`` and
(for frames) ``obs_shape`` and ``obs_dtype``, from which the network is rebuilt by code before any
array is read into it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepq.dqn.config import DQNConfig, config_from_dict, samples_per_learning_call
from deepq.dqn.frame_replay import frame_stack, planned_nbytes
from deepq.dqn.losses import ApplyFn
from deepq.dqn.networks import QNetwork, encoder_for_shape
from deepq.errors import CheckpointError, UsageError
from deepq.run.checkpoint import (
    arrays_to_pytree,
    checkpoint_config,
    load_checkpoint,
    pytree_to_arrays,
    require_finite,
    save_network_agent,
)
from deepq.run.envs import make_agent_env


def make_greedy_actions(apply_fn: ApplyFn) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted ``greedy_actions(params, obs [N, obs_dim]) -> argmax_a Q [N]`` (compiled once per run)."""
    return jax.jit(lambda params, obs: jnp.argmax(apply_fn(params, obs), axis=-1))


@dataclass
class Agent:
    """A trained Q-network with what is needed to run it: config, env facts, parameters."""

    config: DQNConfig
    params: Any
    obs_dim: int  # the number of observation values: obs_shape's product
    n_actions: int
    info: dict[str, Any]
    obs_shape: tuple[int, ...] | None = None  # None: a vector of obs_dim values
    obs_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.obs_shape is None:
            self.obs_shape = (self.obs_dim,)

    @property
    def network(self) -> QNetwork:
        return build_network(
            self.config, self.n_actions, *encoder_for_shape(self.shape, self.obs_dtype)
        )

    @property
    def shape(self) -> tuple[int, ...]:
        assert self.obs_shape is not None  # set in __post_init__
        return self.obs_shape

    @functools.cached_property
    def _q_values(self) -> Callable[[Any, jax.Array], jax.Array]:
        return jax.jit(self.network.apply)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values [n_actions] for one observation, or [N, n_actions] for a batch."""
        return np.asarray(self._q_values(self.params, np.asarray(obs, dtype=np.float32)))

    def act(self, obs: np.ndarray) -> int | np.ndarray:
        """Greedy action for one observation (int) or a batch (array)."""
        q = self.q_values(obs)
        return int(np.argmax(q)) if q.ndim == 1 else np.argmax(q, axis=-1)

    def policy(self) -> Callable[[np.ndarray], np.ndarray]:
        """obs [N, obs_dim] -> greedy actions [N], jitted."""
        greedy_actions = make_greedy_actions(self.network.apply)
        return lambda obs: np.asarray(greedy_actions(self.params, obs))

    def make_env(self, render_mode: str | None = None):
        """The agent's env; one whose spaces differ from the checkpoint's is refused."""
        c = self.config
        return make_agent_env(self.shape, self.n_actions, c.env_id, c.max_episode_steps,
                              c.time_feature, render_mode, c.sticky_actions, self.obs_dtype)  # fmt: skip


def build_network(
    config: DQNConfig, n_actions: int, encoder: str = "mlp", input_scale: float = 1.0
) -> QNetwork:
    """The config's Q-network; ``encoder`` and ``input_scale`` come from the observations
    (:func:`~deepq.dqn.networks.encoder_for`)."""
    return QNetwork(
        n_actions,
        tuple(config.hidden_sizes),
        config.activation,
        config.dueling,
        config.layer_norm,
        encoder,
        config.dueling_aggregation,
        input_scale,
        config.num_atoms,
        config.v_min,
        config.v_max,
        config.noisy,
        config.noisy_sigma0,
    )


@functools.lru_cache(maxsize=8)
def _network_init(network: QNetwork, obs_shape: tuple[int, ...]) -> Callable[[jax.Array], Any]:
    """One jitted initialiser per architecture: a single compile instead of dozens of eager ops."""
    return jax.jit(
        lambda seed: network.init(jax.random.key(seed), jnp.zeros((1, *obs_shape), jnp.float32))
    )


def _initialiser(
    config: DQNConfig, obs: int | tuple[int, ...], n_actions: int, obs_dtype: Any
) -> Callable[[jax.Array], Any]:
    shape = (obs,) if isinstance(obs, int) else tuple(obs)
    network = build_network(config, n_actions, *encoder_for_shape(shape, obs_dtype))
    return _network_init(network, shape)


def init_params(
    config: DQNConfig, obs: int | tuple[int, ...], n_actions: int, obs_dtype: Any = "float32"
) -> Any:
    """Fresh Q-network parameters for observations of ``obs`` values (or of shape ``obs``),
    seeded by ``config.seed``."""
    return _initialiser(config, obs, n_actions, obs_dtype)(config.seed)


def params_shape(
    config: DQNConfig, obs: int | tuple[int, ...], n_actions: int, obs_dtype: Any = "float32"
) -> Any:
    """The parameter pytree's shapes and dtypes, without computing (or compiling) anything."""
    return jax.eval_shape(_initialiser(config, obs, n_actions, obs_dtype), config.seed)


# Room for a safetensors header: ~200 bytes of JSON per array (its name, dtype, shape, offsets).
HEADER_BYTES_PER_ARRAY = 1024
HEADER_BYTES = 1 << 20


def checkpoint_arrays_bound(meta: dict[str, Any], source: str) -> int:
    """The largest arrays file a DQN checkpoint with this (schema-checked) meta can hold: an
    agent's parameters; a training state's learner (online and target parameters, at most three
    optimiser moments), its replay at full capacity with its priorities and the TD errors of one
    learning call, and each env's unfinished episode (no longer than the env steps so far).
    A larger file is refused before one byte of it is read."""
    config = checkpoint_config(config_from_dict, meta, source)
    shape = tuple(meta.get("obs_shape") or (meta["obs_dim"],))
    dtype = np.dtype(meta.get("obs_dtype") or "float32")
    try:
        leaves = jax.tree_util.tree_leaves(params_shape(config, shape, meta["n_actions"], dtype))
    except UsageError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    params = sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in leaves)
    header = HEADER_BYTES + 6 * len(leaves) * HEADER_BYTES_PER_ARRAY
    if meta["kind"] != "dqn-training-state":
        return params + header
    c, obs_bytes = config, math.prod(shape) * dtype.itemsize
    stack = frame_stack(c.env_id, shape)
    if stack > 1:
        replay = planned_nbytes(c.buffer_size, shape[:-1], stack, c.num_envs, c.n_step, dtype)
    else:  # obs, next_obs, actions (int32), rewards, discounts (float32) and two flags
        replay = c.buffer_size * (2 * obs_bytes + 14)
    learning_call = samples_per_learning_call(c)
    priorities = c.buffer_size * 8 + learning_call * 12 if c.prioritized else 0
    episodes = 2 * (meta["progress"]["env_steps"] + c.num_envs) * 8  # actions, frame ids
    return 5 * params + replay + priorities + episodes + header


def save_agent(directory: Path, agent: Agent) -> None:
    save_network_agent(directory, "dqn-agent", agent)


def load_agent_checkpoint(directory: Path) -> Agent:
    """Load a DQN checkpoint directory written by :func:`save_agent` or the training loop."""
    source = str(Path(directory) / "meta.json")
    arrays, meta = load_checkpoint(directory, lambda m: checkpoint_arrays_bound(m, source))
    return agent_from_checkpoint(arrays, meta, str(directory))


def agent_from_checkpoint(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str
) -> Agent:
    """The agent in a verified checkpoint (``meta`` already matches its schema): the network is
    built from the config, then every parameter array must fit it and be finite."""
    if meta["kind"] not in ("dqn-agent", "dqn-training-state"):
        raise CheckpointError(f"{source} is not a DQN checkpoint (kind {meta['kind']!r})")
    config = checkpoint_config(config_from_dict, meta, source)
    obs_dim, n_actions = meta["obs_dim"], meta["n_actions"]
    shape = tuple(meta.get("obs_shape") or (obs_dim,))  # older checkpoints: a vector
    dtype = meta.get("obs_dtype") or "float32"
    try:
        template = params_shape(config, shape, n_actions, dtype)
    except UsageError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    params = arrays_to_pytree("params", template, arrays, source)
    require_finite(pytree_to_arrays("params", params), source)
    return Agent(config, params, obs_dim, n_actions, dict(meta["info"]), shape, dtype)
