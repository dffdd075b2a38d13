"""A preallocated ring replay buffer of numpy arrays.

Hand-written rather than taken from a library: the ones that fit (SB3's, Tianshou's) bring
PyTorch or their whole framework, and what DQN needs is ~60 lines: preallocated arrays that
keep the observation dtype (uint8 frames stay uint8), ``terminated`` and ``truncated`` stored
separately, vectorised adds and index sampling restricted to the filled region.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepq.dqn.prioritized import Priorities


class Batch(NamedTuple):
    """A minibatch; leading dims are [..., batch]. A NamedTuple, so JAX treats it as a pytree."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    discounts: np.ndarray  # γ^m for an m-step return: the factor in front of Q(next_obs)
    weights: np.ndarray | None = None  # prioritized replay's importance weights; None: uniform


PRIORITY_ARRAYS = ("priorities", "max_priority", "pending_at", "pending_td")

# The per-transition scalars share one float32 array, in this column order. Actions are
# discrete indices, exact in float32 up to 2**24; the two flags are 0.0 or 1.0.
SCALAR_COLUMNS = ("actions", "rewards", "terminated", "truncated", "discounts")


class PackedBatch(NamedTuple):
    """A minibatch as the buffer stores it: observations in their own dtype, the scalars of
    each transition in one float32 array [..., batch, 5] (columns :data:`SCALAR_COLUMNS`).

    Why: every array handed to a jitted call costs the calling thread a few µs, and every
    numpy gather another few (several times that while XLA computes on the other core); three
    arrays instead of seven took sampling from ~230 to ~75 µs per update call in the DQN loop.
    :func:`unpack_batch` (numpy or jax arrays) gives back the Batch.
    """

    obs: np.ndarray
    next_obs: np.ndarray
    scalars: np.ndarray
    weights: np.ndarray | None = None  # float32 [..., batch]; None (no pytree leaf): uniform


def pack_batch(batch: Batch) -> PackedBatch:
    scalars = np.stack(
        [np.asarray(getattr(batch, name), dtype=np.float32) for name in SCALAR_COLUMNS], axis=-1
    )
    return PackedBatch(np.asarray(batch.obs), np.asarray(batch.next_obs), scalars, batch.weights)


def unpack_batch(packed: PackedBatch) -> Batch:
    """The Batch of a PackedBatch; traceable, so the jitted update unpacks inside the call."""
    columns = {name: packed.scalars[..., i] for i, name in enumerate(SCALAR_COLUMNS)}
    return Batch(
        obs=packed.obs,
        actions=columns["actions"].astype(np.int32),
        rewards=columns["rewards"],
        next_obs=packed.next_obs,
        terminated=columns["terminated"] != 0,
        truncated=columns["truncated"] != 0,
        discounts=columns["discounts"],
        weights=packed.weights,
    )


