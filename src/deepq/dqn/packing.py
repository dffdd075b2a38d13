"""The learner state packed into one float vector: a speed trick with no arithmetic of its own.

Why: on XLA's CPU backend each input and output leaf of a jitted call costs the calling thread a
few µs. A learner state has ~40 leaves (two networks, Adam's two moments), which made every
update call hold the training loop for ~250 µs before it could go on stepping envs; packed,
~80 µs (64-64 LayerNorm net, 8 gradient steps a call). :class:`deepq.dqn.learner.Learner` is
the only user; ``test_packing.py`` checks that the packed functions are the plain ones.

It pays for small networks only: packing copies the whole state in and out of one vector on
every call, which for the Nature CNN (1.7M parameters, ~7M floats of state) cost ~35 ms of a
110 ms update at batch 64, and for Rainbow's MinAtar network (355k parameters, noisy layers'
σ doubling them) made the update 6.0 ms where the unpacked one takes 3.4 ms (one gradient step
at batch 32, 2-core CPU). Above :data:`PACK_MAX_PARAMS` the learner keeps the state as it is
(:func:`make_unpacked`, the same interface).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from deepq.dqn.replay import PackedBatch

Metrics = dict[str, jax.Array]
LearnerState = Any  # deepq.dqn.learner.LearnerState (a flax struct of pytrees)


@flax.struct.dataclass
class PackedState:
    """A :class:`LearnerState` as one float vector (online and target parameters, optimiser
    moments, in tree order) and its integer leaves (the step counts)."""

    floats: jax.Array
    ints: tuple[jax.Array, ...]


@dataclass(frozen=True)
class StatePacking:
    """The learner's jitted functions on a :class:`PackedState`, and the way back."""

    pack: Callable[[LearnerState], PackedState]
    unpack: Callable[[PackedState], LearnerState]
    update: Callable[[PackedState, PackedBatch], tuple[PackedState, Metrics]]
    hard_target_update: Callable[[PackedState], PackedState]
    host_params: Callable[[PackedState], Any]  # a numpy copy of the online parameters


# MLPs (~20k) and the MinAtar paper's CNN (~130k: 1.03 ms packed, 0.91 ms unpacked, but a host
# copy of its parameters 0.05 ms against 0.17 ms, so even) pack; MinAtar's C51 network (178k:
# 2.31 against 1.83 ms) and the Nature CNN do not.
PACK_MAX_PARAMS = 150_000


def packs(n_params: int) -> bool:
    return n_params <= PACK_MAX_PARAMS


def make_state_packing(
    template: LearnerState,
    update: Callable[[LearnerState, PackedBatch], tuple[LearnerState, Metrics]],
    target_sync: Callable[[LearnerState], LearnerState],
) -> StatePacking:
    """Packing for learner states shaped like ``template``, around ``update`` (from make_update)
    and ``target_sync`` (the hard target update)."""
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

    def packed_update(packed: PackedState, batches: PackedBatch) -> tuple[PackedState, Metrics]:
        state, metrics = update(unpack(packed), batches)
        return pack(state), metrics

    def packed_hard_target_update(packed: PackedState) -> PackedState:
        return pack(target_sync(unpack(packed)))  # XLA makes a hard copy one slice copy

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


def make_unpacked(
    update: Callable[[LearnerState, PackedBatch], tuple[LearnerState, Metrics]],
    target_sync: Callable[[LearnerState], LearnerState],
) -> StatePacking:
    """The :class:`StatePacking` interface on the state as it is (for large networks)."""
    return StatePacking(
        pack=lambda state: state,
        unpack=lambda state: state,
        update=update,
        hard_target_update=jax.jit(target_sync),
        host_params=lambda state: jax.device_get(state.params),
    )
