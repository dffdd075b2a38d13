"""Replay for stacked frames that stores each frame once (Atari: 1M transitions in ~7.2 GB).

A stacked observation [84, 84, 4] shares three frames with the one before it, and ``obs`` and
``next_obs`` of a transition share three more: stored as stacks, a 1M-transition Atari buffer
takes 56 GB (SB3's ``optimize_memory_usage`` halves that to ~26 GiB). Here the collector writes
each new frame once into a ring of frames and hands the replay, instead of pixels, the ids of
the frames each observation stacks; the stacks are put together when a batch is sampled.

Why ids and not Dopamine's per-step layout (one frame per step, stacks read back from the
neighbouring steps): ids leave the n-step accumulator, the episode starts (a new episode's stack
repeats its first frame, as Gymnasium's FrameStackObservation pads it, and never holds frames of
the episode before) and the real final frame of a truncated episode exactly as the collector
made them, with any number of envs, at 64 bytes per transition.

Frame ids are absolute (the count of frames written before), so frame ``f`` lives in slot
``f % frame_capacity``. More frames than transitions are written (one more per episode), so the
frame ring is a little larger than the transition ring, and a transition whose oldest frame is
about to be overwritten leaves the buffer first (:meth:`_drop_stale`).
"""

from __future__ import annotations

import numpy as np

from deepq.dqn.replay import SCALAR_COLUMNS, PackedBatch, TransitionRing
from deepq.run.atari import stacked_frames

# Frame ids are int64 counts: sums of them and the ring's size must not overflow (a count of
# 2^63 - 1 from a checkpoint did, on resume). 2^62 frames is 10^11 years at 1,000 a second.
MAX_FRAMES = 1 << 62


