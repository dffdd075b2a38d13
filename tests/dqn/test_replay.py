"""The ring replay buffer: overwrite order, filled-region sampling, dtypes, copies."""

import numpy as np
import pytest

from deepq.dqn.collector import NStepAccumulator
from deepq.dqn.replay import Batch, ReplayBuffer, pack_batch, unpack_batch


def add_one(buffer, value, terminated=False, truncated=False):
    obs = np.full((1, 2), value, dtype=buffer.obs.dtype)
    buffer.add(
        obs,
        np.array([value % 4]),
        np.array([float(value)]),
        obs + 1,
        np.array([terminated]),
        np.array([truncated]),
        0.99,
    )


def test_ring_overwrites_the_oldest_transition():
    buffer = ReplayBuffer(3, (2,))
    for value in range(5):
        add_one(buffer, value)
    assert len(buffer) == 3 and buffer.position == 2
    # slots: 0 <- 0 then 3, 1 <- 1 then 4, 2 <- 2
    np.testing.assert_array_equal(buffer.transitions().rewards, [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buffer.obs[:, 0], [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buffer.next_obs[:, 0], [4.0, 5.0, 3.0])


def test_batched_add_wraps_around():
    buffer = ReplayBuffer(4, (1,))
    obs = np.arange(6, dtype=np.float32)[:, None]
    flags = np.zeros(6, bool)
    buffer.add(obs[:3], np.arange(3), np.arange(3.0), obs[:3], flags[:3], flags[:3], 0.99)
    buffer.add(obs[3:], np.arange(3, 6), np.arange(3.0, 6.0), obs[3:], flags[3:], flags[3:], 0.99)
    np.testing.assert_array_equal(buffer.transitions().rewards, [4.0, 5.0, 2.0, 3.0])
    assert buffer.position == 2 and len(buffer) == 4


def test_add_more_than_capacity_keeps_the_newest():
    buffer = ReplayBuffer(2, (1,))
    obs = np.arange(5, dtype=np.float32)[:, None]
    flags = np.zeros(5, bool)
    buffer.add(obs, np.arange(5), np.arange(5.0), obs, flags, flags, 0.99)
    assert sorted(buffer.transitions().rewards.tolist()) == [3.0, 4.0]


def test_samples_come_only_from_the_filled_region():
    buffer = ReplayBuffer(100, (2,))
    for value in range(1, 4):
        add_one(buffer, value)
    batch = unpack_batch(buffer.sample(np.random.default_rng(0), batch_size=3, num_batches=200))
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
    np.testing.assert_array_equal(buffer.transitions().terminated[:2], [True, False])
    np.testing.assert_array_equal(buffer.transitions().truncated[:2], [False, True])


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
    buffer.add(obs, np.array([0]), np.array([1.0]), obs, np.array([False]), np.array([False]), 0.99)
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
    np.testing.assert_array_equal(restored.scalars, buffer.scalars)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(2, (2,)).load_state_arrays(buffer.state_arrays())


def test_discounts_are_stored_per_transition():
    buffer = ReplayBuffer(4, (1,))
    obs = np.zeros((2, 1), np.float32)
    flags = np.zeros(2, bool)
    buffer.add(obs, np.zeros(2), np.zeros(2), obs, flags, flags, np.array([0.5, 0.25]))
    buffer.add(obs[:1], np.zeros(1), np.zeros(1), obs[:1], flags[:1], flags[:1], 0.9)
    np.testing.assert_allclose(buffer.transitions().discounts[:3], [0.5, 0.25, 0.9])


def test_a_sampled_transition_keeps_its_fields_together():
    buffer = ReplayBuffer(8, (2,))
    for value in range(6):
        add_one(buffer, value, terminated=value == 4, truncated=value == 5)
    batch = unpack_batch(buffer.sample(np.random.default_rng(1), batch_size=4, num_batches=50))
    value = batch.rewards  # add_one builds every field of a transition from one value
    np.testing.assert_array_equal(batch.obs[..., 0], value)
    np.testing.assert_array_equal(batch.next_obs[..., 1], value + 1)
    np.testing.assert_array_equal(batch.actions, value.astype(int) % 4)
    np.testing.assert_array_equal(batch.terminated, value == 4)
    np.testing.assert_array_equal(batch.truncated, value == 5)
    assert batch.actions.dtype == np.int32 and batch.terminated.dtype == np.bool_
    assert batch.discounts.dtype == np.float32 and set(np.unique(batch.discounts)) == {
        np.float32(0.99)
    }


def test_pack_batch_round_trips():
    batch = Batch(
        obs=np.arange(6, dtype=np.uint8).reshape(3, 2),
        actions=np.array([0, 17, 3], np.int32),
        rewards=np.array([-1.5, 0.0, 2.25], np.float32),
        next_obs=np.arange(6, 12, dtype=np.uint8).reshape(3, 2),
        terminated=np.array([True, False, False]),
        truncated=np.array([False, False, True]),
        discounts=np.array([0.99, 0.9801, 0.5], np.float32),
        weights=np.array([1.0, 0.5, 0.25], np.float32),
    )
    packed = pack_batch(batch)
    assert packed.scalars.shape == (3, 5) and packed.obs.dtype == np.uint8
    assert pack_batch(batch._replace(weights=None)).weights is None  # uniform: no leaf at all
    for name, expected in batch._asdict().items():
        got = getattr(unpack_batch(packed), name)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype, name


def test_state_arrays_keep_the_checkpoint_format():
    buffer = ReplayBuffer(4, (2,))
    add_one(buffer, 3, terminated=True)
    arrays = buffer.state_arrays()
    assert {name: arrays[name].dtype.name for name in ("actions", "terminated", "truncated")} == {
        "actions": "int32",
        "terminated": "bool",
        "truncated": "bool",
    }
    assert arrays["actions"].tolist() == [3] and arrays["terminated"].tolist() == [True]
    wrong = dict(arrays, terminated=arrays["terminated"].astype(np.float32))
    with pytest.raises(ValueError, match="'terminated' has shape"):
        ReplayBuffer(4, (2,)).load_state_arrays(wrong)


def push_one(acc, t, reward, terminated=False, truncated=False):
    """Env 0 moves from observation t to t + 1 with ``reward``."""
    return acc.push(
        np.array([[float(t)]]),
        np.array([t % 2]),
        np.array([reward]),
        np.array([[float(t + 1)]]),
        np.array([terminated]),
        np.array([truncated]),
    )


def test_n_step_returns_by_hand():
    acc = NStepAccumulator(n=3, gamma=0.5, num_envs=1)
    assert push_one(acc, 0, 1.0) is None
    assert push_one(acc, 1, 2.0) is None
    obs, actions, returns, next_obs, terminated, truncated, discounts = push_one(acc, 2, 4.0)
    # s0 -> s3: 1 + 0.5 * 2 + 0.25 * 4 = 3, bootstrapped with 0.5**3
    assert (obs[0, 0], actions[0], returns[0], next_obs[0, 0], discounts[0]) == (
        0.0,
        0,
        3.0,
        3.0,
        0.125,
    )
    _, _, returns, next_obs, _, _, _ = push_one(acc, 3, 8.0)
    assert (returns[0], next_obs[0, 0]) == (2.0 + 0.5 * 4 + 0.25 * 8, 4.0)
    # the episode terminates: s2, s3 and s4 are flushed with the final observation s5
    obs, _, returns, next_obs, terminated, truncated, discounts = push_one(
        acc, 4, 16.0, terminated=True
    )
    np.testing.assert_array_equal(obs[:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(returns, [4 + 0.5 * 8 + 0.25 * 16, 8 + 0.5 * 16, 16])
    np.testing.assert_array_equal(next_obs[:, 0], [5.0, 5.0, 5.0])
    np.testing.assert_allclose(discounts, [0.125, 0.25, 0.5])
    assert terminated.all() and not truncated.any()
    assert push_one(acc, 0, 1.0) is None  # a new episode starts empty


def test_n_step_keeps_envs_apart_and_flushes_truncated_episodes():
    acc = NStepAccumulator(n=2, gamma=0.5, num_envs=2)
    obs = np.array([[0.0], [10.0]])
    out = acc.push(
        obs,
        np.array([0, 1]),
        np.array([1.0, 100.0]),
        obs + 1,
        np.array([False, False]),
        np.array([False, True]),
    )
    # env 1 was truncated after one step: flushed alone, bootstrapping from its final obs with γ^1
    np.testing.assert_array_equal(out[0][:, 0], [10.0])
    np.testing.assert_allclose((out[2][0], out[6][0]), (100.0, 0.5))
    assert out[5][0] and not out[4][0]
    out = acc.push(
        obs + 1,
        np.array([0, 1]),
        np.array([2.0, 200.0]),
        obs + 2,
        np.array([False, False]),
        np.array([False, False]),
    )
    np.testing.assert_array_equal(out[0][:, 0], [0.0])  # env 0's first 2-step transition
    np.testing.assert_allclose((out[2][0], out[3][0, 0], out[6][0]), (1.0 + 0.5 * 2.0, 2.0, 0.25))


def test_one_step_passes_through():
    acc = NStepAccumulator(n=1, gamma=0.9, num_envs=2)
    obs = np.zeros((2, 1))
    out = acc.push(
        obs, np.array([0, 1]), np.array([1.0, 2.0]), obs, np.zeros(2, bool), np.zeros(2, bool)
    )
    np.testing.assert_array_equal(out[2], [1.0, 2.0])
    assert float(out[6]) == np.float32(0.9)


def test_an_n_step_transition_carries_the_action_taken_in_its_first_state():
    # actions 5, 6, 7, 8 at s0..s3: the 3-step transitions start at s0 and s1, so they carry
    # the actions 5 and 6 (not the newest pending ones, 7 and 8); the flush at the end of the
    # episode emits s2 and s3 with 7 and 8.
    acc = NStepAccumulator(n=3, gamma=0.5, num_envs=1)
    emitted = []
    for t, action in enumerate((5, 6, 7, 8)):
        out = acc.push(
            np.array([[float(t)]]),
            np.array([action]),
            np.array([1.0]),
            np.array([[float(t + 1)]]),
            np.array([t == 3]),
            np.array([False]),
        )
        if out is not None:
            emitted += list(zip(out[0][:, 0].tolist(), out[1].tolist(), strict=True))
    assert emitted == [(0.0, 5), (1.0, 6), (2.0, 7), (3.0, 8)]
