"""Same seed, same run; an interrupted run resumed equals the uninterrupted one, bit for bit."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import interrupt_after_episodes, run_deepq

from deepq.run.checkpoint import load_checkpoint

# LunarLander, so that resuming must rebuild Box2D worlds mid-episode; n-step and two envs, so
# that pending n-step entries and several unfinished episodes must be restored too (n-step
# returns need plain DQN targets; Munchausen's hold no state of their own to restore).
SETTINGS = {
    "num_envs": 2,
    "munchausen": "false",
    "n_step": 3,
    "total_steps": 24000,
    "hidden_sizes": "16",
    "batch_size": 32,
    "learning_starts": 500,
    "train_every": 2,
    "epsilon_decay_steps": 5000,
    "eval_every": 8000,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "checkpoint_every_episodes": 100000,
}


def deepq_train(run_dir, seed=0, wait=True, extra=()):
    args = [
        sys.executable,
        "-m",
        "deepq",
        "train",
        "--run-dir",
        str(run_dir),
        "--seed",
        str(seed),
        "--no-progress",
    ]
    for key, value in SETTINGS.items():
        args += ["--set", f"{key}={value}"]
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [*args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    if wait:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    return process


def progress_rows(run_dir):
    """progress.csv without the wall-clock column."""
    with open(run_dir / "progress.csv") as handle:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(handle)]


def assert_same_run(a, b):
    arrays_a, meta_a = load_checkpoint(a / "checkpoints" / "final")
    arrays_b, meta_b = load_checkpoint(b / "checkpoints" / "final")
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:  # parameters, target, optimiser state, replay, env action logs
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert meta_a["rng"] == meta_b["rng"]
    progress_a, progress_b = meta_a["progress"], meta_b["progress"]
    for run in (progress_a, progress_b):
        run.pop("train_seconds")
        for entry in run["eval_history"]:
            entry.pop("train_wall_s")
    assert progress_a == progress_b
    assert progress_rows(a) == progress_rows(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    deepq_train(run_dir)
    return run_dir


def test_a_shorter_run_continued_to_the_total_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    """The same seed in another process, run to 16,000 steps and finished (a periodic evaluation
    falls on its end, so it evaluates no more than the longer run), then continued with
    ``--total-steps`` to 24,000: the very run that went there at once."""
    run_dir = tmp_path / "continued"
    deepq_train(run_dir, extra=("--set", "total_steps=16000"))
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 16000
    continued = run_deepq("train", "--resume", str(run_dir), "--total-steps", "24000",
                          "--no-progress", "--no-report", timeout=600)  # fmt: skip
    assert continued.returncode == 0, continued.stderr
    assert_same_run(uninterrupted, run_dir)
    assert json.loads((run_dir / "config.json").read_text())["total_steps"] == 24000
    ended_before = run_dir / "checkpoints" / "end-000000016000"
    assert load_checkpoint(ended_before)[1]["progress"]["env_steps"] == 16000
    assert f"the run's end at env step 16000 is kept in {ended_before}" in continued.stdout


def test_total_steps_refuses_what_cannot_continue_exactly(uninterrupted, tmp_path):
    """Each refusal is one line and exit 2, and leaves the run as it was."""
    before = (uninterrupted / "config.json").read_text()
    too_few = run_deepq("train", "--resume", str(uninterrupted), "--total-steps", "24000")
    assert too_few.returncode == 2
    assert too_few.stderr == (
        "deepq train: error: --total-steps 24000 must exceed the 24000 env steps the run has already taken\n"
    )
    new_run = run_deepq("train", "--env", "CartPole-v1", "--total-steps", "500")
    assert new_run.returncode == 2 and "--set total_steps=N" in new_run.stderr
    # epsilon decays over a fraction of total_steps: a new total would bend it midway
    stretched = tmp_path / "stretched"
    made = run_deepq("train", "--env", "CartPole-v1", "--run-dir", str(stretched), "--no-progress",
                     "--no-report", "--set", "total_steps=300", "--set", "hidden_sizes=8",
                     "--set", "epsilon_decay_steps=null", "--set", "eval_every=null",
                     "--set", "final_eval_episodes=0")  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = run_deepq("train", "--resume", str(stretched), "--total-steps", "600")
    assert refused.returncode == 2
    assert "epsilon's decay (over epsilon_fraction of total_steps)" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert (stretched / "checkpoints" / "final").is_dir()
    assert (uninterrupted / "config.json").read_text() == before


def test_another_seed_gives_another_run(uninterrupted, tmp_path):
    other = tmp_path / "other"
    deepq_train(other, seed=1)
    a = load_checkpoint(uninterrupted / "checkpoints" / "final")[0]
    b = load_checkpoint(other / "checkpoints" / "final")[0]
    assert not np.array_equal(a["replay/obs"], b["replay/obs"])
    assert not np.array_equal(
        a["params['params']['hidden_0']['kernel']"], b["params['params']['hidden_0']['kernel']"]
    )


def test_sigint_mid_run_then_resume_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    run_dir = tmp_path / "interrupted"
    process = deepq_train(run_dir, wait=False)
    stderr = interrupt_after_episodes(process, run_dir, 29, timeout=300)
    assert process.returncode == 130, stderr
    assert f"resume with: deepq train --resume {run_dir}" in stderr
    arrays, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert 0 < meta["progress"]["env_steps"] < SETTINGS["total_steps"]
    assert (
        arrays["envs/episode_length"].max() > 0
    )  # stopped mid-episode: the replay path is exercised

    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    resumed = subprocess.run(
        [sys.executable, "-m", "deepq", "train", "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(uninterrupted, run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["stop_reason"] == "total_steps"

    again = subprocess.run(
        [sys.executable, "-m", "deepq", "train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.returncode == 2 and "already finished" in again.stderr


def test_a_continued_run_keeps_its_earlier_end_apart_from_the_periodic_copies(tmp_path):
    """The end a finished run had reached is kept as end-<steps>, beside a periodic copy of the
    same step, and no pruning of periodic copies (keep the newest 1 here) removes it."""
    run_dir = tmp_path / "run"
    made = run_deepq("train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--no-progress",
                     "--no-report", "--set", "total_steps=300", "--set", "hidden_sizes=8",
                     "--set", "epsilon_decay_steps=200", "--set", "eval_every=null",
                     "--set", "final_eval_episodes=0", "--set", "checkpoint_every_episodes=1",
                     "--set", "keep_checkpoints=1")  # fmt: skip
    assert made.returncode == 0, made.stderr
    checkpoints = run_dir / "checkpoints"
    continued = run_deepq("train", "--resume", str(run_dir), "--total-steps", "600",
                          "--no-progress", "--no-report")  # fmt: skip
    assert continued.returncode == 0, continued.stderr
    assert load_checkpoint(checkpoints / "end-000000000300")[1]["progress"]["env_steps"] == 300
    assert load_checkpoint(checkpoints / "final")[1]["progress"]["env_steps"] == 600
    periodic = sorted(p.name for p in checkpoints.glob("step-*"))
    assert len(periodic) == 1 and periodic[0] > "step-000000000300"