class TransitionRing:
    """What both replays share: a FIFO ring of ``capacity`` transitions whose scalars live in one
    float32 array, written in batches and sampled uniformly, or in proportion to priority once
    :meth:`prioritize` has been called. Subclasses say where observations are kept
    (:meth:`_write_observations`, :meth:`gather`) and where the live region starts
    (:meth:`_tail`)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be >= 1")
        self.capacity = capacity
        self.scalars = np.zeros((capacity, len(SCALAR_COLUMNS)), dtype=np.float32)
        self.position = 0  # next slot to write
        self.size = 0  # live transitions, ending just before position
        self.priorities: Priorities | None = None

    def prioritize(self, alpha: float, eps: float) -> None:
        """Sample in proportion to priority from now on (the replay must be empty)."""
        if self.size:
            raise ValueError("prioritize() an empty replay")
        self.priorities = Priorities(self.capacity, alpha, eps)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        discounts: np.ndarray | float,
    ) -> None:
        """Add a batch of n transitions (leading dim n); the arrays are copied in."""
        n = len(actions)
        columns = (actions, rewards, terminated, truncated, np.broadcast_to(discounts, (n,)))
        if n > self.capacity:  # only the newest `capacity` transitions would survive
            obs, next_obs = obs[n - self.capacity :], next_obs[n - self.capacity :]
            columns = tuple(c[n - self.capacity :] for c in columns)
            n = self.capacity
        slots = (self.position + np.arange(n)) % self.capacity
        self._write_observations(slots, obs, next_obs)
        for column, values in enumerate(columns):
            self.scalars[slots, column] = values
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        if self.priorities is not None:
            self.priorities.written(slots)

    def _write_observations(self, slots: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:
        raise NotImplementedError

    def _tail(self) -> int:
        """The slot of the oldest live transition."""
        return (self.position - self.size) % self.capacity

    def gather(self, indices: np.ndarray) -> PackedBatch:
        raise NotImplementedError

    def sample_indices(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform slots of live transitions, with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return (self._tail() + rng.integers(0, self.size, size=shape)) % self.capacity

    def sample(
        self, rng: np.random.Generator, batch_size: int, num_batches: int | None = None
    ) -> PackedBatch:
        """A batch [batch_size, ...], or [num_batches, batch_size, ...] for scanned updates."""
        if self.size < batch_size:
            raise ValueError(
                f"the replay buffer holds {self.size} transitions, fewer than a batch of {batch_size}"
            )
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        if self.priorities is None:
            return self.gather(self.sample_indices(rng, shape))
        indices, weights = self.priorities.sample(rng, shape, self.size)
        return self.gather(indices)._replace(weights=weights)

    def _priority_state(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        """For checkpoints: the priorities of ``slots`` (in the order they are saved), if any."""
        if self.priorities is None:
            return {}
        return {f"priority/{k}": v for k, v in self.priorities.state_arrays(slots).items()}

    def _refuse_unknown(self, arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> None:
        """A replay state holds exactly ``names`` (and its priorities when prioritized): an
        array it does not know is refused, not ignored."""
        known = set(names) | {f"priority/{k}" for k in PRIORITY_ARRAYS}
        unknown = sorted(set(arrays) - known)
        if unknown:
            raise ValueError(f"the replay holds an unknown array replay/{unknown[0][:80]}")
        missing = sorted(set(names) - set(arrays))
        if missing:
            raise ValueError(f"the replay lacks replay/{missing[0]}")

    def _load_priority_state(self, arrays: dict[str, np.ndarray], slots: np.ndarray) -> None:
        saved = {
            k.removeprefix("priority/"): v for k, v in arrays.items() if k.startswith("priority/")
        }
        if self.priorities is None:
            if saved:
                raise ValueError("the replay holds priorities, but prioritized=false")
            return
        missing = set(PRIORITY_ARRAYS) - set(saved)
        if missing:
            raise ValueError(f"the prioritized replay lacks priority/{sorted(missing)[0]}")
        self.priorities.load_state_arrays(saved, slots)


class ReplayBuffer(TransitionRing):
    """Fixed-capacity FIFO store of transitions (obs, action, reward, next_obs, terminated, truncated,
    discount)."""

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type = np.float32
    ):
        super().__init__(capacity)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)

    def transitions(self) -> Batch:
        """The filled region as a Batch of typed arrays (actions int32, flags bool)."""
        return unpack_batch(
            PackedBatch(
                self.obs[: self.size], self.next_obs[: self.size], self.scalars[: self.size]
            )
        )

    def _write_observations(self, slots: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:
        self.obs[slots] = obs
        self.next_obs[slots] = next_obs

    def _tail(self) -> int:
        return 0  # the buffer only ever grows until full, then it is all live

    def gather(self, indices: np.ndarray) -> PackedBatch:
        # np.take rather than fancy indexing: same result, a few times faster on rows
        return PackedBatch(
            obs=np.take(self.obs, indices, axis=0),
            next_obs=np.take(self.next_obs, indices, axis=0),
            scalars=np.take(self.scalars, indices, axis=0),
        )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The filled contents and the write position, for checkpoints."""
        transitions = self.transitions()._asdict()
        del transitions["weights"]
        return {
            **transitions,
            "position": np.array(self.position, dtype=np.int64),
            **self._priority_state(np.arange(self.size)),
        }

    def load_state_arrays(
        self, arrays: dict[str, np.ndarray], n_actions: int | None = None
    ) -> None:
        """Restore from :meth:`state_arrays`' output; the names, shapes, dtypes, the position,
        that rewards, discounts (in [0, 1]) and float observations are finite, and (given
        ``n_actions``) every stored action are checked first."""
        self._refuse_unknown(arrays, (*Batch._fields[:-1], "position"))
        if arrays["position"].dtype != np.int64 or arrays["position"].shape != ():
            raise ValueError("replay position must be one int64")
        size = len(arrays["actions"])
        position = int(arrays["position"])
        # the buffer grows from slot 0 until full, then wraps: the position is its size until then
        if (
            size > self.capacity
            or not 0 <= position < self.capacity
            or (size < self.capacity and position != size)
        ):
            raise ValueError(
                f"replay state (size {size}, position {position}) does not fit capacity {self.capacity}"
            )
        for name, target in self.transitions()._asdict().items():  # typed: int32, bool, ...
            if target is None:  # weights: sampling's, never stored
                continue
            source = arrays[name]
            if (
                source.shape[1:] != target.shape[1:]
                or source.dtype != target.dtype
                or len(source) != size
            ):
                raise ValueError(
                    f"replay array {name!r} has shape {source.shape} {source.dtype}, "
                    f"expected (n, {', '.join(map(str, target.shape[1:]))}) {target.dtype}"
                )
        actions = arrays["actions"]
        if n_actions is not None and size and not 0 <= actions.min() <= actions.max() < n_actions:
            raise ValueError(f"replay actions lie outside [0, {n_actions})")
        discounts, rewards = arrays["discounts"], arrays["rewards"]
        if size and not (np.isfinite(discounts).all() and (0 <= discounts).all()
                         and (discounts <= 1).all()):  # fmt: skip
            raise ValueError("replay discounts must lie in [0, 1]")
        if size and not np.isfinite(rewards).all():
            raise ValueError("replay rewards must be finite")
        if np.issubdtype(self.obs.dtype, np.floating) and not (
            np.isfinite(arrays["obs"]).all() and np.isfinite(arrays["next_obs"]).all()
        ):
            raise ValueError("replay observations must be finite")
        self.obs[:size] = arrays["obs"]
        self.next_obs[:size] = arrays["next_obs"]
        for column, name in enumerate(SCALAR_COLUMNS):
            self.scalars[:size, column] = arrays[name]
        self.size, self.position = size, position
        self._load_priority_state(arrays, np.arange(size))
