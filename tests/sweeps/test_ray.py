"""``deepq sweep --address`` on a real Ray cluster: a head started here (``ray start --head`` in a
temp dir, on a free port, with a token of its own), stopped afterwards. Each trial equals the
trial the local executor runs (itself checked against ``deepq train`` in test_sweep.py), and a
Ray worker killed mid-trial costs a retry, not the sweep."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from test_sweep import SHORT, deepq, eval_curve, progress_without_clock  # noqa: E402

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster of 2 CPUs; yields its address. The token travels in the
    environment (RAY_AUTH_TOKEN), so the user's ~/.ray is never read or written."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield from _head()


def _head():
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Unix sockets need a short path
    head = subprocess.Popen(
        [RAY, "start", "--head", "--num-cpus", "2", "--port", str(port), "--temp-dir", temp,
         "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        assert head.poll() is None, head.stderr.read()
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # --block: stops every process the head started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def ray_trial_workers() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::_trial_on_a_node"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


@pytest.mark.slow
def test_trials_on_ray_equal_local_ones_and_survive_a_killed_worker(tmp_path, ray_head):
    args = ["--env", "CartPole-v1", "--seeds", "0-1", "--grid", "gamma=0.99,0.9", *SHORT,
            "--cpus-per-trial", "1"]  # fmt: skip
    on_ray = deepq("sweep", *args, "--address", ray_head, "--out", "ray", cwd=tmp_path,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline, killed = time.monotonic() + 300, None
    while killed is None and time.monotonic() < deadline and on_ray.poll() is None:
        workers = ray_trial_workers()
        if workers and (tmp_path / "ray" / "sweep.json").exists():
            time.sleep(2)  # mid-trial
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.2)
    stdout, stderr = on_ray.communicate(timeout=600)
    assert on_ray.returncode == 0, stderr
    assert killed is not None, "no Ray worker was seen running a trial"
    assert "the Ray cluster at 127.0.0.1" in stdout and "[4/4]" in stdout

    deepq("sweep", *args, "--parallel", "2", "--out", "local", cwd=tmp_path)
    for name in ("c00-gamma=0.99-seed0", "c00-gamma=0.99-seed1", "c01-gamma=0.9-seed0",
                 "c01-gamma=0.9-seed1"):  # fmt: skip
        remote, local = tmp_path / "ray" / "trials" / name, tmp_path / "local" / "trials" / name
        assert progress_without_clock(remote) == progress_without_clock(local), name
        assert eval_curve(remote) == eval_curve(local), name
    results = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert results["finished"] == 4 and all(not row["failed"] for row in results["configs"])
    # The killed worker's trial did not train on (only its children: other tests' sweeps may
    # be running beside this one).
    its_trial = rf"deepq\.sweeps\.worker .*--parent {killed} "
    leftover = subprocess.run(["pgrep", "-f", its_trial], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


@pytest.mark.slow
def test_the_bench_runs_its_pairs_on_ray(tmp_path, ray_head):
    done = deepq("bench", "--systems", "deepq", "--seeds", "0-1", "--budget-steps", "1000",
                 "--eval-every", "500", "--eval-episodes", "2", "--address", ray_head,
                 "--cpus-per-trial", "1", "--out", "bench", cwd=tmp_path)  # fmt: skip
    saved = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [(r["system"], r["seed"]) for r in saved["runs"]] == [("deepq", 0), ("deepq", 1)]
    assert all(len(r["evals"]) == 2 and r["env_steps"] == 1000 for r in saved["runs"])
    assert "the Ray cluster at 127.0.0.1" in saved["settings"]["executor"]
    assert "on " in done.stdout


def test_a_nodes_next_task_removes_the_scratch_of_dead_workers(tmp_path):
    from deepq.sweeps.ray_executor import remove_stale_scratch

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"deepq-trial-{gone.pid}-abc"
    live = tmp_path / f"deepq-trial-{os.getpid()}-def"
    other = tmp_path / "deepq-trial-notapid-x"
    for folder in (stale, live, other):
        (folder / "run").mkdir(parents=True)
    remove_stale_scratch(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()
