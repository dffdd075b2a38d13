"""Proportional prioritized experience replay (Schaul et al. 2016): which transitions to learn from.

A transition i is sampled with probability P(i) = p_i / Σ_k p_k, where p_i = (|δ_i| + ε)^α is
its last TD error's priority (α = 0 is uniform sampling). New transitions come in at the largest
priority seen so far, so each is learned from at least about once. The bias this brings is
corrected by importance weights w_i = (N · P(i))^-β / max_j w_j on each sample's loss, with β
annealed to 1 by the end of the run (:func:`priority_beta`).

Written here rather than taken from a library: flashbax's prioritised buffer keeps its sum tree in
JAX arrays for loops that are jitted whole, where deepq's replay is numpy on the host (acting and
storing never wait for the device), and a jitted tree on the CPU would queue behind the update.
Its cost per learning call is measured in ``docs/rainbow.md``.

:class:`Priorities` is what a :class:`~deepq.dqn.replay.TransitionRing` holds when prioritized:
the ring tells it which slots were written or emptied, and samples through it.
"""

from __future__ import annotations

import numpy as np

from deepq.dqn.config import DQNConfig


class SumTree:
    """Priorities of ``capacity`` slots in a tree whose every node holds the sum of its children,
    so the total is the root and finding the slot where a running sum crosses u takes one step
    per level.

    Each node has ``fanout`` children (32 by default: 4 levels for 1M slots). Why not binary:
    every level costs a handful of numpy calls of a few µs each whatever the batch, and a
    binary tree of 1M slots has 20 levels; 32 children per node measured ~3x faster to write
    and sample here. Level 0 holds the leaves, one per slot (padded to a power of the fanout);
    level l holds the sums of consecutive groups of ``fanout`` nodes of level l - 1. A parent is
    recomputed from its children on every write rather than adjusted by a difference, so no
    rounding error builds up however many writes there are."""

    def __init__(self, capacity: int, fanout: int = 32):
        self.capacity, self.fanout = capacity, fanout
        self.depth = 0
        while fanout**self.depth < capacity:
            self.depth += 1
        self.levels = [np.zeros(fanout ** (self.depth - level)) for level in range(self.depth + 1)]

    @property
    def total(self) -> float:
        return float(self.levels[-1][0])

    def get(self, slots: np.ndarray) -> np.ndarray:
        return self.levels[0][np.asarray(slots)]

    def set(self, slots: np.ndarray, priorities: np.ndarray | float) -> None:
        """Write priorities (>= 0) at slots; a slot named more than once keeps its last value."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        values = np.broadcast_to(np.asarray(priorities, dtype=np.float64).reshape(-1), slots.shape)
        reversed_slots = slots[::-1]  # np.unique keeps the first of each: the last written
        slots, last = np.unique(reversed_slots, return_index=True)
        self.levels[0][slots] = values[::-1][last]
        for level in range(1, self.depth + 1):
            slots = np.unique(slots // self.fanout)
            children = self.levels[level - 1].reshape(-1, self.fanout)
            self.levels[level][slots] = children[slots].sum(axis=1)

    def find(self, targets: np.ndarray) -> np.ndarray:
        """For each u in [0, total), the slot i with Σ_{k<i} p_k <= u < Σ_{k<=i} p_k. A u that
        rounding puts at or past the total lands on the last slot with a priority above 0, never
        on an empty one (the total must be above 0)."""
        u = np.asarray(targets, dtype=np.float64).reshape(-1).copy()
        nodes, rows = np.zeros(len(u), dtype=np.int64), np.arange(len(u))
        for level in range(self.depth, 0, -1):
            children = self.levels[level - 1].reshape(-1, self.fanout)[nodes]  # [n, fanout]
            running = np.cumsum(children, axis=1)
            # at or past this node's sum (rounding): just below it, so the last positive child
            u = np.minimum(u, np.nextafter(running[:, -1], 0.0))
            child = np.argmax(running > u[:, None], axis=1)  # the first whose sum passes u
            u -= running[rows, child] - children[rows, child]  # the sum before the child
            nodes = nodes * self.fanout + child
        return nodes.reshape(np.shape(targets))


def importance_weights(probabilities: np.ndarray, size: int, beta: float) -> np.ndarray:
    """w_i = (N · P(i))^-β, divided by the largest w in each batch (the last axis) so that
    weights only ever scale updates down."""
    weights = (size * np.asarray(probabilities, dtype=np.float64)) ** -beta
    return (weights / weights.max(axis=-1, keepdims=True)).astype(np.float32)


def priority_beta(config: DQNConfig, env_steps: int) -> float:
    """β, linear from ``priority_beta0`` at step 0 to 1 at ``priority_beta_steps`` (or
    ``total_steps``), then 1."""
    steps = config.priority_beta_steps or config.total_steps
    assert steps is not None  # the config validator requires one of them
    fraction = min(1.0, env_steps / steps)
    return config.priority_beta0 + fraction * (1.0 - config.priority_beta0)


class Priorities:
    """The priorities of a replay's slots, how they are sampled, and the TD errors that update them.

    Writes wait for the next sample, where they go into the tree together: the slots the replay
    wrote (at the largest priority so far) or emptied since, and the TD errors of the last
    learning step (:meth:`update_later`). So storing a transition costs no tree walk, and the
    loop never waits for the update it has just dispatched: its TD errors stay on the device
    until the next sample. A slot written or emptied after it was sampled holds another
    transition (or none) by then, so its stale TD error is dropped. Checkpoints carry the
    pending TD errors, so a resume writes them exactly when the uninterrupted run would."""

    def __init__(self, capacity: int, alpha: float, eps: float):
        self.tree = SumTree(capacity)
        self.alpha, self.eps = alpha, eps
        self.max_priority = 1.0  # of any slot so far: what new transitions get
        self.beta = 1.0  # set by the training loop before each sample (priority_beta)
        # A change counter per slot, so a pending TD error can tell whether its slot still
        # holds the transition it was computed for.
        self._changes = np.zeros(capacity, dtype=np.int64)
        self._change_count = 0
        self._unwritten: list[tuple[np.ndarray, float]] = []  # slots changed, their priority
        self._sampled: tuple[np.ndarray, np.ndarray] | None = None  # slots, their change counts
        self._pending: tuple[np.ndarray, np.ndarray, object] | None = None  # ... and TD errors

    def written(self, slots: np.ndarray) -> None:
        """New transitions at ``slots``: the largest priority so far."""
        self._changed(slots, self.max_priority)

    def emptied(self, slots: np.ndarray) -> None:
        """Transitions left the replay: never sampled again."""
        self._changed(slots, 0.0)

    def _changed(self, slots: np.ndarray, priority: float) -> None:
        self._change_count += 1
        self._changes[slots] = self._change_count
        self._unwritten.append((np.asarray(slots, dtype=np.int64).reshape(-1), priority))

    def total(self) -> float:
        """Σ p_i over the live transitions, TD errors still pending left out (writing those now
        would change what the transitions stored before the next sample get)."""
        self._write(self._take_unwritten())
        return self.tree.total

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, ...], size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Slots drawn in proportion to priority, and their importance weights (float32), for
        batches along the last axis of ``shape``. Each batch is stratified (one draw from each
        of B equal parts of the total, as Schaul et al.'s), which spreads a batch over the
        buffer at no cost to the probabilities; ``size`` is N, the live transitions."""
        self._write_pending()
        batch_size = shape[-1]
        strata = (np.arange(batch_size) + rng.random(shape)) / batch_size
        slots = self.tree.find(strata * self.tree.total)
        probabilities = self.tree.get(slots) / self.tree.total
        self._sampled = (slots, self._changes[slots])
        return slots, importance_weights(probabilities, size, self.beta)

    def update_later(self, td_errors: object) -> None:
        """The TD errors ([K, B], a device array is fine) of the batches :meth:`sample` drew
        last, to be written before the next sample."""
        if self._sampled is None:
            raise RuntimeError("update_later() needs a sample() before it")
        self._pending = (*self._sampled, td_errors)
        self._sampled = None

    def _write_pending(self) -> None:
        """Into the tree, in one write: the slots changed since the last sample, then the TD
        errors of slots unchanged since they were sampled (no slot is in both)."""
        parts = self._take_unwritten()
        if self._pending is not None:
            slots, changes, td_errors = self._pending
            self._pending = None
            td = np.abs(np.asarray(td_errors, dtype=np.float64)).reshape(slots.shape)
            current = self._changes[slots] == changes
            priorities = (td[current] + self.eps) ** self.alpha
            parts.append((slots[current], priorities))
            if priorities.size:
                self.max_priority = max(self.max_priority, float(priorities.max()))
        self._write(parts)

    def _take_unwritten(self) -> list[tuple[np.ndarray, np.ndarray]]:
        parts = [(slots, np.full(len(slots), value)) for slots, value in self._unwritten]
        self._unwritten = []
        return parts

    def _write(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        if parts:
            self.tree.set(np.concatenate([p[0] for p in parts]),
                          np.concatenate([p[1] for p in parts]))  # fmt: skip

    def state_arrays(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        """The priorities of ``slots`` (the live transitions, in the order the replay saves
        them), the largest so far, and the pending TD errors still current, by their position
        in ``slots``."""
        self._write(self._take_unwritten())  # fixed when they happened: safe to write now
        position = np.full(self.tree.capacity, -1, dtype=np.int64)
        position[slots] = np.arange(len(slots))
        pending_at, pending_td = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self._pending is not None:
            pending_slots, changes, td_errors = self._pending
            td = np.asarray(td_errors, dtype=np.float32).reshape(-1)
            current = (self._changes[pending_slots] == changes).reshape(-1)
            pending_at = position[pending_slots.reshape(-1)[current]]
            pending_td = td[current]
        return {
            "priorities": self.tree.get(slots),
            "max_priority": np.array(self.max_priority, dtype=np.float64),
            "pending_at": pending_at,
            "pending_td": pending_td,
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray], slots: np.ndarray) -> None:
        """Restore :meth:`state_arrays`' output into a replay whose live transitions are now at
        ``slots``; every array is checked first."""
        priorities, max_priority = arrays["priorities"], arrays["max_priority"]
        pending_at, pending_td = arrays["pending_at"], arrays["pending_td"]
        if priorities.shape != (len(slots),) or priorities.dtype != np.float64:
            raise ValueError(f"replay priorities must be float64[{len(slots)}]")
        if max_priority.shape != () or max_priority.dtype != np.float64:
            raise ValueError("replay max_priority must be one float64")
        if not (np.isfinite(priorities).all() and (priorities > 0).all()):
            raise ValueError("replay priorities must be finite and > 0 (every one is live)")
        if not (np.isfinite(max_priority) and max_priority >= priorities.max(initial=0.0)):
            raise ValueError("replay max_priority must be finite and >= every priority")
        with np.errstate(over="ignore"):  # the sums the tree will hold must be finite too
            too_large = not np.isfinite(max_priority * self.tree.capacity + priorities.sum())
        if too_large:
            raise ValueError("replay priorities are too large: their sum is not finite")
        if pending_at.dtype != np.int64 or pending_at.ndim != 1:
            raise ValueError("replay pending_at must be int64[m]")
        if pending_td.shape != pending_at.shape or pending_td.dtype != np.float32:
            raise ValueError("replay pending_td must be float32[m], as pending_at")
        if len(pending_at) and not 0 <= pending_at.min() <= pending_at.max() < len(slots):
            raise ValueError("replay pending_at names transitions the replay does not hold")
        if not np.isfinite(pending_td).all():
            raise ValueError("replay pending_td must be finite")
        for level in self.tree.levels:
            level[:] = 0.0
        self.tree.set(slots, priorities)
        self.max_priority = float(max_priority)
        self._changes[:], self._change_count = 0, 0
        self._unwritten, self._sampled = [], None
        self._pending = None
        if len(pending_at):
            pending_slots = np.asarray(slots)[pending_at]
            self._pending = (pending_slots, self._changes[pending_slots], pending_td)
