"""The benchmark's bookkeeping: seeds, per-seed scoring, medians and the SB3/deepq ratio."""

import json

import pytest

from deepq.bench import markdown, parse_seeds, run_bench, score, summarise
from deepq.errors import UsageError
from deepq.sweeps.executors import TrialOutcome


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0-9", list(range(10))),
        ("3,7,11", [3, 7, 11]),
        ("0-2,5", [0, 1, 2, 5]),
        ("4", [4]),
        ("1,1,2", [1, 2]),
    ],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "5-2", "-1", "1-x"])
def test_bad_seeds(text):
    with pytest.raises(UsageError, match="--seeds"):
        parse_seeds(text)


def raw(means, wall_per_eval=10.0, every=5000):
    evals = [
        {
            "env_steps": every * (i + 1),
            "train_wall_s": wall_per_eval * (i + 1),
            "mean": m,
            "std": 1.0,
        }
        for i, m in enumerate(means)
    ]
    return {
        "train_wall_s": wall_per_eval * len(means),
        "env_steps": every * len(means),
        "evals": evals,
        "peak_rss_mib": 500.0,
    }


def test_score_takes_the_first_evaluation_at_or_above_200():
    row = score("deepq", 0, raw([-100.0, 150.0, 200.0, 260.0, 210.0]))
    assert (row["solved"], row["steps_to_solve"], row["time_to_solve_s"]) == (True, 15000, 30.0)
    assert (row["best_mean"], row["final_mean"], row["steps_per_s"]) == (260.0, 210.0, 500.0)
    unsolved = score("sb3", 0, raw([-100.0, 199.9]))
    assert (unsolved["solved"], unsolved["steps_to_solve"], unsolved["time_to_solve_s"]) == (
        False,
        None,
        None,
    )


def test_unsolved_seeds_count_as_their_whole_budget_in_the_medians():
    rows = [
        score("deepq", 0, raw([250.0], wall_per_eval=4.0)),  # solved at 4 s, 5k steps
        score("deepq", 1, raw([100.0, 220.0], wall_per_eval=4.0)),  # solved at 8 s, 10k steps
        score("deepq", 2, raw([0.0, 0.0, 0.0], wall_per_eval=4.0)),  # unsolved: 12 s, 15k steps
        score("sb3", 0, raw([0.0] * 4 + [201.0], wall_per_eval=40.0)),  # solved at 200 s
        score("sb3", 1, raw([0.0] * 6, wall_per_eval=40.0)),  # unsolved: 240 s
        score("sb3", 2, raw([0.0] * 3 + [205.0], wall_per_eval=40.0)),  # solved at 160 s
    ]
    summary = summarise(rows)
    assert summary["deepq"]["solved"] == 2 and summary["sb3"]["solved"] == 2
    assert summary["deepq"]["median_time_to_solve_s"] == 8.0
    assert summary["deepq"]["median_steps_to_solve"] == 10000
    assert summary["sb3"]["median_time_to_solve_s"] == 200.0
    assert summary["ratio_sb3_over_deepq_time_to_solve"] == 25.0
    table = markdown(
        rows,
        summary,
        {"budget_steps": 30000, "eval_every": 5000, "eval_episodes": 100, "machine": "x"},
    )
    assert "| deepq | 2/3 | 8.0 | 10,000 |" in table and "**25.0×**" in table


def test_the_ratio_compares_only_the_seeds_both_systems_ran():
    rows = [
        score("deepq", 0, raw([250.0], wall_per_eval=4.0)),  # 4 s
        score("deepq", 1, raw([0.0, 250.0], wall_per_eval=4.0)),  # 8 s
        score("deepq", 2, raw([0.0] * 4 + [250.0], wall_per_eval=4.0)),  # 20 s
        score("deepq", 3, raw([0.0] * 5 + [250.0], wall_per_eval=4.0)),  # 24 s
        score("sb3", 0, raw([0.0] * 4 + [201.0], wall_per_eval=40.0)),  # 200 s
        score("sb3", 1, raw([0.0] * 3 + [201.0], wall_per_eval=40.0)),  # 160 s
    ]
    summary = summarise(rows)
    # Over all its seeds deepq's median is 14 s; over seeds 0 and 1, which SB3 also ran, 6 s.
    assert summary["deepq"]["median_time_to_solve_s"] == 14.0
    assert summary["ratio_sb3_over_deepq_time_to_solve"] == 30.0  # 180 s / 6 s
    assert summary["ratio_sb3_over_deepq_seeds"] == [0, 1]
    table = markdown(
        rows,
        summary,
        {"budget_steps": 30000, "eval_every": 5000, "eval_episodes": 100, "machine": "x"},
    )
    assert "**30.0×** (over the seeds both ran: [0, 1])" in table
    deepq_only = summarise([r for r in rows if r["system"] == "deepq"])
    assert not any(key.startswith("ratio") for key in deepq_only)


class FakeExecutor:
    """Runs no process: each task's raw.json is written as a worker would, but seed 1 fails."""

    description = "fake"

    def __init__(self):
        self.tasks = []

    def run(self, tasks, staging):
        for task in tasks:
            self.tasks.append(task)
            program = list(task.program)
            system, seed = (
                program[program.index("--worker") + 1],
                int(program[program.index("--seed") + 1]),
            )
            if seed == 1:
                yield TrialOutcome(task.name, 1, "RuntimeError: out of memory", "here", 1.0, None)
                continue
            out = staging / task.name
            out.mkdir()
            wall = 4.0 if system == "deepq" else 40.0
            (out / "raw.json").write_text(json.dumps(raw([250.0], wall_per_eval=wall)))
            yield TrialOutcome(task.name, 0, None, "here", 1.0, out)


def test_a_failing_bench_run_is_reported_and_the_others_still_count(tmp_path):
    executor = FakeExecutor()
    with pytest.raises(
        UsageError,
        match="2 of 6 bench runs failed; first: bench worker deepq seed 1 failed: RuntimeError",
    ):
        run_bench([0, 1, 2], 5000, ["deepq", "sb3"], 5000, 10, tmp_path, executor)
    assert [t.name for t in executor.tasks] == ["deepq-0", "sb3-0", "deepq-1", "sb3-1",
                                                "deepq-2", "sb3-2"]  # fmt: skip
    assert all(t.cpus is None for t in executor.tasks)  # one at a time: the whole machine
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["system"], r["seed"]) for r in saved["runs"]] == [
        ("deepq", 0), ("sb3", 0), ("deepq", 2), ("sb3", 2)]  # fmt: skip
    assert saved["summary"]["ratio_sb3_over_deepq_time_to_solve"] == 10.0
    assert "**10.0×**" in (tmp_path / "results.md").read_text()


def test_deepq_worker_runs_end_to_end(tmp_path):
    result = run_bench([0], 2000, ["deepq"], 1000, 2, tmp_path)
    [row] = result["runs"]
    assert row["system"] == "deepq" and row["env_steps"] == 2000
    assert [e["env_steps"] for e in row["evals"]] == [1000, 2000]
    assert row["peak_rss_mib"] > 50
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["deepq"]["seeds"] == 1
    assert (
        (tmp_path / "results.md").read_text().startswith("LunarLander-v3, budget 2,000 env steps")
    )


def test_bench_parallel_must_be_positive(capsys):
    from deepq.cli import main

    assert main(["bench", "--systems", "deepq", "--parallel", "0", "--out", "unused"]) == 2
    assert "--parallel 0 must be >= 1" in capsys.readouterr().err
