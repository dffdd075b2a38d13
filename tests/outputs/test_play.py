"""The pretrained LunarLander agent shipped in the package, and `deepq play`."""

import json
import os
import shutil
import subprocess
import sys
import time

import imageio.v3 as iio
import pytest
from helpers import run_deepq, skip_unless

from deepq.api import evaluate, load
from deepq.outputs.pretrained import pretrained_path
from deepq.outputs.video import has_display, play
from deepq.run.evaluation import TEST_EVAL_SEED


@pytest.fixture(scope="module")
def pretrained():
    return load()


def test_shipped_agent_lands(pretrained):
    """Greedy mean over 20 fixed held-out episodes (seeds no training or selection used)."""
    result = evaluate(pretrained, 20, TEST_EVAL_SEED)
    assert result.mean >= 200, result.line()


def test_shipped_agent_is_small_and_says_where_it_came_from(pretrained):
    files = {path.name: path.stat().st_size for path in pretrained_path().iterdir()}
    assert set(files) == {"arrays.safetensors", "meta.json", "manifest.json", "COMPLETE"}
    assert files["arrays.safetensors"] < 100_000
    provenance = pretrained.info["pretrained"]
    assert provenance["trained_with"] == "deepq train --preset lunarlander-fast --seed 7"
    assert provenance["eval_100_held_out"]["mean"] >= 200
    assert pretrained.config.env_id == "LunarLander-v3"


def test_eval_without_a_path_uses_the_shipped_agent():
    done = run_deepq("eval", "--episodes", "3", "--seed", "11", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["episodes"] == 3 and len(result["returns"]) == 3


def test_has_display_reads_the_environment(monkeypatch):
    if sys.platform in ("darwin", "win32"):
        pytest.skip("a display is assumed on macOS and Windows")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert has_display()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_play_without_a_display_writes_a_video(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = tmp_path / "watch.mp4"
    done = run_deepq("play", "--episodes", "1", "--seed", "3", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"no display found: wrote 1 episode to {out}\n")
    frames = iio.imread(out, plugin="FFMPEG")
    assert frames.shape[0] > 1 and frames.shape[1:] == (400, 600, 3)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_play_falls_back_to_a_video_when_no_window_opens(tmp_path, pretrained, monkeypatch):
    """A DISPLAY that names no X server: SDL falls back to an off-screen driver, which would show
    nothing; play notices and writes the video instead."""
    monkeypatch.setenv("DISPLAY", ":93")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # what SDL picks when no display answers
    result = play(pretrained, 1, 3, tmp_path / "watch.mp4")
    assert result.video == tmp_path / "watch.mp4" and result.video.is_file()
    assert "no window could be opened" in result.reason
    assert len(result.returns) == 1


def test_play_opens_a_window_on_a_display(tmp_path, pretrained, monkeypatch):
    """On a virtual X display (Xvfb) the episodes play in a real window and no video is written."""
    xvfb = shutil.which("Xvfb")
    skip_unless(xvfb is not None, "needs Xvfb (apt install xvfb) for a display")
    server = subprocess.Popen(
        [xvfb, ":94", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        monkeypatch.setenv("DISPLAY", ":94")
        monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
        result = play(pretrained, 1, 3, tmp_path / "unused.mp4")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.video is None and result.reason == ""
    assert len(result.returns) == 1
    assert not (tmp_path / "unused.mp4").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes 0 must be in [1, 10000000]"),
        (["--seed", "-1"], "--seed -1 must be in [0, 2147483647]"),
        (["--out", "clip.avi"], "--out clip.avi must end in .mp4 or .gif"),
        (["/no/such/run"], "no such run directory or checkpoint"),
    ],
)
def test_play_bad_calls_exit_2(args, message):
    done = run_deepq("play", *args)
    assert done.returncode == 2
    assert done.stderr.strip() == f"deepq play: error: {message}" or message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_shipped_agent_is_chosen_by_name_and_an_unknown_one_is_refused(tmp_path):
    from deepq.errors import UsageError

    with pytest.raises(UsageError, match="deepq ships lunarlander, minatar-breakout"):
        load(pretrained="nope")
    with pytest.raises(UsageError, match="not both"):
        load(tmp_path, pretrained="lunarlander")
    done = run_deepq("video", str(tmp_path), "--pretrained", "lunarlander")
    assert done.returncode == 2 and "one of them" in done.stderr


def test_the_shipped_minatar_player_beats_random_play_and_is_under_a_megabyte():
    agent = load(pretrained="minatar-breakout")
    files = {
        path.name: path.stat().st_size for path in pretrained_path("minatar-breakout").iterdir()
    }
    assert files["arrays.safetensors"] < 1_000_000
    provenance = agent.info["pretrained"]
    assert provenance["trained_with"] == "deepq train --preset minatar-breakout-modern --seed 0"
    assert agent.config.env_id == "MinAtar/Breakout-v0" and agent.obs_shape == (10, 10, 4)
    result = evaluate(agent, 10, TEST_EVAL_SEED)
    assert result.mean >= 5, result.line()  # random play scores about 0.5
