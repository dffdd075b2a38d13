"""Deep Q-learning (Mnih et al. 2015) with Double DQN, Munchausen DQN, dueling heads, Huber/MSE,
soft/hard targets.

Read top to bottom: the pure functions of learning (TD target, loss, update, action selection,
target updates), then :func:`train`, whose loop is act → learn → sync target → step envs →
store → episode bookkeeping → evaluate → stop. Learning (the update, target sync) is jitted pure
functions; acting is a numpy forward pass on a host copy of the parameters, so that it never
waits behind an update (why: :func:`deepq.networks.host_q_values`); the loop itself does only
numpy bookkeeping.

Where do ``terminated`` and ``truncated`` go? Both are stored in the replay buffer; only
``terminated`` enters :func:`td_target`. A truncated transition (time limit) bootstraps from
its real final observation, which :func:`deepq.envs.final_observations` recovers.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from deepq import __version__
from deepq.checkpoint import (
    arrays_to_pytree,
    keep_copy,
    load_checkpoint,
    pytree_to_arrays,
    save_checkpoint,
    save_network_agent,
)
from deepq.config import DQNConfig, config_from_dict, resolve_config
from deepq.envs import final_observations, make_env, make_vector_env
from deepq.errors import CheckpointError, DeepQError, TrainingDiverged, UsageError
from deepq.evaluation import SELECTION_EVAL_SEED, TEST_EVAL_SEED, Evaluator
from deepq.networks import QNetwork, host_q_values
from deepq.replay import Batch, NStepAccumulator, PackedBatch, ReplayBuffer, unpack_batch
from deepq.runlog import RunLogger, write_json
from deepq.runs import (
    Interrupted,
    RunProgress,
    RunRecorder,
    StopSignal,
    TrainResult,
    final_eval_summary,
    new_run_dir,
    solved_threshold,
)
from deepq.schedules import epsilon_at, learning_rate_schedule
from deepq.threads import start_jax_with_a_core_to_spare

ApplyFn = Callable[[Any, jax.Array], jax.Array]

# ----------------------------------------------------------------------------------------------
# Learning: pure functions.
# ----------------------------------------------------------------------------------------------


def td_target(
    rewards: jax.Array,  # [B]
    terminated: jax.Array,  # [B] bool
    next_q_target: jax.Array,  # [B, A] target network at s'
    next_q_online: jax.Array,  # [B, A] online network at s' (used by Double DQN only)
    discounts: jax.Array | float,  # [B] or scalar: γ, or γ^m for an m-step return
    double: bool,
) -> jax.Array:
    """y = r + γ · (1 − terminated) · Q_target(s', a*)

    a* = argmax_a Q_online(s', a) with Double DQN (van Hasselt et al. 2016), otherwise
    argmax_a Q_target(s', a), i.e. y = r + γ max_a Q_target(s', a). For an m-step transition r is
    the discounted sum of m rewards and γ becomes γ^m. Truncation is not an input: a time-limit
    cut is not a terminal state, so it bootstraps like any other step.
    """
    best_next_action = jnp.argmax(next_q_online if double else next_q_target, axis=-1)
    next_value = jnp.take_along_axis(next_q_target, best_next_action[..., None], axis=-1)[..., 0]
    return rewards + discounts * (1.0 - terminated.astype(jnp.float32)) * next_value


class MunchausenTerm(NamedTuple):
    """Munchausen DQN's three constants (see :func:`munchausen_target`)."""

    temperature: float  # τ
    alpha: float  # α
    log_policy_floor: float  # l0


def munchausen_target(
    rewards: jax.Array,  # [B]
    terminated: jax.Array,  # [B] bool
    actions: jax.Array,  # [B] int: the action taken in s
    q_target: jax.Array,  # [B, A] target network at s
    next_q_target: jax.Array,  # [B, A] target network at s'
    discounts: jax.Array | float,  # [B] or scalar γ
    term: MunchausenTerm,
) -> jax.Array:
    """Munchausen DQN (Vieillard et al. 2020), with π = softmax(Q_target / τ):

    y = r + α · clip(τ · ln π(a|s), l0, 0)
          + γ · (1 − terminated) · Σ_a' π(a'|s') · (Q_target(s', a') − τ · ln π(a'|s'))

    The bonus rewards the action taken by how likely the current policy is to take it, which
    widens the gap between the best action and the rest; the sum over a' is the soft (entropy-
    regularised) value of s', which equals τ · logsumexp(Q_target(s') / τ), computed here in that
    stable form. As τ → 0 with α = 0 this is DQN's r + γ · max_a' Q_target(s', a').

    Written here rather than taken from rlax (``rlax.munchausen_q_learning``): rlax requires
    distrax, which requires ``tfp-nightly`` (TensorFlow Probability's nightly build), for these
    few lines.
    """
    temperature, alpha, log_policy_floor = term
    log_policy = jax.nn.log_softmax(q_target / temperature, axis=-1)
    log_policy_taken = jnp.take_along_axis(log_policy, actions[:, None], axis=-1)[:, 0]
    bonus = alpha * jnp.clip(temperature * log_policy_taken, log_policy_floor, 0.0)
    next_value = temperature * jax.nn.logsumexp(next_q_target / temperature, axis=-1)
    return rewards + bonus + discounts * (1.0 - terminated.astype(jnp.float32)) * next_value


def l2_penalty(params: Any) -> jax.Array:
    """Sum of squared weight matrices (biases excluded), as Keras' ``l2`` regulariser."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    kernels = [leaf for path, leaf in leaves if getattr(path[-1], "key", None) == "kernel"]
    return sum((jnp.sum(k**2) for k in kernels), start=jnp.zeros(()))


def dqn_loss(
    params: Any,
    target_params: Any,
    batch: Batch,
    apply_fn: ApplyFn,
    double: bool,
    loss: str,
    huber_delta: float,
    l2_coef: float,
    munchausen: MunchausenTerm | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean TD loss of Q(s, a) against a fixed (stop-gradient) target, plus the L2 penalty. The
    target is :func:`td_target`, or :func:`munchausen_target` when ``munchausen`` is given."""
    actions = batch.actions.astype(jnp.int32)
    q_values = apply_fn(params, batch.obs)  # [B, A]
    q_taken = jnp.take_along_axis(q_values, actions[:, None], axis=-1)[:, 0]
    if munchausen is None:
        next_q_target = apply_fn(target_params, batch.next_obs)
        next_q_online = apply_fn(params, batch.next_obs) if double else next_q_target
        target = td_target(
            batch.rewards, batch.terminated, next_q_target, next_q_online, batch.discounts, double
        )
    else:
        # One target-network pass over s and s' together: one matmul per layer instead of two.
        both = apply_fn(target_params, jnp.concatenate([batch.obs, batch.next_obs]))
        q_target, next_q_target = jnp.split(both, 2)
        target = munchausen_target(
            batch.rewards,
            batch.terminated,
            actions,
            q_target,
            next_q_target,
            batch.discounts,
            munchausen,
        )
    target = jax.lax.stop_gradient(target)
    td_error = q_taken - target
    if loss == "huber":
        td_loss = jnp.mean(optax.huber_loss(td_error, delta=huber_delta))
    else:
        td_loss = jnp.mean(td_error**2)
    total = td_loss + l2_coef * l2_penalty(params) if l2_coef > 0 else td_loss
    return total, {"loss": total, "td_loss": td_loss, "q_mean": jnp.mean(q_taken)}


def soft_target_update(target_params: Any, params: Any, tau: float) -> Any:
    """target ← τ · online + (1 − τ) · target."""
    return optax.incremental_update(params, target_params, tau)


@flax.struct.dataclass
class LearnerState:
    params: Any
    target_params: Any
    opt_state: Any
    grad_steps: jax.Array  # int32 scalar


def hard_target_update(state: LearnerState) -> LearnerState:
    """target ← online (JAX arrays are immutable, so sharing them is a copy)."""
    return state.replace(target_params=state.params)


def make_optimizer(config: DQNConfig) -> optax.GradientTransformation:
    learning_rate = learning_rate_schedule(config)
    if config.optimizer == "adam":
        base = optax.adam(learning_rate, eps=config.optimizer_eps)
    else:
        base = optax.rmsprop(learning_rate, eps=config.optimizer_eps)
    if config.max_grad_norm is None:
        return base
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), base)


