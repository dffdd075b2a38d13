"""The ring replay buffer: overwrite order, filled-region sampling, dtypes, copies."""

import numpy as np
import pytest

from deepq.replay import ReplayBuffer


def add_one(buffer, value, terminated=False, truncated=False):
    obs = np.full((1, 2), value, dtype=buffer.obs.dtype)
    buffer.add(
        obs,
        np.array([value % 4]),
        np.array([float(value)]),
        obs + 1,
        np.array([terminated]),
        np.array([truncated]),
    )


def test_ring_overwrites_the_oldest_transition():
    buffer = ReplayBuffer(3, (2,))
    for value in range(5):
        add_one(buffer, value)
    assert len(buffer) == 3 and buffer.position == 2
    # slots: 0 <- 0 then 3, 1 <- 1 then 4, 2 <- 2
    np.testing.assert_array_equal(buffer.rewards, [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buffer.obs[:, 0], [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buffer.next_obs[:, 0], [4.0, 5.0, 3.0])


def test_batched_add_wraps_around():
    buffer = ReplayBuffer(4, (1,))
    obs = np.arange(6, dtype=np.float32)[:, None]
    flags = np.zeros(6, bool)
    buffer.add(obs[:3], np.arange(3), np.arange(3.0), obs[:3], flags[:3], flags[:3])
    buffer.add(obs[3:], np.arange(3, 6), np.arange(3.0, 6.0), obs[3:], flags[3:], flags[3:])
    np.testing.assert_array_equal(buffer.rewards, [4.0, 5.0, 2.0, 3.0])
    assert buffer.position == 2 and len(buffer) == 4


def test_add_more_than_capacity_keeps_the_newest():
    buffer = ReplayBuffer(2, (1,))
    obs = np.arange(5, dtype=np.float32)[:, None]
    flags = np.zeros(5, bool)
    buffer.add(obs, np.arange(5), np.arange(5.0), obs, flags, flags)
    assert sorted(buffer.rewards.tolist()) == [3.0, 4.0]


def test_samples_come_only_from_the_filled_region():
    buffer = ReplayBuffer(100, (2,))
    for value in range(1, 4):
        add_one(buffer, value)
    batch = buffer.sample(np.random.default_rng(0), batch_size=3, num_batches=200)
    assert batch.rewards.shape == (200, 3)
    assert set(np.unique(batch.rewards)) == {1.0, 2.0, 3.0}  # never an empty slot (0.0)


def test_never_samples_before_a_batch_is_held():
    buffer = ReplayBuffer(10, (2,))
    add_one(buffer, 1)
    with pytest.raises(ValueError, match="fewer than a batch"):
        buffer.sample(np.random.default_rng(0), batch_size=2)


def test_terminated_and_truncated_are_stored_separately():
    buffer = ReplayBuffer(4, (2,))
    add_one(buffer, 1, terminated=True)
    add_one(buffer, 2, truncated=True)
    np.testing.assert_array_equal(buffer.terminated[:2], [True, False])
    np.testing.assert_array_equal(buffer.truncated[:2], [False, True])


def test_observation_dtype_is_kept():
    buffer = ReplayBuffer(4, (2,), obs_dtype=np.uint8)
    add_one(buffer, 200)
    add_one(buffer, 7)
    batch = buffer.sample(np.random.default_rng(0), batch_size=2)
    assert batch.obs.dtype == np.uint8 and batch.next_obs.dtype == np.uint8
    assert buffer.obs.nbytes == 4 * 2  # one byte per pixel, not a float copy


def test_input_arrays_are_copied():
    buffer = ReplayBuffer(4, (2,))
    obs = np.ones((1, 2), np.float32)
    buffer.add(obs, np.array([0]), np.array([1.0]), obs, np.array([False]), np.array([False]))
    obs[:] = 99.0
    np.testing.assert_array_equal(buffer.obs[0], [1.0, 1.0])
    np.testing.assert_array_equal(buffer.next_obs[0], [1.0, 1.0])


def test_state_round_trip():
    buffer = ReplayBuffer(3, (2,))
    for value in range(4):
        add_one(buffer, value)
    restored = ReplayBuffer(3, (2,))
    restored.load_state_arrays(buffer.state_arrays())
    assert (restored.position, len(restored)) == (buffer.position, len(buffer))
    np.testing.assert_array_equal(restored.obs, buffer.obs)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(2, (2,)).load_state_arrays(buffer.state_arrays())
