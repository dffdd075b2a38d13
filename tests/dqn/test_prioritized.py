"""Prioritized replay: the sum tree, sampling in proportion to priority, importance weights, the
TD errors written back, and checkpoints that keep all of it (hand-computed where possible)."""

import json

import numpy as np
import pytest
from helpers import rewound_copy
from test_resume import assert_same_run

from deepq.dqn.config import DQNConfig
from deepq.dqn.frame_replay import FrameReplay
from deepq.dqn.loop import resume, train
from deepq.dqn.prioritized import Priorities, SumTree, importance_weights, priority_beta
from deepq.dqn.replay import ReplayBuffer
from deepq.outputs.report import render_page
from deepq.run.checkpoint import load_checkpoint


@pytest.mark.parametrize("fanout", [2, 32])
def test_the_sum_tree_finds_where_the_running_sum_crosses_u(fanout):
    tree = SumTree(5, fanout)
    assert tree.depth == {2: 3, 32: 1}[fanout]  # 8 leaves in 3 levels, or 32 under the root
    tree.set(np.arange(5), np.array([1.0, 2.0, 3.0, 4.0, 0.0]))
    assert tree.total == 10.0
    # running sums 1, 3, 6, 10: slot i covers [sum before i, sum through i)
    u = np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    np.testing.assert_array_equal(tree.find(u), [0, 0, 1, 1, 2, 2, 3, 3])
    # at or past the total (rounding), the last slot with a priority, never the empty slot 4
    np.testing.assert_array_equal(tree.find(np.array([10.0, 10.5])), [3, 3])
    tree.set(np.array([1, 3, 1]), np.array([5.0, 0.0, 0.5]))  # slot 1 named twice: the last wins
    assert tree.total == 1.0 + 0.5 + 3.0
    np.testing.assert_array_equal(tree.find(np.array([1.2, 1.5, 4.4])), [1, 2, 2])


def test_a_one_slot_tree_is_its_own_root():
    tree = SumTree(1)
    tree.set(np.array([0]), 2.5)
    assert (tree.depth, tree.total) == (0, 2.5)
    np.testing.assert_array_equal(tree.find(np.array([0.0, 2.4])), [0, 0])


def test_a_large_tree_agrees_with_a_cumulative_sum():
    rng = np.random.default_rng(0)
    priorities = rng.random(40_000) * (rng.random(40_000) < 0.7)  # 30% empty slots
    tree = SumTree(40_000)  # 32^4 leaves, 4 levels
    tree.set(np.arange(40_000), priorities)
    u = rng.random(1000) * priorities.sum()
    expected = np.searchsorted(np.cumsum(priorities), u, side="right")
    np.testing.assert_array_equal(tree.find(u), expected)
    assert tree.total == pytest.approx(priorities.sum(), rel=1e-12)


def test_samples_follow_the_priorities_chi_square():
    priorities = Priorities(6, alpha=1.0, eps=0.0)
    priorities.tree.set(np.arange(6), np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0]))
    slots, _ = priorities.sample(np.random.default_rng(0), (400, 50), size=6)
    counts = np.bincount(slots.ravel(), minlength=6)
    assert counts[4] == 0  # priority 0: never drawn
    expected = 20_000 * np.array([1, 2, 3, 4, 10]) / 20
    chi_square = (((counts[[0, 1, 2, 3, 5]] - expected) ** 2) / expected).sum()
    assert chi_square < 18.47  # 4 degrees of freedom, p = 0.001
    # and a wrong distribution (uniform over the five) would fail the same bound by far
    uniform = np.full(5, 4000.0)
    assert (((counts[[0, 1, 2, 3, 5]] - uniform) ** 2) / uniform).sum() > 1000


def test_importance_weights_by_hand():
    # P = 0.1, 0.2, 0.3, 0.4 of N = 4; (N P)^-β / max = (P_min / P)^β: β = 0.5 gives 1/sqrt(i)
    weights = importance_weights(np.array([0.1, 0.2, 0.3, 0.4]), 4, beta=0.5)
    np.testing.assert_allclose(weights, [1, 1 / np.sqrt(2), 1 / np.sqrt(3), 0.5], rtol=1e-6)
    np.testing.assert_array_equal(importance_weights(np.array([0.1, 0.4]), 4, beta=0.0), [1, 1])
    assert weights.dtype == np.float32


