"""Bad input, damaged run directories and refused writes: each is one line and exit 1 or 2, never
a traceback, and nothing already saved is lost."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from deepq.cli import main
from deepq.errors import UsageError
from deepq.run.files import RunWriteError, replacing, write_json
from deepq.run.harness import new_run_dir


def deepq(capsys, *args):
    """``deepq ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err):
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("env", "CartPole-v1", "--seed", "-1"), 2, "--seed -1 must be in [0, 2147483647]"),
        (("eval", "--episodes", "99999999999999999999999"), 2, "99999999999999999999999 must be in [1, 10000000]"),
        (("eval", "--epsilon", "1.5"), 2, "--epsilon 1.5 must be in [0, 1]"),
        (("video", "--pretrained", "lunarlander", "--epsilon", "-0.1"), 2, "--epsilon -0.1 must be in [0, 1]"),
        (("mdp", "q-learning", "--alpha0", "nan"), 2, "--alpha0 nan must be a finite number in (0, 1]"),
        (("search", "--mutation-scale", "nan"), 2, "--mutation-scale nan must be a finite number"),
        (("search", "--mutation-scale", "inf"), 2, "--mutation-scale inf must be a finite number"),
        (("train", "--env", "CartPole-v1", "--set", "buffer_size=1e9", "--dry-run"), 2,
         "this config needs about 52.0 GB"),
        (("train", "--env", "CartPole-v1", "--set", "hidden_sizes=65536,65536,65536", "--dry-run"),
         2, "this config needs about"),
        (("train", "--env", "CartPole-v1", "--set", "num_atoms=1000000000", "--dry-run"), 2,
         "num_atoms=1000000000 must be in [1, 1000]"),
        (("train", "--env", "ALE/Breakout-v5", "--set", "batch_size=16384", "--set",
          "gradient_steps=1000", "--set", "buffer_size=100000", "--dry-run"), 2,
         "this config needs about"),
        (("train", "--env", "this:CartPole-v1"), 2, "names a module to import"),
        (("plot", "nowhere", "--out", "x.txt"), 2, "no progress.csv"),
        (("report", "nowhere", "--out", "x.png"), 2, "no such run directory"),
        (("play", "--out", "x.avi"), 2, "must end in .mp4 or .gif"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line(capsys, args, code, message):
    got, _, err = deepq(capsys, *args)
    assert got == code, err
    assert message in err
    assert_one_line(err)


def test_a_config_too_large_for_memory_names_its_size_and_leaves_no_run_dir(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = deepq(capsys, "train", "--env", "CartPole-v1", "--run-dir", str(run_dir),
                         "--set", "buffer_size=1000000000")  # fmt: skip
    assert code == 2 and "this config needs about 52.0 GB of memory (buffer_size" in err
    assert not run_dir.exists()


def test_dry_run_prints_the_config_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = deepq(capsys, "train", "--env", "CartPole-v1", "--dry-run")
    assert code == 0 and json.loads(out)["config"]["env_id"] == "CartPole-v1"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "run_dir", ["/dev/null/x", "/proc/deepq-run", "runs/" + "x" * 300], ids=["file", "ro", "long"]
)
def test_a_run_dir_that_cannot_be_created_is_one_usage_error(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="cannot create run directory"):
        new_run_dir(run_dir)


def test_outputs_that_cannot_be_written_are_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunWriteError, match="cannot write .*file/x.json: Not a directory"):
        write_json(blocker / "x.json", {})
    code, _, err = deepq(
        capsys, "mdp", "plot", "--iterations", "5", "--out", str(blocker / "q.png")
    )
    assert code == 1 and "cannot write" in err
    assert_one_line(err)
    code, _, err = deepq(capsys, "search", "--method", "grid", "--grid-points", "1",
                         "--episodes", "1", "--out", str(blocker))  # fmt: skip
    assert code == 2 and "is a file" in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("[]", "must hold an object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"transition_probabilities": [[[1.0]]] * 100_000}), "100000 states"),
        (json.dumps({"transition_probabilities": 5}), "list of lists"),
        (json.dumps({"transition_probabilities": [[[float("nan")]]]}), "must sum to 1"),
    ],
)
def test_a_bad_mdp_spec_is_one_line(capsys, tmp_path, spec, message):
    path = tmp_path / "spec.json"
    path.write_text(spec)
    code, _, err = deepq(capsys, "mdp", "value-iteration", "--env", str(path))
    assert code == 2 and message in err
    assert_one_line(err)


