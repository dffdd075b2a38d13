"""A preallocated ring replay buffer of numpy arrays.

Hand-written rather than taken from a library: the ones that fit (SB3's, Tianshou's) bring
PyTorch or their whole framework, and what DQN needs is ~60 lines: preallocated arrays that
keep the observation dtype (uint8 frames stay uint8), ``terminated`` and ``truncated`` stored
separately, vectorised adds and index sampling restricted to the filled region.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """A minibatch; leading dims are [..., batch]. A NamedTuple, so JAX treats it as a pytree."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class ReplayBuffer:
    """Fixed-capacity FIFO store of transitions (obs, action, reward, next_obs, terminated, truncated)."""

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type = np.float32
    ):
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be >= 1")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.bool_)
        self.truncated = np.zeros(capacity, dtype=np.bool_)
        self.position = 0  # next slot to write
        self.size = 0  # filled slots

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
    ) -> None:
        """Add a batch of n transitions (leading dim n); the arrays are copied in."""
        n = len(actions)
        if n > self.capacity:  # only the newest `capacity` transitions would survive
            keep = slice(n - self.capacity, n)
            obs, actions, rewards, next_obs = (
                obs[keep],
                actions[keep],
                rewards[keep],
                next_obs[keep],
            )
            terminated, truncated, n = terminated[keep], truncated[keep], self.capacity
        slots = (self.position + np.arange(n)) % self.capacity
        self.obs[slots] = obs
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.next_obs[slots] = next_obs
        self.terminated[slots] = terminated
        self.truncated[slots] = truncated
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform indices into the filled region, with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=shape)

    def gather(self, indices: np.ndarray) -> Batch:
        return Batch(
            obs=self.obs[indices],
            actions=self.actions[indices],
            rewards=self.rewards[indices],
            next_obs=self.next_obs[indices],
            terminated=self.terminated[indices],
            truncated=self.truncated[indices],
        )

    def sample(
        self, rng: np.random.Generator, batch_size: int, num_batches: int | None = None
    ) -> Batch:
        """A batch [batch_size, ...], or [num_batches, batch_size, ...] for scanned updates."""
        if self.size < batch_size:
            raise ValueError(
                f"the replay buffer holds {self.size} transitions, fewer than a batch of {batch_size}"
            )
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        return self.gather(self.sample_indices(rng, shape))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The filled contents and the write position, for checkpoints."""
        return {
            "obs": self.obs[: self.size],
            "next_obs": self.next_obs[: self.size],
            "actions": self.actions[: self.size],
            "rewards": self.rewards[: self.size],
            "terminated": self.terminated[: self.size],
            "truncated": self.truncated[: self.size],
            "position": np.array(self.position, dtype=np.int64),
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        size = len(arrays["actions"])
        position = int(arrays["position"])
        if size > self.capacity or not 0 <= position < self.capacity:
            raise ValueError(
                f"replay state (size {size}, position {position}) does not fit capacity {self.capacity}"
            )
        for name in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated"):
            target = getattr(self, name)
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
            target[:size] = source
        self.size, self.position = size, position