class FrameReplay(TransitionRing):
    """FIFO replay of stacked-frame transitions, each frame stored once.

    ``add`` takes the ids (int64 [n, stack]) of the frames of obs and next_obs, which
    :meth:`add_frames` returned when the collector wrote them; ``sample`` returns pixels.
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, int],
        stack: int,
        num_envs: int = 1,
        n_step: int = 1,
        dtype: np.dtype | type = np.uint8,
    ):
        super().__init__(capacity)
        self.stack = stack
        # How far out of order the oldest frames of transitions added later may be: a step writes
        # at most 2 frames per env (its new frame, and a reset's), and a transition's oldest
        # frame is at most n_step + stack steps old when it is added.
        self.margin = frame_margin(num_envs, n_step, stack)
        self.frame_capacity = frame_capacity(capacity, self.margin)
        self.frames = np.zeros((self.frame_capacity, *frame_shape), dtype=dtype)
        self.frames_written = 0
        self.obs_ids = np.zeros((capacity, stack), dtype=np.int64)
        self.next_ids = np.zeros((capacity, stack), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.frames, self.obs_ids, self.next_ids, self.scalars))

    def add_frames(self, frames: np.ndarray) -> np.ndarray:
        """Write frames [m, height, width]; returns their ids (int64 [m])."""
        m = len(frames)
        ids = self.frames_written + np.arange(m, dtype=np.int64)
        self.frames[ids % self.frame_capacity] = frames
        self.frames_written += m
        self._drop_stale()
        return ids

    def _write_observations(self, slots: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """``obs`` and ``next_obs`` are frame ids [n, stack], all still in the frame ring."""
        if len(obs) and np.min(obs) < self.frames_written - self.frame_capacity:
            raise ValueError("a transition refers to frames the frame ring no longer holds")
        self.obs_ids[slots] = obs
        self.next_ids[slots] = next_obs

    def _drop_stale(self) -> None:
        """Let the oldest transitions go while their oldest frame is within ``margin`` of being
        overwritten. Transitions are added in nearly the order of their frames (out of order by
        less than ``margin``), so every transition left still has all its frames."""
        threshold = self.frames_written - self.frame_capacity + self.margin
        tail, size = self._tail(), self.size
        while self.size and self.obs_ids[self._tail()].min() < threshold:
            self.size -= 1
        if self.priorities is not None and self.size < size:
            self.priorities.emptied((tail + np.arange(size - self.size)) % self.capacity)

    def stacks(self, ids: np.ndarray) -> np.ndarray:
        """Frames of ids [..., stack] as observations [..., height, width, stack]."""
        return np.moveaxis(np.take(self.frames, ids % self.frame_capacity, axis=0), -3, -1)

    def gather(self, indices: np.ndarray) -> PackedBatch:
        return PackedBatch(
            obs=self.stacks(np.take(self.obs_ids, indices, axis=0)),
            next_obs=self.stacks(np.take(self.next_ids, indices, axis=0)),
            scalars=np.take(self.scalars, indices, axis=0),
        )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The live transitions (oldest first), the frames written (in their ring slots) and the
        frame count, for checkpoints."""
        live = (self._tail() + np.arange(self.size)) % self.capacity
        return {
            "frames": self.frames[: min(self.frames_written, self.frame_capacity)],
            "frames_written": np.array(self.frames_written, dtype=np.int64),
            "obs_ids": self.obs_ids[live],
            "next_ids": self.next_ids[live],
            "scalars": self.scalars[live],
            **self._priority_state(live),
        }

    def load_state_arrays(
        self, arrays: dict[str, np.ndarray], n_actions: int | None = None
    ) -> None:
        """Restore from :meth:`state_arrays`' output, checked first: shapes, dtypes, that every
        id names a frame the ring holds, actions (given ``n_actions``) and discounts."""
        self._refuse_unknown(arrays, ("frames", "frames_written", "obs_ids", "next_ids", "scalars"))
        written = arrays["frames_written"]
        if written.dtype != np.int64 or written.shape != () or not 0 <= int(written) <= MAX_FRAMES:
            raise ValueError(f"replay frames_written must be one int64 in [0, {MAX_FRAMES}]")
        written = int(written)
        frames, scalars = arrays["frames"], arrays["scalars"]
        expected = (min(written, self.frame_capacity), *self.frames.shape[1:])
        if frames.shape != expected or frames.dtype != self.frames.dtype:
            raise ValueError(
                f"replay frames have shape {frames.shape} {frames.dtype}, expected {expected} "
                f"{self.frames.dtype}"
            )
        size = len(scalars)
        if size > self.capacity:
            raise ValueError(f"replay holds {size} transitions, more than capacity {self.capacity}")
        for name in ("obs_ids", "next_ids"):
            ids = arrays[name]
            if ids.shape != (size, self.stack) or ids.dtype != np.int64:
                raise ValueError(f"replay {name} must be int64[{size}, {self.stack}]")
            if size and not (written - self.frame_capacity <= ids.min() <= ids.max() < written):
                raise ValueError(f"replay {name} name frames the ring does not hold")
        if scalars.shape != (size, len(SCALAR_COLUMNS)) or scalars.dtype != np.float32:
            raise ValueError(f"replay scalars must be float32[{size}, {len(SCALAR_COLUMNS)}]")
        actions, discounts = scalars[:, 0], scalars[:, SCALAR_COLUMNS.index("discounts")]
        if size and not (np.isfinite(scalars).all() and (discounts >= 0).all()
                         and (discounts <= 1).all()):  # fmt: skip
            raise ValueError("replay scalars must be finite, with discounts in [0, 1]")
        if n_actions is not None and size:
            if (
                not (0 <= actions.min() <= actions.max() < n_actions)
                or (actions != np.round(actions)).any()
            ):
                raise ValueError(f"replay actions lie outside [0, {n_actions})")
        self.frames[: len(frames)] = frames
        self.frames_written = written
        self.obs_ids[:size], self.next_ids[:size] = arrays["obs_ids"], arrays["next_ids"]
        self.scalars[:size] = scalars
        self.size, self.position = size, size % self.capacity
        self._load_priority_state(arrays, np.arange(size))


def frame_margin(num_envs: int, n_step: int, stack: int) -> int:
    return 2 * num_envs * (n_step + stack)


def frame_capacity(capacity: int, margin: int) -> int:
    """Frames the ring holds for ``capacity`` transitions: 1/64 more (an episode writes one frame
    more than it makes transitions), and twice the margin of frames written out of order."""
    return capacity + capacity // 64 + 2 * margin


def frame_stack(env_id: str, obs_shape: tuple[int, ...]) -> int:
    """How many frames each observation of ``env_id`` stacks when the frame replay stores them
    (Atari's 4, the last axis of its [84, 84, 4] observations); 1: the plain replay keeps the
    observations as they are. What training builds, sizes and restores agree on."""
    stack = stacked_frames(env_id)
    return stack if stack > 1 and tuple(obs_shape[-1:]) == (stack,) else 1


def planned_nbytes(
    capacity: int, frame_shape: tuple[int, ...], stack: int, num_envs: int, n_step: int, dtype
) -> int:
    """What :class:`FrameReplay` of these sizes allocates: frames, two id stacks, the scalars."""
    frames = frame_capacity(capacity, frame_margin(num_envs, n_step, stack))
    frame_bytes = int(np.prod(frame_shape)) * np.dtype(dtype).itemsize
    return frames * frame_bytes + capacity * (2 * stack * 8 + len(SCALAR_COLUMNS) * 4)