def test_a_damaged_run_directory_is_one_line_for_plot_and_report(capsys, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "progress.csv").write_text("episode,env_steps,return\n1,10,5.0\n")
    (run_dir / "summary.json").mkdir()
    (run_dir / "config.json").write_text("{}")
    for command in (("plot", str(run_dir)), ("report", str(run_dir))):
        code, _, err = deepq(capsys, *command)
        assert code == 2 and "summary.json is not a regular file" in err, err
        assert_one_line(err)


# Write failures stop a run with one line and a resumable checkpoint ---------------------------


# Files may grow to 64 KB (then writes fail with EFBIG), then deepq runs with ARGS: set in the
# child itself, not by preexec_fn, which would fork this multithreaded (JAX) test process.
LIMITED_FILE_SIZE = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
os.execv(sys.executable, [sys.executable, "-m", "deepq", *sys.argv[1:]])
"""


def test_a_file_size_limit_mid_run_stops_it_with_one_line_and_a_resumable_checkpoint(tmp_path):
    """Every file beyond 64 KB fails to grow (EFBIG, as a full disk gives ENOSPC): the TensorBoard
    events fill first; the run must stop, not hang, and keep a checkpoint it can resume from."""
    run_dir = tmp_path / "run"
    args = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--no-progress",
            "--no-report", "--set", "total_steps=200000", "--set", "hidden_sizes=8",
            "--set", "buffer_size=500", "--set", "checkpoint_every_episodes=20",
            "--set", "eval_every=null", "--set", "stop_when_solved=false"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", LIMITED_FILE_SIZE, *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr)
    assert "cannot write" in done.stderr and "File too large" in done.stderr
    assert "deepq train --resume" in done.stderr
    from deepq.run.checkpoint import load_checkpoint

    _, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert meta["progress"]["episodes"] > 0


@pytest.mark.parametrize("previous", [b"kept\n", None], ids=["replaced", "new"])
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, previous):
    out = tmp_path / "results.md"
    if previous is not None:
        out.write_bytes(previous)
    with pytest.raises(RunWriteError, match="cannot write .*results.md: No space left"):
        with replacing(out) as temporary:
            temporary.write_bytes(b"half of it")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ([] if previous is None else ["results.md"])
    assert previous is None or out.read_bytes() == previous


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_a_video_that_cannot_be_written_is_one_line_and_leaves_no_file(tmp_path, suffix):
    """ffmpeg's failure (or Pillow's) is read, not printed: one line, exit 1, no partial file."""
    out = tmp_path / f"clip{suffix}"
    frames = {".mp4": "250", ".gif": "60"}[suffix]  # each past 64 KB: H.264 packs frames tightly
    args = ["video", "--pretrained", "lunarlander", "--max-frames", frames, "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", LIMITED_FILE_SIZE, *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr)
    assert f"cannot write {out}" in done.stderr
    assert list(tmp_path.iterdir()) == []


# Signals are honoured from the first instruction ----------------------------------------------


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.2])
def test_ctrl_c_at_any_moment_of_start_up_ends_the_run_with_one_line(tmp_path, delay):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "train", "--env", "CartPole-v1", "--run-dir", str(run_dir),
         "--no-progress", "--set", "total_steps=500000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"},
    )  # fmt: skip
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("deepq")]) == 1, err
    # either nothing was kept, or what was kept can be resumed
    assert not run_dir.exists() or (run_dir / "checkpoints" / "latest" / "COMPLETE").exists()


def test_sigterm_during_start_up_says_so(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "train", "--env", "CartPole-v1",
         "--run-dir", str(tmp_path / "run"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.7)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (130, 143), err
    assert "terminated" in err or "interrupted" in err
    assert "Traceback" not in err


def test_a_run_stopped_during_start_up_leaves_no_directory_behind(tmp_path, monkeypatch):
    """Neither resumable (no checkpoint) nor reusable (not empty): such a directory is removed."""
    from deepq.dqn import loop

    def interrupted_while_building(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "DQNRun", interrupted_while_building)
    with pytest.raises(KeyboardInterrupt):
        loop.train({"env_id": "CartPole-v1"}, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_a_directory_that_holds_a_checkpoint_is_kept(tmp_path):
    from deepq.run.harness import removed_if_unstarted

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt), removed_if_unstarted(tmp_path / "run"):
        raise KeyboardInterrupt
    assert (tmp_path / "run" / "checkpoints").is_dir()