def make_update(
    config: DQNConfig, apply_fn: ApplyFn, optimizer: optax.GradientTransformation
) -> Callable[[LearnerState, PackedBatch], tuple[LearnerState, dict[str, jax.Array]]]:
    """A jitted ``update(state, batches)`` doing one gradient step per leading slice of ``batches``
    ([K, B, ...], as the replay buffer samples them; scanned), with a soft target update after
    each step when configured."""
    loss_fn = jax.value_and_grad(dqn_loss, has_aux=True)
    soft = config.target_update == "soft"
    munchausen = (
        MunchausenTerm(
            config.munchausen_temperature,
            config.munchausen_alpha,
            config.munchausen_log_policy_floor,
        )
        if config.munchausen
        else None
    )

    def gradient_step(
        state: LearnerState, batch: Batch
    ) -> tuple[LearnerState, dict[str, jax.Array]]:
        (_, metrics), grads = loss_fn(
            state.params,
            state.target_params,
            batch,
            apply_fn,
            config.double,
            config.loss,
            config.huber_delta,
            config.l2_coef,
            munchausen,
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        target_params = (
            soft_target_update(state.target_params, params, config.tau)
            if soft
            else state.target_params
        )
        new_state = LearnerState(params, target_params, opt_state, state.grad_steps + 1)
        return new_state, metrics

    @jax.jit
    def update(
        state: LearnerState, batches: PackedBatch
    ) -> tuple[LearnerState, dict[str, jax.Array]]:
        state, metrics = jax.lax.scan(gradient_step, state, unpack_batch(batches))
        return state, jax.tree_util.tree_map(lambda m: m[-1], metrics)

    return update


@flax.struct.dataclass
class PackedState:
    """A :class:`LearnerState` as one float vector (online and target parameters, optimiser
    moments, in tree order) and its integer leaves (the step counts)."""

    floats: jax.Array
    ints: tuple[jax.Array, ...]


@dataclass(frozen=True)
class StatePacking:
    """The training loop's jitted functions on a :class:`PackedState`, and the way back.

    Why pack: on XLA's CPU backend each input and output leaf of a jitted call costs the calling
    thread a few µs. A LearnerState has ~40 leaves (two networks, Adam's two moments), which made
    every update call hold the training loop for ~250 µs before it could go on stepping envs;
    packed, ~80 µs (64-64 LayerNorm net, 8 gradient steps a call). The arithmetic is unchanged.
    """

    pack: Callable[[LearnerState], PackedState]
    unpack: Callable[[PackedState], LearnerState]
    update: Callable[[PackedState, PackedBatch], tuple[PackedState, dict[str, jax.Array]]]
    hard_target_update: Callable[[PackedState], PackedState]
    host_params: Callable[[PackedState], Any]  # a numpy copy of the online parameters


def make_state_packing(
    template: LearnerState,
    update: Callable[[LearnerState, PackedBatch], tuple[LearnerState, dict[str, jax.Array]]],
) -> StatePacking:
    """Packing for learner states shaped like ``template``, around ``update`` (from make_update)."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    is_float = [bool(jnp.issubdtype(leaf.dtype, jnp.floating)) for leaf in leaves]
    _, unravel_floats = ravel_pytree([leaf for leaf, f in zip(leaves, is_float, strict=True) if f])
    params_leaves, params_treedef = jax.tree_util.tree_flatten(template.params)
    if not all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in params_leaves):
        raise TypeError("packing needs floating-point network parameters")
    n_params = sum(leaf.size for leaf in params_leaves)  # the online params lead the vector
    param_shapes = [leaf.shape for leaf in params_leaves]
    param_splits = np.cumsum([leaf.size for leaf in params_leaves])[:-1]

    def pack(state: LearnerState) -> PackedState:
        state_leaves = jax.tree_util.tree_leaves(state)
        floats = jnp.concatenate(
            [jnp.ravel(x) for x, f in zip(state_leaves, is_float, strict=True) if f]
        )
        return PackedState(
            floats, tuple(x for x, f in zip(state_leaves, is_float, strict=True) if not f)
        )

    def unpack(packed: PackedState) -> LearnerState:
        floats, ints = iter(unravel_floats(packed.floats)), iter(packed.ints)
        return jax.tree_util.tree_unflatten(
            treedef, [next(floats) if f else next(ints) for f in is_float]
        )

    def packed_update(
        packed: PackedState, batches: PackedBatch
    ) -> tuple[PackedState, dict[str, jax.Array]]:
        state, metrics = update(unpack(packed), batches)
        return pack(state), metrics

    def packed_hard_target_update(packed: PackedState) -> PackedState:
        return pack(hard_target_update(unpack(packed)))  # XLA makes it one slice copy

    def host_params(packed: PackedState) -> Any:
        online = np.asarray(packed.floats)[:n_params]
        parts = np.split(online, param_splits)
        return jax.tree_util.tree_unflatten(
            params_treedef,
            [part.reshape(shape) for part, shape in zip(parts, param_shapes, strict=True)],
        )

    return StatePacking(
        jax.jit(pack),
        jax.jit(unpack),
        jax.jit(packed_update),
        jax.jit(packed_hard_target_update),
        host_params,
    )


def select_actions(
    q_values: np.ndarray, epsilon: float, coins: np.ndarray, random_actions: np.ndarray
) -> np.ndarray:
    """ε-greedy: where ``coins < epsilon`` take ``random_actions``, else argmax Q.

    The coins and random actions are drawn by the caller's numpy Generator: one checkpointable
    RNG for all of the run's randomness outside parameter init. The Q-values come from
    :func:`deepq.networks.host_q_values` (numpy, so that acting never waits for an update).
    """
    return np.where(coins < epsilon, random_actions, np.argmax(q_values, axis=-1))


def make_greedy_actions(apply_fn: ApplyFn) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted ``greedy_actions(params, obs [N, obs_dim]) -> argmax_a Q [N]`` (compiled once per run)."""
    return jax.jit(lambda params, obs: jnp.argmax(apply_fn(params, obs), axis=-1))


@jax.jit
def all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


# ----------------------------------------------------------------------------------------------
# Agents and checkpoints.
# ----------------------------------------------------------------------------------------------


@dataclass
class Agent:
    """A trained Q-network with what is needed to run it: config, env facts, parameters."""

    config: DQNConfig
    params: Any
    obs_dim: int
    n_actions: int
    info: dict[str, Any]

    @property
    def network(self) -> QNetwork:
        return build_network(self.config, self.n_actions)

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
        return make_env(
            self.config.env_id, self.config.max_episode_steps, self.config.time_feature, render_mode
        )


def build_network(config: DQNConfig, n_actions: int) -> QNetwork:
    return QNetwork(
        n_actions, tuple(config.hidden_sizes), config.activation, config.dueling, config.layer_norm
    )


@functools.lru_cache(maxsize=8)
def _network_init(network: QNetwork, obs_dim: int) -> Callable[[jax.Array], Any]:
    """One jitted initialiser per architecture: a single compile instead of dozens of eager ops."""
    return jax.jit(
        lambda seed: network.init(jax.random.key(seed), jnp.zeros((1, obs_dim), jnp.float32))
    )


def init_params(config: DQNConfig, obs_dim: int, n_actions: int) -> Any:
    """Fresh Q-network parameters, seeded by ``config.seed``."""
    return _network_init(build_network(config, n_actions), obs_dim)(config.seed)


def params_shape(config: DQNConfig, obs_dim: int, n_actions: int) -> Any:
    """The parameter pytree's shapes and dtypes, without computing (or compiling) anything."""
    return jax.eval_shape(_network_init(build_network(config, n_actions), obs_dim), config.seed)


def save_agent(directory: Path, agent: Agent) -> None:
    save_network_agent(directory, "dqn-agent", agent)


def load_agent_checkpoint(directory: Path) -> Agent:
    """Load a DQN checkpoint directory written by :func:`save_agent` or the training loop."""
    arrays, meta = load_checkpoint(directory)
    return agent_from_checkpoint(arrays, meta, str(directory))


def agent_from_checkpoint(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str
) -> Agent:
    if meta.get("kind") not in ("dqn-agent", "dqn-training-state"):
        raise CheckpointError(f"{source} is not a DQN checkpoint (kind {meta.get('kind')!r})")
    try:
        config = config_from_dict(meta["config"])
        obs_dim, n_actions = int(meta["obs_dim"]), int(meta["n_actions"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{source}: meta.json lacks a valid config/obs_dim/n_actions ({exc})"
        ) from None
    except Exception as exc:  # ConfigError from a tampered config
        raise CheckpointError(f"{source}: meta.json holds an invalid config ({exc})") from None
    template = params_shape(config, obs_dim, n_actions)
    params = arrays_to_pytree("params", template, arrays, source)
    return Agent(config, params, obs_dim, n_actions, dict(meta.get("info", {})))


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs on disk (JAX's persistent cache) so a second run starts at once.

    ``DEEPQ_COMPILATION_CACHE`` names the directory (default ``~/.cache/deepq/xla``); ``off``
    disables it. Compiling the update, the action selection and the initialisers costs about a
    second on a 2-core CPU, a large share of a LunarLander run that trains in ~10 s.
    """
    location = os.environ.get(
        "DEEPQ_COMPILATION_CACHE", str(Path.home() / ".cache" / "deepq" / "xla")
    )
    if location.lower() in ("off", "0", "false", "") or jax.config.jax_compilation_cache_dir:
        return
    try:
        Path(location).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable home is no reason to fail: compile every time instead
    jax.config.update("jax_compilation_cache_dir", location)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)


def train(
    config: DQNConfig | dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Train DQN as ``config`` says, writing everything into ``run_dir`` (default runs/<time>)."""
    if config is None:
        config = resolve_config()
    elif isinstance(config, dict):
        config = config_from_dict(config)
    make_env(
        config.env_id, config.max_episode_steps, config.time_feature
    ).close()  # fail before writing
    run_dir = new_run_dir(run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    return _run(config, run_dir, None, show_progress, tensorboard)


def resume(
    run_dir: str | Path,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Continue an interrupted run from its latest checkpoint, exactly as if it had never stopped.

    Exact means bit for bit on the same machine and software: the parameters, optimiser state,
    replay buffer, RNG and counters are restored, and each env's unfinished episode is rebuilt by
    resetting it with the episode's seed and replaying its actions (environments must be
    deterministic given seed and actions, as Gymnasium's are). Wall-clock columns differ.
    """
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    if (checkpoints / "final").exists():
        raise UsageError(f"{run_dir} already finished; start a new run instead")
    arrays, meta = load_checkpoint(checkpoints / "latest")
    if meta.get("kind") != "dqn-training-state":
        raise CheckpointError(f"{checkpoints / 'latest'} is not a training-state checkpoint")
    try:
        config = config_from_dict(meta["config"])
    except (KeyError, TypeError, DeepQError) as exc:
        raise CheckpointError(
            f"{checkpoints / 'latest'}: meta.json holds no valid config ({exc})"
        ) from None
    return _run(config, run_dir, (arrays, meta), show_progress, tensorboard)


def _run(
    c: DQNConfig,
    run_dir: Path,
    restore_from: tuple[dict[str, np.ndarray], dict[str, Any]] | None,
    show_progress: bool | None,
    tensorboard: bool,
) -> TrainResult:
    enable_compilation_cache()
    start_jax_with_a_core_to_spare()  # the update on the other cores, this loop on its own one

    # --- environment ---
    envs = make_vector_env(c.env_id, c.num_envs, c.max_episode_steps, c.time_feature)
    obs_shape = envs.single_observation_space.shape
    obs_dim, n_actions = int(obs_shape[0]), int(envs.single_action_space.n)
    threshold = solved_threshold(c.solved_threshold, envs.envs[0].spec)

    # --- networks, optimiser, learner ---
    q_net = build_network(c, n_actions)
    params = init_params(c, obs_dim, n_actions)
    optimizer = make_optimizer(c)
    state = LearnerState(params, params, jax.jit(optimizer.init)(params), jnp.zeros((), jnp.int32))
    packing = make_state_packing(state, make_update(c, q_net.apply, optimizer))
    greedy_actions = make_greedy_actions(q_net.apply)

    # --- replay, randomness, per-episode state ---
    buffer = ReplayBuffer(c.buffer_size, obs_shape, envs.single_observation_space.dtype)
    n_step = NStepAccumulator(c.n_step, c.gamma, c.num_envs)
    rng = np.random.default_rng(c.seed)  # replay sampling and exploration
    obs, _ = envs.reset(seed=c.seed)  # sub-env i gets base seed seed + i, one seed per episode
    episode_return = np.zeros(c.num_envs)
    episode_length = np.zeros(c.num_envs, dtype=np.int64)
    episode_actions: list[list[int]] = [[] for _ in range(c.num_envs)]  # to rebuild envs on resume
    p = RunProgress()  # the loop's counters and records, saved with every checkpoint
    if restore_from is not None:
        arrays, meta = restore_from
        source = str(run_dir / "checkpoints" / "latest")
        state = LearnerState(
            arrays_to_pytree("params", state.params, arrays, source),
            arrays_to_pytree("target_params", state.target_params, arrays, source),
            arrays_to_pytree("opt_state", state.opt_state, arrays, source),
            arrays_to_pytree("grad_steps", state.grad_steps, arrays, source),
        )
        try:
            buffer.load_state_arrays(
                {k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")}
            )
            rng.bit_generator.state = meta["rng"]
            p = RunProgress(**meta["progress"])
            obs = _rebuild_envs(
                envs, meta["envs"], arrays, n_step, episode_return, episode_length, episode_actions
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: cannot restore the training state ({exc})") from None
    packed = packing.pack(state)  # the loop's learner state; `state` is read back where needed

    # --- evaluation, logging, checkpoints ---
    evaluator = Evaluator(lambda: make_env(c.env_id, c.max_episode_steps, c.time_feature))
    try:
        logger = RunLogger(
            run_dir,
            c.total_steps,
            show_progress,
            tensorboard=tensorboard,
            resume_at=(p.episodes, p.env_steps) if restore_from is not None else None,
        )
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    record = RunRecorder(p, logger, threshold, c.solved_window)
    checkpoints = run_dir / "checkpoints"

    def agent_of(state_params: Any, **info: Any) -> Agent:
        return Agent(
            c,
            state_params,
            obs_dim,
            n_actions,
            {"env_steps": p.env_steps, "episodes": p.episodes, **info},
        )

    def save_training_checkpoint(name: str) -> None:
        state = packing.unpack(packed)
        if not bool(all_finite((state.params, state.target_params, state.opt_state))):
            raise TrainingDiverged(
                f"the parameters or optimiser state became non-finite by env step {p.env_steps} "
                f"(try a lower learning_rate); the last finite checkpoint is in {checkpoints}"
            )
        longest = max(1, max(len(a) for a in episode_actions))
        padded_actions = np.zeros((c.num_envs, longest), dtype=np.int64)
        for i, taken in enumerate(episode_actions):
            padded_actions[i, : len(taken)] = taken
        arrays = {
            **pytree_to_arrays("params", state.params),
            **pytree_to_arrays("target_params", state.target_params),
            **pytree_to_arrays("opt_state", state.opt_state),
            **pytree_to_arrays("grad_steps", state.grad_steps),
            **{f"replay/{k}": v for k, v in buffer.state_arrays().items()},
            "envs/episode_actions": padded_actions,
            "envs/episode_length": episode_length.copy(),
        }
        meta = {
            "kind": "dqn-training-state",
            "deepq_version": __version__,
            "config": c.to_dict(),
            "obs_dim": obs_dim,
            "n_actions": n_actions,
            "info": {"env_steps": p.env_steps, "episodes": p.episodes},
            "progress": record.state(),
            "rng": rng.bit_generator.state,
            "envs": {
                "base_seeds": [int(env.base_seed) for env in envs.envs],
                "episodes_started": [int(env.episode) for env in envs.envs],
            },
        }
        save_checkpoint(checkpoints / name, arrays, meta)

    def run_periodic_eval() -> None:
        params = packing.unpack(packed).params
        policy = lambda obs: np.asarray(greedy_actions(params, obs))  # noqa: E731
        result = evaluator.run(policy, c.eval_episodes, SELECTION_EVAL_SEED)
        if record.add_evaluation(result):
            save_agent(checkpoints / "best", agent_of(params, eval_mean=result.mean))

    # --- the loop: act → learn → sync target → step → store → bookkeeping → evaluate → stop ---
    epsilon = epsilon_at(c, p.episodes, p.env_steps)
    metrics: dict[str, jax.Array] | None = None
    host_params, host_params_of = None, None  # numpy copy of the acting parameters; its source
    stop_reason = None
    started = time.perf_counter()
    with ExitStack() as resources, StopSignal() as stop_signal:
        for resource in (envs, evaluator, logger):  # closed on every way out, errors included
            resources.callback(resource.close)
        while stop_reason is None:
            # 1. act ε-greedily in every env, with the parameters from before this step's learning
            #    (the draws here; the Q-values just after 2. has been dispatched)
            coins = rng.random(c.num_envs)
            random_actions = rng.integers(0, n_actions, c.num_envs)
            acting_state = packed
            previous_steps = p.env_steps
            p.env_steps += c.num_envs
            # 2. learn: one learning step per multiple of train_every in this step's window, from
            #    learning_starts on, on the transitions stored before this step. Whole windows
            #    only, so the scan length (hence the compiled update) stays the same. JAX
            #    dispatches it asynchronously: it computes on one core while this core acts and
            #    steps the envs, and the next update queues behind it, so updates run back to back.
            if p.env_steps >= c.learning_starts and len(buffer) >= c.batch_size:
                learning_steps = p.env_steps // c.train_every - previous_steps // c.train_every
                if learning_steps > 0:
                    batches = buffer.sample(rng, c.batch_size, learning_steps * c.gradient_steps)
                    packed, metrics = packing.update(packed, batches)
            if acting_state is not host_params_of:  # copying waits for the previous update only
                host_params, host_params_of = packing.host_params(acting_state), acting_state
            q_values = host_q_values(host_params, obs, c.activation)
            actions = select_actions(q_values, epsilon, coins, random_actions)
            # 3. hard target copy every target_update_every env steps (or, at 6., episodes)
            if (
                c.target_update == "hard"
                and c.target_update_every_episodes is None
                and p.env_steps // c.target_update_every > previous_steps // c.target_update_every
            ):
                packed = packing.hard_target_update(packed)
            # 4. step; a finished episode's s' is its final observation, not the reset one
            next_obs, rewards, terminated, truncated, infos = envs.step(actions)
            done = terminated | truncated
            real_next_obs = final_observations(next_obs, done, infos)
            if not (np.isfinite(rewards).all() and np.isfinite(real_next_obs).all()):
                what = "reward" if not np.isfinite(rewards).all() else "observation"
                raise TrainingDiverged(
                    f"{c.env_id} returned a non-finite {what} at env step {p.env_steps}"
                )
            # 5. store (as n-step transitions when n_step > 1)
            completed = n_step.push(obs, actions, rewards, real_next_obs, terminated, truncated)
            if completed is not None:
                buffer.add(*completed)
            obs = next_obs
            # 6. episode bookkeeping
            episode_return += rewards
            episode_length += 1
            for i, action in enumerate(actions.tolist()):
                episode_actions[i].append(action)
            wall = p.train_seconds + time.perf_counter() - started
            checkpoint_due = False
            episodes_before = p.episodes
            for i in np.flatnonzero(done):
                record.end_episode(episode_return[i], episode_length[i], epsilon, wall)
                episode_return[i], episode_length[i] = 0.0, 0
                episode_actions[i].clear()
                if c.checkpoint_every_episodes and p.episodes % c.checkpoint_every_episodes == 0:
                    checkpoint_due = True
            every = c.target_update_every_episodes
            if every is not None and p.episodes // every > episodes_before // every:
                packed = packing.hard_target_update(packed)  # seed 004: sync every N episodes
            if done.any() or c.epsilon_schedule == "linear":
                epsilon = epsilon_at(c, p.episodes, p.env_steps)
            if metrics is not None and p.env_steps // 1000 > previous_steps // 1000:
                loss_value = float(metrics["loss"])
                if not np.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"the loss became non-finite by env step {p.env_steps} "
                        f"(try a lower learning_rate); the last finite checkpoint is in {checkpoints}"
                    )
                logger.scalars(
                    p.env_steps,
                    {"train/loss": loss_value, "train/q_mean": float(metrics["q_mean"])},
                )
            # 7. evaluate (the clock stops: evaluation is not training time)
            if c.eval_every and p.env_steps // c.eval_every > previous_steps // c.eval_every:
                p.train_seconds += time.perf_counter() - started
                run_periodic_eval()
                started = time.perf_counter()
            # 8. stop? (checked at the end of a step, where the whole state is consistent)
            elapsed = p.train_seconds + time.perf_counter() - started
            if stop_signal.requested:
                stop_reason = "interrupted"
            elif p.solved_at is not None and c.stop_when_solved:
                stop_reason = "solved"
            elif c.total_steps is not None and p.env_steps >= c.total_steps:
                stop_reason = "total_steps"
            elif c.max_episodes is not None and p.episodes >= c.max_episodes:
                stop_reason = "max_episodes"
            elif c.time_budget_s is not None and elapsed >= c.time_budget_s:
                stop_reason = "time_budget"
            if checkpoint_due and stop_reason is None:
                p.train_seconds += time.perf_counter() - started
                save_training_checkpoint("latest")
                if c.keep_checkpoints:
                    copy = checkpoints / f"step-{p.env_steps:012d}"
                    keep_copy(checkpoints / "latest", copy, c.keep_checkpoints)
                started = time.perf_counter()
        p.train_seconds += time.perf_counter() - started
        logger.end_progress(p.env_steps)

        # --- save, pick the best, final evaluation, summary ---
        save_training_checkpoint("latest")
        if stop_reason != "interrupted":
            if not c.eval_every:  # nothing to compare with
                save_agent(checkpoints / "best", agent_of(packing.unpack(packed).params))
            elif not p.eval_history or p.eval_history[-1]["env_steps"] != p.env_steps:
                run_periodic_eval()  # the end of the run competes for `best` too
            keep_copy(checkpoints / "latest", checkpoints / "final", keep=1)  # same state: links
        summary = record.summary(
            c.env_id, stop_reason, grad_steps=int(packing.unpack(packed).grad_steps)
        )
        if stop_reason == "interrupted":
            write_json(run_dir / "summary.json", summary)
            raise Interrupted(
                f"interrupted at env step {p.env_steps}; resume with: deepq train --resume {run_dir}",
                run_dir,
            )
        best = load_agent_checkpoint(checkpoints / "best")
        if c.final_eval_episodes > 0:
            final = evaluator.run(best.policy(), c.final_eval_episodes, TEST_EVAL_SEED)
            summary["final_eval"] = final_eval_summary(final)
        write_json(run_dir / "summary.json", summary)
    return TrainResult(run_dir, summary, best)


def _rebuild_envs(
    envs: Any,
    env_meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    n_step: NStepAccumulator,
    episode_return: np.ndarray,
    episode_length: np.ndarray,
    episode_actions: list[list[int]],
) -> np.ndarray:
    """Put every sub-env back into its unfinished episode: reset with that episode's seed and
    replay its actions, refilling the episode's return, length and pending n-step entries."""
    lengths = arrays["envs/episode_length"]
    all_actions = arrays["envs/episode_actions"]
    obs = np.empty(
        (len(envs.envs), *envs.single_observation_space.shape), envs.single_observation_space.dtype
    )
    for i, env in enumerate(envs.envs):
        env.base_seed = int(env_meta["base_seeds"][i])
        current, _ = env.restart_episode(int(env_meta["episodes_started"][i]) - 1)
        for action in all_actions[i, : int(lengths[i])].tolist():
            next_current, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                raise ValueError(f"env {i} ended its episode while replaying it: not deterministic")
            n_step.refill(i, current, action, reward)
            episode_return[i] += reward
            episode_length[i] += 1
            episode_actions[i].append(action)
            current = next_current
        obs[i] = current
    return obs
