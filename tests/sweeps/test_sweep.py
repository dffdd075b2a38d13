"""``deepq sweep`` end to end with local processes: each trial is the ``deepq train`` run of its
config and seed, a failing trial is recorded while the sweep goes on, Ctrl-C keeps the finished
trials and ``--resume`` runs only the missing ones, and bad input exits 2 before any trial."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from deepq.dqn.config import DQNConfig
from deepq.errors import UsageError

TESTS = Path(__file__).resolve().parents[1]  # conftest.py registers the tiny test envs
SHORT = ["--set", "total_steps=1000", "--set", "learning_starts=200", "--set", "eval_every=500",
         "--set", "eval_episodes=2", "--set", "final_eval_episodes=0"]  # fmt: skip


def deepq(*args, cwd, check=True, **popen):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "deepq", *map(str, args)]
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, text=True, **popen)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def progress_without_clock(run_dir):
    lines = (Path(run_dir) / "progress.csv").read_text().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines]  # wall_s is the last column


def eval_curve(run_dir):
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return [(e["env_steps"], e["mean"], e["std"]) for e in summary["eval_history"]]


@pytest.mark.slow
def test_a_sweeps_trials_are_the_deepq_train_runs_of_their_configs(tmp_path):
    done = deepq("sweep", "--env", "CartPole-v1", "--seeds", "0-1", "--grid", "gamma=0.99,0.9",
                 *SHORT, "--parallel", "2", "--cpus-per-trial", "1", "--out", "sw", cwd=tmp_path)  # fmt: skip
    sweep = tmp_path / "sw"
    trials = sorted(p.name for p in (sweep / "trials").iterdir())
    assert trials == ["c00-gamma=0.99-seed0", "c00-gamma=0.99-seed1",
                      "c01-gamma=0.9-seed0", "c01-gamma=0.9-seed1"]  # fmt: skip
    deepq("train", "--env", "CartPole-v1", "--seed", "1", "--set", "gamma=0.9", *SHORT,
          "--no-progress", "--no-report", "--run-dir", "alone", cwd=tmp_path)  # fmt: skip
    trial = sweep / "trials" / "c01-gamma=0.9-seed1"
    assert progress_without_clock(trial) == progress_without_clock(tmp_path / "alone")
    assert eval_curve(trial) == eval_curve(tmp_path / "alone")
    assert sorted(p.name for p in (trial / "checkpoints").iterdir()) == ["best"]  # the default
    results = json.loads((sweep / "results.json").read_text())
    assert [row["label"] for row in results["configs"]] == ["gamma=0.99", "gamma=0.9"]
    assert results["finished"] == results["trials"] == 4
    assert all(row["seeds"] == 2 and row["failed"] == [] for row in results["configs"])
    assert (sweep / "sweep.png").stat().st_size > 10_000
    assert "| gamma=0.9 |" in (sweep / "results.md").read_text()
    assert "[4/4]" in done.stdout


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    done = deepq("sweep", "--env-module", "conftest", "--seeds", "0", "--grid",
                 "env_id=deepq-test/NaNReward-v0,deepq-test/Counting-v0", "--set", "batch_size=4",
                 "--set", "learning_starts=8", "--set", "total_steps=40", "--set", "eval_every=20",
                 "--set", "final_eval_episodes=0", "--out", "sw", cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    results = json.loads((tmp_path / "sw" / "results.json").read_text())
    broken, fine = results["configs"]
    assert broken["seeds"] == 0 and len(broken["failed"]) == 1
    assert "non-finite" in broken["failed"][0]["error"] or "NaN" in broken["failed"][0]["error"]
    assert fine["seeds"] == 1 and fine["failed"] == []
    assert "failed:" in done.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_resume_runs_only_the_missing_ones(tmp_path):
    sweep = tmp_path / "sw"
    running = deepq("sweep", "--env", "CartPole-v1", "--seeds", "0-2", *SHORT, "--parallel", "1",
                    "--out", sweep, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first = sweep / "records" / "c00-base-seed0.json"
    deadline = time.monotonic() + 300
    while not first.exists() and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.2)
    assert first.exists(), running.communicate()
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130
    assert f"continue with: deepq sweep --resume {sweep}" in stderr
    finished = sorted(p.name for p in (sweep / "records").iterdir())
    assert "c00-base-seed0.json" in finished and len(finished) < 3
    kept = (sweep / "trials" / "c00-base-seed0" / "progress.csv").stat().st_mtime_ns

    refused = deepq("sweep", "--resume", sweep, "--seeds", "4", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "drop --seeds" in refused.stderr
    resumed = deepq("sweep", "--resume", sweep, cwd=tmp_path)
    ran = [line for line in resumed.stdout.splitlines() if line.startswith("[")]
    assert len(ran) == 3 - len(finished)  # only the missing trials
    assert (sweep / "trials" / "c00-base-seed0" / "progress.csv").stat().st_mtime_ns == kept
    assert json.loads((sweep / "results.json").read_text())["finished"] == 3
    assert not (sweep / ".staging").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "learning_rate"], "must look like key=value1,value2"),
        (["--grid", "learning_rat=1,2"], "unknown config key 'learning_rat'"),
        (["--random", "gamma=0.9:0.99"], "--random needs --samples"),
        (["--set", "batch_size=0"], "batch_size=0 must be in [1, 65536]"),
        (["--grid", "batch_size=32,100000"], "batch_size=100000"),
        (["--seeds", "3-1"], "--seeds '3-1'"),
        (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
        (["--checkpoints", "some"], "invalid choice"),
        (["--retry-failed"], "--retry-failed goes with --resume"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial 0 must be >= 1"),
        (["--parallel", "0"], "--parallel 0 must be >= 1"),
    ],
)
def test_bad_input_exits_2_before_any_trial(tmp_path, args, message):
    done = deepq("sweep", *args, "--out", "sw", cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "sw").exists()


def test_resume_needs_a_sweep_directory(tmp_path):
    done = deepq("sweep", "--resume", tmp_path, cwd=tmp_path, check=False)
    assert done.returncode == 2 and "is not a sweep directory" in done.stderr


@pytest.mark.slow
def test_the_python_api_returns_the_results_table(tmp_path):
    import deepq

    base = {"env_id": "CartPole-v1", "total_steps": 600, "learning_starts": 200,
            "eval_every": 300, "eval_episodes": 2, "final_eval_episodes": 0}  # fmt: skip
    results = deepq.sweep({"plain": base, "double": {**base, "double": True}}, seeds=[3],
                          out=tmp_path / "sw", parallel=2, cpus_per_trial=1)  # fmt: skip
    assert [row["label"] for row in results["configs"]] == ["plain", "double"]
    assert all(row["seeds"] == 1 and row["best_mean"]["ci95"] is None for row in results["configs"])
    assert (tmp_path / "sw" / "trials" / "c01-double-seed3" / "summary.json").is_file()
    with pytest.raises(deepq.ConfigError, match="one deepq algorithm"):
        deepq.sweep([base, deepq.ReinforceConfig()], seeds=[0], out=tmp_path / "mixed")


def test_a_plan_names_every_trial_once_and_tells_alike_labels_apart():
    from deepq.run.files import UnreadableFile
    from deepq.sweeps.sweep import SweepConfig, SweepPlan

    alike = [
        SweepConfig("gamma=0.99", {}),
        SweepConfig("gamma=0.99", {}),
        SweepConfig("gamma=0.9", {}),
    ]
    plan = SweepPlan("dqn", alike, [0, 1])
    assert [c.label for c in plan.configs] == [
        "gamma=0.99 (config 0)", "gamma=0.99 (config 1)", "gamma=0.9"]  # fmt: skip
    assert [t["name"] for t in plan.trials] == [
        "c00-gamma=0.99_config_0-seed0", "c00-gamma=0.99_config_0-seed1",
        "c01-gamma=0.99_config_1-seed0", "c01-gamma=0.99_config_1-seed1",
        "c02-gamma=0.9-seed0", "c02-gamma=0.9-seed1",
    ]  # fmt: skip
    data = plan.to_dict()
    data["trials"][1]["name"] = data["trials"][0]["name"]
    path = Path(tempfile.mkdtemp()) / "sweep.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnreadableFile, match="a trial name appears twice"):
        SweepPlan.read(path)
    data["trials"][1]["name"] = "../../escape"
    path.write_text(json.dumps(data))
    with pytest.raises(UnreadableFile, match="trials.1.name: String should match pattern"):
        SweepPlan.read(path)


# A sweep directory from someone else ---------------------------------------------------------


def planted_sweep(root):
    """A stopped sweep as deepq writes it (one trial finished, one not), made by hand."""
    from deepq.run.files import write_json
    from deepq.sweeps.sweep import SweepConfig, SweepPlan

    values = {k: v for k, v in DQNConfig(env_id="CartPole-v1").to_dict().items() if k != "seed"}
    plan = SweepPlan("dqn", [SweepConfig("base", values)], [0, 1])
    sweep = root / "sw"
    for folder in ("records", "trials/c00-base-seed0", ".staging"):
        (sweep / folder).mkdir(parents=True)
    write_json(sweep / "sweep.json", plan.to_dict())
    write_json(sweep / "records" / "c00-base-seed0.json", dict(RECORD))
    return sweep


RECORD = {"name": "c00-base-seed0", "config": 0, "seed": 0, "node": "here", "wall_s": 1.5,
          "status": "ok", "scores": {"solved": False, "steps_to_solve": None,
          "time_to_solve_s": None, "best_mean": 20.0, "final_mean": 20.0, "env_steps": 1000,
          "train_wall_s": 1.0, "curve": [[500, 10.0], [1000, 20.0]]}}  # fmt: skip


@pytest.mark.parametrize(
    "link",
    [".staging", "trials", "trials/c00-base-seed0", "results.md", "records/c00-base-seed1.json",
     "trials/c00-base-seed0/progress.csv", "sweep.json"],
)  # fmt: skip
def test_resume_refuses_a_sweep_directory_with_a_symlink_anywhere(tmp_path, capsys, link):
    """A link would let the resumed sweep remove (.staging, trials: a trial's name under them)
    or overwrite (results.md: ~/.ssh/authorized_keys) anything of yours."""
    from deepq.cli import main

    sweep = planted_sweep(tmp_path)
    victim = tmp_path / "victim"
    (victim / "c00-base-seed1").mkdir(parents=True)
    (victim / "c00-base-seed1" / "precious").write_text("keep me\n")
    place = sweep / link
    if place.is_dir():
        shutil.rmtree(place)
    place.unlink(missing_ok=True)
    place.symlink_to(victim if link in (".staging", "trials", "trials/c00-base-seed0") else
                     victim / "c00-base-seed1" / "precious")  # fmt: skip
    assert main(["sweep", "--resume", str(sweep)]) == 1
    out, err = capsys.readouterr()
    assert f"{place} is a symlink" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in victim.rglob("*")) == ["c00-base-seed1", "precious"]
    assert (victim / "c00-base-seed1" / "precious").read_text() == "keep me\n"
    assert out == ""  # no trial ran


@pytest.mark.parametrize(
    ("member", "edit", "message"),
    [
        ("sweep.json", {"algo": "evil"}, "algo: Input should be"),
        ("sweep.json", {"algo": ["dqn"]}, "algo: Input should be"),
        ("sweep.json", {"configs": [{"label": "x" * 5_000_000, "values": {}}]}, "configs.0.label"),
        ("sweep.json", {"configs": [{"label": "a\nb", "values": {}}]}, "not printable"),
        ("sweep.json", {"seeds": [0, 2**40]}, "seeds.1: Input should be less than or equal"),
        ("sweep.json", {"trials": [{"name": "../../x", "config": 0, "seed": 0}]}, "trials.0.name"),
        ("sweep.json", {"version": 2}, "version: Input should be 1"),
        ("record", {"scores": None}, "a finished trial has scores"),
        ("record", {"status": {"ok": 1}}, "status: Input should be"),
        ("record", {"scores": dict(RECORD["scores"], best_mean=float("nan"))}, "finite number"),
        ("record", {"scores": dict(RECORD["scores"], curve="garbage")}, "scores.curve"),
        ("record", {"seed": 1}, "is the record of another trial"),
        ("record", {"wall_s": -1}, "wall_s: Input should be greater than or equal to 0"),
    ],
)  # fmt: skip
def test_a_tampered_sweep_file_is_one_line_and_exit_1(tmp_path, capsys, member, edit, message):
    from deepq.cli import main

    sweep = planted_sweep(tmp_path)
    path = sweep / ("sweep.json" if member == "sweep.json" else "records/c00-base-seed0.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    assert main(["sweep", "--resume", str(sweep)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (sweep / "trials" / "c00-base-seed1").exists()


def test_labels_are_escaped_in_results_and_drawn_as_written(tmp_path):
    from deepq.sweeps.sweep import SweepConfig, SweepPlan, SweepResults

    label = r"lr=$\frac$ | <b>[x](y)</b> _z"
    plan = SweepPlan("dqn", [SweepConfig(label, {})], [0])
    record = dict(RECORD, name=plan.trials[0]["name"])
    SweepResults(plan, {record["name"]: record}).write(tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert r"| lr=\$\\frac\$ \| \<b\>\[x\](y)\</b\> _z |" in table
    assert (tmp_path / "sweep.png").stat().st_size > 10_000  # mathtext would have raised
    for bad in ("", "x" * 201, "tab\there"):
        with pytest.raises(UsageError, match="label"):
            SweepPlan("dqn", [SweepConfig(bad, {})], [0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0-9999999", "--dry-run"], "names 10,000,000 seeds; a sweep takes at most 10,000"),
        (["--seeds", "4294967296", "--dry-run"], "must name seeds in [0, 2147483647]"),
        (["--random", "gamma=0.9:0.99", "--samples", "1000000000", "--dry-run"], "a sweep takes at most"),
        (["--random", "learning_rate=1e-4:1e400", "--samples", "2"], "must be finite numbers"),
        (["--seeds", "0-999", "--grid", "gamma=0.9,0.91,0.92,0.93,0.94,0.95,0.96,0.97,0.98,0.99",
          "--grid", "batch_size=16,32,64,128,256,512,1024,2048,4096,8192", "--grid",
          "learning_starts=10000,10001,10002", "--dry-run"], "300 configs x 1,000 seeds = 300,000 trials"),
        (["--address", "127.0.0.1:99999"], "must be HOST:PORT"),
        (["--address", ""], "must be HOST:PORT"),
        (["--address", "127.0.0.1:abc"], "must be HOST:PORT"),
        (["--address", "ray://127.0.0.1:10001"], "Ray Client addresses (ray://) are not supported"),
    ],
)  # fmt: skip
def test_oversized_plans_and_bad_addresses_exit_2_in_one_line(tmp_path, capsys, args, message):
    """(--dry-run where it stops before the executor: a plan that slipped through prints.)"""
    from deepq.cli import main

    assert main(["sweep", "--env", "CartPole-v1", *args, "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "sw").exists()


def test_an_address_where_no_ray_cluster_answers_is_one_line_and_makes_nothing(tmp_path, capsys):
    import socket

    from deepq.cli import main
    from deepq.sweeps.ray_executor import ClusterUnreachable, check_cluster

    pytest.importorskip("ray")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: the connection is refused
        args = ["sweep", "--env", "CartPole-v1", "--address", f"127.0.0.1:{port}"]
        assert main([*args, "--out", str(tmp_path / "sw")]) == 1
    err = capsys.readouterr().err
    assert f"no Ray cluster at 127.0.0.1:{port}: Connection refused" in err, err
    assert not (tmp_path / "sw").exists()
    with socket.socket() as silent:  # listens, and never speaks Ray's protocol
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ClusterUnreachable, match="no Ray cluster connected there within 3 s"):
            check_cluster(address, cpus_per_trial=1, timeout_s=3)