def test_beta_rises_linearly_to_one():
    config = DQNConfig(prioritized=True, priority_beta0=0.4, total_steps=1000)
    assert [priority_beta(config, s) for s in (0, 500, 1000, 5000)] == pytest.approx(
        [0.4, 0.7, 1.0, 1.0]
    )
    config = DQNConfig(prioritized=True, priority_beta0=0.4, priority_beta_steps=200)
    assert priority_beta(config, 100) == pytest.approx(0.7)


def add(replay, values):
    n = len(values)
    obs = np.array(values, np.float32).reshape(n, 1)
    replay.add(
        obs, np.zeros(n, np.int64), obs[:, 0], obs, np.zeros(n, bool), np.zeros(n, bool), 0.9
    )


def stored(replay, slots):
    """The priorities in the tree, with the replay's writes since the last sample made."""
    replay.priorities.total()
    return replay.priorities.tree.get(np.asarray(slots))


def test_new_transitions_come_in_at_the_largest_priority_and_td_errors_replace_it():
    replay = ReplayBuffer(4, (1,))
    replay.prioritize(alpha=0.5, eps=0.01)
    add(replay, [0, 1, 2])
    np.testing.assert_array_equal(stored(replay, np.arange(4)), [1, 1, 1, 0])  # max so far: 1
    batch = replay.sample(np.random.default_rng(0), batch_size=3)
    np.testing.assert_array_equal(batch.weights, [1, 1, 1])  # equal priorities: equal weights
    # equal priorities, stratified: one draw from each third of the total, so slots 0, 1, 2
    np.testing.assert_array_equal(replay.priorities._sampled[0], [0, 1, 2])
    replay.priorities.update_later(np.array([-3.99, 0.24, 0.0]))
    # written at the next sample, not before: the loop never waits for the update
    np.testing.assert_array_equal(stored(replay, np.arange(3)), [1, 1, 1])
    replay.sample(np.random.default_rng(1), batch_size=3)
    expected = [2.0, 0.5, 0.1]  # (|δ| + ε)^α = sqrt(4), sqrt(0.25), sqrt(0.01)
    np.testing.assert_allclose(stored(replay, np.arange(3)), expected)
    assert replay.priorities.max_priority == pytest.approx(2.0)
    add(replay, [3])  # slot 3 comes in at the new largest priority
    assert stored(replay, [3])[0] == pytest.approx(replay.priorities.max_priority)


def test_a_td_error_for_a_slot_overwritten_since_is_dropped():
    replay = ReplayBuffer(2, (1,))
    replay.prioritize(alpha=1.0, eps=0.0)
    add(replay, [0, 1])
    replay.sample(np.random.default_rng(0), batch_size=2)
    slots = replay.priorities._sampled[0]
    replay.priorities.update_later(np.full(2, 7.0))
    add(replay, [2])  # overwrites slot 0 (the oldest) before the TD errors are written
    replay.sample(np.random.default_rng(0), batch_size=2)
    assert stored(replay, [0])[0] == 1.0  # the new transition's priority, not 7
    if 1 in slots:
        assert stored(replay, [1])[0] == 7.0


def test_frame_replay_empties_the_priorities_of_dropped_transitions():
    replay = FrameReplay(4, (1, 1), 2)  # frame ring 16, margin 6
    replay.prioritize(alpha=1.0, eps=0.0)
    replay.add_frames(np.zeros((2, 1, 1), np.uint8))
    replay.add(np.array([[0, 0]]), np.array([0]), np.array([0.0]), np.array([[0, 1]]),
               np.array([False]), np.array([False]), 0.9)  # fmt: skip
    assert replay.priorities.total() == 1.0
    replay.add_frames(np.zeros((9, 1, 1), np.uint8))  # the transition's frame 0 is about to go
    assert len(replay) == 0 and replay.priorities.total() == 0.0


