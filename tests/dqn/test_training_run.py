"""What a training run keeps: the best checkpoint, budgets, the solved criterion, summaries."""

import json

import gymnasium as gym
import numpy as np
import pytest
from conftest import CountingEnv

from deepq.api import load
from deepq.dqn.loop import train
from deepq.run.checkpoint import load_checkpoint
from deepq.run.evaluation import SELECTION_EVAL_SEED, TEST_EVAL_SEED

QUICK = {
    "env_id": "CartPole-v1",
    "hidden_sizes": [16],
    "batch_size": 32,
    "learning_starts": 100,
    "final_eval_episodes": 2,
    "eval_episodes": 2,
}


def run(tmp_path, **overrides):
    return train({**QUICK, **overrides}, tmp_path / "run", show_progress=False, tensorboard=False)


def test_best_checkpoint_is_the_best_evaluation_even_when_the_last_eval_is_at_the_end(tmp_path):
    result = run(tmp_path, total_steps=1000, eval_every=500)
    history = result.summary["eval_history"]
    assert [e["env_steps"] for e in history] == [500, 1000]  # no extra evaluation at the end
    rows = (tmp_path / "run" / "progress.csv").read_text().splitlines()[1:]
    episodes_by_500 = sum(int(row.split(",")[1]) <= 500 for row in rows)
    assert history[0]["episodes"] == episodes_by_500 and history[0]["eval_episodes"] == 2
    best = load(tmp_path / "run")
    assert (
        best.info["eval_mean"]
        == max(e["mean"] for e in history)
        == result.summary["best_eval_mean"]
    )


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        ({"total_steps": 700}, "total_steps"),
        ({"total_steps": None, "max_episodes": 5, "epsilon_schedule": "constant"}, "max_episodes"),
    ],
)
def test_budgets_end_the_run(tmp_path, budget, reason):
    result = run(tmp_path, eval_every=None, **budget)
    assert result.summary["stop_reason"] == reason
    if reason == "total_steps":
        assert result.summary["env_steps"] == 700
    else:
        assert result.summary["episodes"] == 5


def test_time_budget_ends_the_run(tmp_path):
    # Bounded by what the run did, not by how long this machine took: it stopped for the time
    # budget, after at least 1.5 s of training, long before its step budget.
    result = run(tmp_path, total_steps=10**7, time_budget_s=1.5, eval_every=None)
    assert result.summary["stop_reason"] == "time_budget"
    assert result.summary["train_wall_s"] >= 1.5
    assert 0 < result.summary["env_steps"] < 10**7


def test_solved_criterion_uses_the_last_window_of_training_returns(tmp_path):
    # CartPole returns are >= 8, so a threshold of 1 is met as soon as the window is full.
    result = run(
        tmp_path, total_steps=5000, solved_threshold=1.0, solved_window=3, stop_when_solved=True
    )
    summary = result.summary
    assert summary["solved"] and summary["stop_reason"] == "solved"
    assert summary["solved_at_episode"] == 3 == summary["episodes"]
    rows = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    assert summary["solved_at_step"] == int(rows[-1].split(",")[1])
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["solved_at_episode"] == 3 and saved["final_eval"]["episodes"] == 2


TINY = {
    "env_id": "deepq-test/Counting-v0",  # 3-step episodes (conftest)
    "hidden_sizes": [8],
    "batch_size": 8,
    "learning_starts": 20,
    "buffer_size": 1000,
    "total_steps": 100,
    "eval_every": None,
    "final_eval_episodes": 0,
    "checkpoint_every_episodes": None,
    "epsilon_schedule": "constant",
}


def tiny_run(tmp_path, **overrides):
    return train({**TINY, **overrides}, tmp_path / "run", show_progress=False, tensorboard=False)


@pytest.mark.parametrize(("gradient_steps", "expected"), [(1, 21), (3, 63)])
def test_gradient_steps_per_learning_step(tmp_path, gradient_steps, expected):
    # One env, train_every 4 from learning_starts 20 to total_steps 100: learning steps at env
    # steps 20, 24, ..., 100 = 21 of them, each of gradient_steps gradient steps.
    result = tiny_run(tmp_path, train_every=4, gradient_steps=gradient_steps)
    assert result.summary["grad_steps"] == expected


@pytest.mark.parametrize(("gradient_steps", "expected"), [(1, 12), (3, 36)])
def test_learning_once_every_n_episodes(tmp_path, gradient_steps, expected):
    # 3-step episodes end at env steps 3, 6, ..., 99: 33 of them by step 100. Learning every 2nd
    # episode from the 10th on: after episodes 10, 12, ..., 32 = 12 learning steps; the env-step
    # schedule (train_every=1, which would give 81) does not run.
    result = tiny_run(
        tmp_path, train_every=1, train_every_episodes=2, learning_starts_episodes=10,
        gradient_steps=gradient_steps,
    )  # fmt: skip
    assert result.summary["grad_steps"] == expected


@pytest.mark.parametrize(("keep", "kept"), [(None, []), (0, [30, 60, 90]), (1, [90])])
def test_periodic_copies_kept(tmp_path, keep, kept):
    # 3-step episodes, a checkpoint every 10 episodes: at env steps 30, 60 and 90.
    tiny_run(tmp_path, checkpoint_every_episodes=10, keep_checkpoints=keep)
    copies = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert copies == [f"step-{step:012d}" for step in kept]


