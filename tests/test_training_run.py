"""What a training run keeps: the best checkpoint, budgets, the solved criterion, summaries."""

import json

import pytest

from deepq.api import load
from deepq.dqn.loop import train

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
    result = run(tmp_path, total_steps=10**7, time_budget_s=1.5, eval_every=None)
    assert result.summary["stop_reason"] == "time_budget"
    assert 1.5 <= result.summary["train_wall_s"] < 5.0


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