@pytest.mark.parametrize("kind", ["plain", "frames"])
def test_priorities_and_pending_td_errors_round_trip_through_a_checkpoint(kind):
    def make():
        if kind == "plain":
            replay = ReplayBuffer(6, (1,))
        else:
            replay = FrameReplay(6, (1, 1), 1)
        replay.prioritize(alpha=0.6, eps=1e-3)
        return replay

    def fill(replay, start, n):
        if kind == "plain":
            add(replay, list(range(start, start + n)))
            return
        ids = replay.add_frames(np.arange(start, start + n, dtype=np.uint8).reshape(n, 1, 1))
        replay.add(ids[:, None], np.zeros(n, np.int64), ids.astype(np.float32), ids[:, None],
                   np.zeros(n, bool), np.zeros(n, bool), 0.9)  # fmt: skip

    replay, rng = make(), np.random.default_rng(3)
    fill(replay, 0, 9)  # wraps: the live transitions no longer start at slot 0
    for _ in range(3):
        replay.sample(rng, 4, 2)
        replay.priorities.update_later(rng.standard_normal((2, 4)).astype(np.float32))
    state = replay.state_arrays()  # with TD errors pending
    assert {"priority/priorities", "priority/pending_at"} <= set(state)
    again = make()
    again.load_state_arrays(state)
    for copy in (replay, again):
        fill(copy, 9, 2)  # overwrites two slots: their pending errors must drop in both
    a = replay.sample(np.random.default_rng(7), 4, 3)
    b = again.sample(np.random.default_rng(7), 4, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert replay.priorities.max_priority == again.priorities.max_priority
    bad = dict(state, **{"priority/pending_at": state["priority/pending_at"] + 100})
    with pytest.raises(ValueError, match="pending_at"):
        make().load_state_arrays(bad)
    zero = dict(state, **{"priority/priorities": np.zeros_like(state["priority/priorities"])})
    with pytest.raises(ValueError, match="> 0"):  # nothing could be sampled
        make().load_state_arrays(zero)
    huge = dict(state, **{"priority/priorities": np.full_like(state["priority/priorities"], 1e308),
                          "priority/max_priority": np.array(1e308)})  # fmt: skip
    with pytest.raises(ValueError, match="their sum is not finite"):
        make().load_state_arrays(huge)
    pending_nan = state["priority/pending_td"].copy()
    pending_nan[0] = np.nan  # written at the next sample, it would make the tree's total NaN
    with pytest.raises(ValueError, match="pending_td must be finite"):
        make().load_state_arrays(dict(state, **{"priority/pending_td": pending_nan}))
    with pytest.raises(ValueError, match="prioritized=false"):
        (ReplayBuffer(6, (1,)) if kind == "plain" else FrameReplay(6, (1, 1), 1)).load_state_arrays(
            state
        )


PRIORITIZED_RUN = {
    "env_id": "CartPole-v1", "num_envs": 2, "n_step": 3, "prioritized": True, "noisy": False,
    "total_steps": 3000, "hidden_sizes": [16], "batch_size": 16, "learning_starts": 200,
    "train_every": 1, "gradient_steps": 2, "epsilon_decay_steps": 1000, "eval_every": 1500,
    "eval_episodes": 2, "final_eval_episodes": 2, "checkpoint_every_episodes": 40,
    "keep_checkpoints": 0, "priority_beta_steps": 6000,
}  # fmt: skip


RAINBOW_RUN = {**PRIORITIZED_RUN, "double": True, "dueling": True, "num_atoms": 11,
               "v_min": -20.0, "v_max": 20.0, "noisy": True}  # fmt: skip


@pytest.mark.parametrize("settings", [PRIORITIZED_RUN, RAINBOW_RUN], ids=["prioritized", "rainbow"])
def test_a_resumed_prioritized_run_equals_the_uninterrupted_one(settings, tmp_path):
    """Also with every Rainbow part at once: noisy layers draw their acting noise from the run's
    RNG and their update noise from the gradient step, so a resume draws the same."""
    whole = tmp_path / "whole"
    train(settings, whole, show_progress=False, tensorboard=False)
    arrays, _ = load_checkpoint(whole / "checkpoints" / "final")
    # 2 envs: two learning steps per loop step, of 2 gradient steps each: K = 4 batches of 16
    assert arrays["replay/priority/pending_td"].shape == (4 * 16,)
    assert len(np.unique(arrays["replay/priority/priorities"])) > 100  # learned, not all max
    summary = json.loads((whole / "summary.json").read_text())
    learning = summary["learning"]  # the last values logged, which the report shows
    # logged at the last step, 3,000 of beta's 6,000: 0.4 + (3000 / 6000) * (1 - 0.4)
    assert learning["replay/beta"] == pytest.approx(0.7) and learning["replay/priority_max"] >= 1.0
    assert ("train/noise_sigma" in learning) == settings["noisy"]
    page = render_page("run", settings, summary, b"", None, "")
    assert "largest priority so far" in page and ("noisy layers" in page) == settings["noisy"]
    copy = rewound_copy(whole, tmp_path / "resumed", which=1)
    resume(copy, show_progress=False, tensorboard=False)
    assert_same_run(whole, copy)