def latest_networks(run_dir):
    arrays, _ = load_checkpoint(run_dir / "checkpoints" / "latest")
    online = {k.removeprefix("params"): v for k, v in arrays.items() if k.startswith("params")}
    target = {
        k.removeprefix("target_params"): v for k, v in arrays.items() if k.startswith("target_")
    }
    assert online.keys() == target.keys() and online
    return online, target


@pytest.mark.parametrize(("every", "synced"), [(50, True), (1000, False)])
def test_hard_target_copy_every_n_env_steps_fires_in_the_loop(tmp_path, every, synced):
    # Learning runs every step up to step 100. At step 100 the update comes first, then the copy
    # due every 50 steps, then the run ends: the saved target equals the online network exactly.
    # A copy due only every 1000 steps never fires: the target is still the initial network.
    tiny_run(tmp_path, train_every=1, target_update="hard", target_update_every=every)
    online, target = latest_networks(tmp_path / "run")
    same = all(np.array_equal(online[k], target[k]) for k in online)
    assert same == synced


class SeedLoggingEnv(CountingEnv):
    """CountingEnv that records every reset seed, so a test sees which episodes were played."""

    seeds: list[int] = []

    def reset(self, *, seed=None, options=None):
        SeedLoggingEnv.seeds.append(seed)
        return super().reset(seed=seed, options=options)


if "deepq-test/SeedLogging-v0" not in gym.registry:
    gym.register("deepq-test/SeedLogging-v0", entry_point=SeedLoggingEnv, max_episode_steps=100)


def test_periodic_evaluations_use_the_selection_seeds_and_the_final_one_the_test_seeds(tmp_path):
    SeedLoggingEnv.seeds.clear()
    tiny_run(tmp_path, env_id="deepq-test/SeedLogging-v0", eval_every=50, eval_episodes=3,
             final_eval_episodes=2)  # fmt: skip
    evaluation_seeds = sorted(s for s in SeedLoggingEnv.seeds if s is not None and s >= 2**32)
    selection = [SELECTION_EVAL_SEED + k for k in range(3)]
    test = [TEST_EVAL_SEED + k for k in range(2)]
    assert evaluation_seeds == sorted(selection * 2 + test)  # evaluations at steps 50 and 100
    assert not set(selection) & set(test)


@pytest.mark.parametrize(
    ("bar", "threshold", "best_episodes", "reason", "played"),
    [
        (6.0, None, None, "eval_mean", [5]),  # reaches the bar: extended, still 6, stops the run
        (7.0, None, None, "total_steps", [3, 3]),  # never reaches it: never extended
        (7.0, 6.0, None, "total_steps", [5, 3]),  # the first best at the threshold is extended;
        # a tie with it is not a new best and is not
        (None, None, 4, "total_steps", [4, 3]),  # a would-be best is extended; a tie is not
        (None, None, 3, "total_steps", [3, 3]),  # not above eval_episodes: nothing to add
        (6.0, None, 4, "eval_mean", [5]),  # both rules: the larger count
        (6.0, None, 7, "eval_mean", [7]),
    ],
)
def test_evaluations_that_would_stop_the_run_or_become_best_are_extended(
    tmp_path, bar, threshold, best_episodes, reason, played
):
    # Every Counting episode returns 1 + 2 + 3 = 6; evaluations (3 episodes) at steps 50 and
    # 100; an extended one plays more, on the next selection seeds.
    SeedLoggingEnv.seeds.clear()
    result = tiny_run(tmp_path, env_id="deepq-test/SeedLogging-v0", eval_every=50, eval_episodes=3,
                      stop_eval_mean=bar, stop_eval_episodes=5, solved_threshold=threshold,
                      best_eval_episodes=best_episodes)  # fmt: skip
    summary = result.summary
    assert summary["stop_reason"] == reason and summary["env_steps"] == 50 * len(played)
    history = summary["eval_history"]
    assert [e["eval_episodes"] for e in history] == played
    assert all(e["mean"] == 6.0 for e in history)
    evaluation_seeds = sorted(s for s in SeedLoggingEnv.seeds if s is not None and s >= 2**32)
    assert evaluation_seeds == sorted(SELECTION_EVAL_SEED + k for n in played for k in range(n))
    assert load(tmp_path / "run").info["eval_mean"] == 6.0


def test_eval_epsilon_reaches_every_evaluation_and_is_recorded(tmp_path):
    result = tiny_run(tmp_path, eval_every=50, eval_episodes=2, final_eval_episodes=2,
                      eval_epsilon=1.0)  # fmt: skip
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert [e["epsilon"] for e in summary["eval_history"]] == [1.0, 1.0]
    assert summary["final_eval"]["epsilon"] == 1.0
    greedy = tiny_run(tmp_path / "greedy", eval_every=50, eval_episodes=2, final_eval_episodes=2)
    greedy_summary = json.loads((greedy.run_dir / "summary.json").read_text())
    assert greedy_summary["final_eval"]["epsilon"] == 0.0
