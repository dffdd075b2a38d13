"""The learner: online and target parameters, the optimiser, the jitted update and target sync,
and the parameters that acting reads. The training loop only calls :class:`Learner`'s methods.

Read top to bottom: the state and its pure functions (optimiser, one gradient step scanned over
K batches, soft and hard target updates), then :class:`Learner`, which hides two speed tricks
behind its methods, each with an equivalence test (``test_packing.py``, ``test_networks.py``):
the state of a small network travels packed into one float vector (:mod:`deepq.dqn.packing`),
and acting reads a
numpy copy of the online parameters through the network's numpy twin
(:meth:`deepq.dqn.networks.QNetwork.host_q_values`), so that choosing an action never waits
behind an update that JAX is still computing on another core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepq.dqn.config import DQNConfig
from deepq.dqn.losses import loss_fn_for
from deepq.dqn.networks import QNetwork
from deepq.dqn.packing import Metrics, PackedState, make_state_packing, make_unpacked, packs
from deepq.dqn.replay import Batch, PackedBatch, unpack_batch
from deepq.run.checkpoint import arrays_to_pytree, pytree_to_arrays


@flax.struct.dataclass
class LearnerState:
    params: Any
    target_params: Any
    opt_state: Any
    grad_steps: jax.Array  # int32 scalar


def soft_target_update(target_params: Any, params: Any, tau: float) -> Any:
    """target ← τ · online + (1 − τ) · target."""
    return optax.incremental_update(params, target_params, tau)


def hard_target_update(state: LearnerState) -> LearnerState:
    """target ← online (JAX arrays are immutable, so sharing them is a copy)."""
    return state.replace(target_params=state.params)


def learning_rate_schedule(config: DQNConfig) -> float | optax.Schedule:
    """The learning rate by gradient step: constant, or linear from ``learning_rate`` down to
    ``learning_rate_end`` at the gradient step taken at env step ``learning_rate_decay_steps``."""
    if config.learning_rate_end is None:
        return config.learning_rate
    decay_env_steps = config.learning_rate_decay_steps or config.total_steps
    assert decay_env_steps is not None  # the config validator requires one of them
    decay_grad_steps = (
        (decay_env_steps - config.learning_starts) * config.gradient_steps // config.train_every
    )
    return optax.linear_schedule(
        config.learning_rate, config.learning_rate_end, max(1, decay_grad_steps)
    )


def make_optimizer(config: DQNConfig) -> optax.GradientTransformation:
    learning_rate = learning_rate_schedule(config)
    if config.optimizer == "adam":
        base = optax.adam(learning_rate, eps=config.optimizer_eps)
    else:
        base = optax.rmsprop(
            learning_rate,
            decay=config.rmsprop_decay,
            eps=config.optimizer_eps,
            eps_in_sqrt=config.rmsprop_eps_in_sqrt,
            centered=config.rmsprop_centered,
            momentum=config.rmsprop_momentum or None,
        )
    if config.max_grad_norm is None:
        return base
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), base)


# Noisy layers' noise in updates: the key of the run's seed, folded with this stream number and
# then with the gradient step, so a resumed run draws the noise the uninterrupted one would.
UPDATE_NOISE_STREAM = 1


def make_update(
    config: DQNConfig,
    network: QNetwork,
    optimizer: optax.GradientTransformation,
    unrolled: bool = False,
) -> Callable[[LearnerState, PackedBatch], tuple[LearnerState, Metrics]]:
    """A jitted ``update(state, batches)`` doing one gradient step per leading slice of ``batches``
    ([K, B, ...], as the replay buffer samples them), with a soft target update after each step
    when configured. The K steps are a ``lax.scan``, or with ``unrolled`` K copies of the step.
    With noisy layers each step draws new noise (:data:`UPDATE_NOISE_STREAM`).

    Why unrolled for convolutions: XLA:CPU computes a convolution inside a loop (a scan is one)
    an order of magnitude slower than outside it: the Nature CNN's update at batch 64 took
    700 ms scanned and 44-61 ms unrolled on a 2-core CPU. An MLP's scan is as fast either way
    and compiles once for every K, so it stays a scan."""
    loss_fn = jax.value_and_grad(loss_fn_for(config, network), has_aux=True)
    soft = config.target_update == "soft"
    noise_key = (
        jax.random.fold_in(jax.random.key(config.seed), UPDATE_NOISE_STREAM)
        if config.noisy
        else None
    )
    prioritized = config.prioritized

    def outputs(metrics: Metrics) -> Metrics:
        """What the call returns of its K steps' metrics: the last step's scalars and, for
        prioritized replay, every sample's |TD error| ([K, B], the new priorities). Only what
        is needed leaves the call: each output costs the calling thread."""
        last = {key: value[-1] for key, value in metrics.items() if key != "td_abs"}
        return {**last, "td_abs": metrics["td_abs"]} if prioritized else last

    def gradient_step(state: LearnerState, batch: Batch) -> tuple[LearnerState, Metrics]:
        key = None if noise_key is None else jax.random.fold_in(noise_key, state.grad_steps)
        (_, metrics), grads = loss_fn(state.params, state.target_params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        target_params = (
            soft_target_update(state.target_params, params, config.tau)
            if soft
            else state.target_params
        )
        return LearnerState(params, target_params, opt_state, state.grad_steps + 1), metrics

    @jax.jit
    def update(state: LearnerState, batches: PackedBatch) -> tuple[LearnerState, Metrics]:
        batches_ = unpack_batch(batches)
        if not unrolled:
            state, metrics = jax.lax.scan(gradient_step, state, batches_)
            return state, outputs(metrics)
        steps = []
        for k in range(len(batches.scalars)):  # K is static: the batches' leading dim
            batch = jax.tree_util.tree_map(lambda b, k=k: b[k], batches_)
            state, metrics = gradient_step(state, batch)
            steps.append(metrics)
        return state, outputs(jax.tree_util.tree_map(lambda *m: jnp.stack(m), *steps))

    return update


# Above this many parameters a numpy copy after every update costs more than an accelerator's
# call saves: the Nature CNN's 1.7M floats are 6.7 MB to bring back every 4 steps.
HOST_ACTING_MAX_PARAMS_OFF_CPU = 100_000


def acts_on_host(backend: str, n_params: int) -> bool:
    """Whether acting should read a numpy copy of the parameters rather than call the device.

    On a CPU backend always: XLA:CPU runs its computations one after another, so a jitted
    action choice would wait behind the whole update dispatched before it (for the Nature CNN,
    ~110 ms at batch 64 on 2 cores, where the numpy twin answers in ~0.7 ms and the loop steps
    the game while the update runs). On a GPU or TPU the update is over in milliseconds and runs
    beside the host, so only a small network (a LunarLander MLP: ~20k parameters, copied in
    microseconds) still acts faster in numpy than through a device call.
    """
    return backend == "cpu" or n_params <= HOST_ACTING_MAX_PARAMS_OFF_CPU


@jax.jit
def all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


class Learner:
    """Owns the learner state and everything that reads or changes it.

    ``update`` and ``sync_target`` are dispatched asynchronously by JAX: they return at once and
    compute on XLA's cores while the loop goes on acting and stepping envs. ``acting_q_values``
    gives the loop the parameters as they are at the call, to act with after an update has been
    dispatched (acting never waits for it; the copy waits only for the update before).
    """

    def __init__(
        self,
        config: DQNConfig,
        network: QNetwork,
        params: Any,
        acting: Literal["auto", "host", "device"] = "auto",
    ):
        optimizer = make_optimizer(config)
        state = LearnerState(
            params, params, jax.jit(optimizer.init)(params), jnp.zeros((), jnp.int32)
        )
        update = make_update(config, network, optimizer, unrolled=network.encoder != "mlp")
        n_params = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
        self._packing = (
            make_state_packing(state, update, hard_target_update)
            if packs(n_params)
            else make_unpacked(update, hard_target_update)
        )
        self._packed = self._packing.pack(state)
        self._network = network
        self._host_params: Any = None  # numpy copy of the online parameters of _host_source
        self._host_source: PackedState | None = None
        self.metrics: Metrics | None = None  # of the latest update (device arrays)
        self.acts_on_host = (
            acts_on_host(jax.default_backend(), n_params) if acting == "auto" else acting == "host"
        )
        self._device_q_values = jax.jit(
            lambda params, obs, key: (
                network.apply(params, obs, rngs={"noise": key})
                if network.noisy
                else network.apply(params, obs)
            )
        )

    @property
    def state(self) -> LearnerState:
        return self._packing.unpack(self._packed)

    @state.setter
    def state(self, state: LearnerState) -> None:
        self._packed = self._packing.pack(state)

    def update(self, batches: PackedBatch) -> None:
        """One gradient step per leading slice of ``batches`` [K, B, ...]."""
        self._packed, self.metrics = self._packing.update(self._packed, batches)

    def sync_target(self) -> None:
        """Hard target update: target ← online."""
        self._packed = self._packing.hard_target_update(self._packed)

    def gradient_step_flops(self, batches: PackedBatch) -> float | None:
        """XLA's count of the floating-point operations in one gradient step: an :meth:`update`
        call on the first of ``batches``' K batches. None where the backend gives no count.
        Compiles, runs nothing. (One step, since XLA counts a scanned loop's body once.)

        Why: a step's time over its FLOPs is the rate the device reaches on it, which says
        whether a loop is bound by arithmetic or by overheads (``deepq.bench_atari``)."""
        first = jax.tree_util.tree_map(lambda b: b[:1], batches)
        compiled = self._packing.update.lower(self._packed, first).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost  # a list in older JAX
        flops = (cost or {}).get("flops")
        return float(flops) if flops is not None and flops > 0 else None

    def acting_q_values(
        self, noise_rng: np.random.Generator | None = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """``q_values(obs) -> [N, A]`` in numpy with the online parameters as they are now:
        through the network's numpy twin, or on the device (:func:`acts_on_host` picks). Noisy
        layers draw one noise sample per call from ``noise_rng`` (the run's RNG, so a resume
        draws the same)."""
        source, network = self._packed, self._network
        if self.acts_on_host:
            rng = noise_rng if network.noisy else None
            return lambda obs: network.host_q_values(self._host_params_of(source), obs, rng)
        params = self._packing.unpack(source).params

        def device_q_values(obs: np.ndarray) -> np.ndarray:
            key = None
            if network.noisy:
                assert noise_rng is not None, "a noisy network acts with noise_rng"
                key = jax.random.key(int(noise_rng.integers(2**31)))
            return np.asarray(self._device_q_values(params, obs, key))

        return device_q_values

    def _host_params_of(self, source: PackedState) -> Any:
        if source is not self._host_source:  # a new update or sync since the last copy
            self._host_params, self._host_source = self._packing.host_params(source), source
        return self._host_params

    def params(self) -> Any:
        """The online parameters (device arrays)."""
        return self.state.params

    def is_finite(self) -> bool:
        state = self.state
        return bool(all_finite((state.params, state.target_params, state.opt_state)))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The whole learner state as named arrays, for a training checkpoint."""
        state = self.state
        return {
            **pytree_to_arrays("params", state.params),
            **pytree_to_arrays("target_params", state.target_params),
            **pytree_to_arrays("opt_state", state.opt_state),
            **pytree_to_arrays("grad_steps", state.grad_steps),
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Restore from :meth:`state_arrays`' output; every name, shape and dtype must match."""
        template = self.state
        self.state = LearnerState(
            *(
                arrays_to_pytree(name, getattr(template, name), arrays, source)
                for name in ("params", "target_params", "opt_state", "grad_steps")
            )
        )
