"""deepq report: the page's content, its self-containment, and a real browser loading it."""

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import run_deepq, skip_unless

from deepq.api import train
from deepq.dqn.config import DQNConfig
from deepq.errors import UsageError
from deepq.outputs.report import headline, render_page, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# CI sets this after installing Debian's chromium and chromium-driver: there the browser test
# must run, never skip.
try:  # imported before any skip decision: in CI a missing selenium fails the browser test
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:
    webdriver = Service = None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A short finished CartPole run (renderable, so the report gets a video); train writes the
    report itself."""
    config = DQNConfig(
        env_id="CartPole-v1",
        hidden_sizes=(16,),
        total_steps=1500,
        learning_starts=200,
        eval_every=500,
        eval_episodes=3,
        final_eval_episodes=3,
    )
    path = tmp_path_factory.mktemp("report") / "run"
    train(config, path, show_progress=False, tensorboard=False)
    return path


SOLVED = {
    "env_id": "LunarLander-v3",
    "stop_reason": "solved",
    "solved": True,
    "solved_at_episode": 212,
    "solved_at_step": 61000,
    "solved_at_wall_s": 7.25,
    "train_wall_s": 7.5,
    "env_steps": 62000,
    "episodes": 215,
    "best_eval_mean": 251.5,
    "best_eval_step": 60000,
    "eval_history": [
        {
            "env_steps": 60000,
            "episodes": 210,
            "train_wall_s": 7.0,
            "eval_episodes": 20,
            "mean": 251.5,
            "std": 20.25,
            "min": 200.0,
            "max": 290.0,
        },
    ],  # fmt: skip
    "final_eval": {"mean": 240.0, "std": 30.5, "min": 150.0, "max": 300.0, "episodes": 100},
}


def test_headline_of_a_solved_run():
    assert headline(SOLVED) == (
        "Solved at episode 212, env step 61,000, after 7.2 s of training. "
        "Trained 62,000 env steps, 215 episodes in 7.5 s. "
        "Best greedy evaluation 251.50 ± 20.25 at env step 60,000. "
        "Final greedy evaluation of the best checkpoint: 240.00 ± 30.50 over 100 held-out episodes."
    )


def test_headline_of_an_unsolved_run_without_evaluations():
    summary = {"solved": False, "stop_reason": "total_steps", "env_steps": 5000, "episodes": 40,
               "train_wall_s": 1.04, "best_eval_mean": None, "eval_history": [], "final_eval": None}  # fmt: skip
    assert headline(summary) == (
        "Not solved (stopped by total_steps). Trained 5,000 env steps, 40 episodes in 1.0 s."
    )


def test_headline_of_a_run_stopped_by_its_greedy_evaluation():
    summary = {**SOLVED, "stop_reason": "eval_mean", "solved": False}
    assert headline(summary).startswith(
        "Stopped at env step 60,000, where a greedy evaluation reached stop_eval_mean (251.50). "
        "Trained 62,000 env steps"
    )
    both = headline({**SOLVED, "stop_reason": "eval_mean"})  # solved by the average, too
    assert both.startswith("Solved at episode 212") and "reached stop_eval_mean" in both


def test_page_escapes_what_it_shows():
    config = {"env_id": "<script>alert(1)</script>"}
    page = render_page("run<1>", config, {**SOLVED, "env_id": "A&B"}, b"png", None, "no video: x")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "run&lt;1&gt;" in page and "A&amp;B" in page
    assert "no video: x" in page and "<video" not in page


def test_train_writes_a_self_contained_report(run_dir):
    page = (run_dir / "report.html").read_text()
    assert (run_dir / "history.png").is_file()
    assert 'src="data:image/png;base64,' in page
    assert 'src="data:video/mp4;base64,' in page
    # no external fetches: every src/href is inline
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []
    assert "http://" not in page and "https://" not in page
    # the full config and each evaluation point are there
    config = json.loads((run_dir / "config.json").read_text())
    for key in config:
        assert f">{key}<" in page
    summary = json.loads((run_dir / "summary.json").read_text())
    assert page.count("<tr><td>") == len(summary["eval_history"])
    assert ">gymnasium<" in page and ">jax<" in page


def test_report_cli_writes_where_asked(run_dir, tmp_path):
    out = tmp_path / "elsewhere" / "page.html"
    done = run_deepq("report", str(run_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_refuses_what_is_not_a_finished_run(tmp_path):
    with pytest.raises(UsageError, match="no such run directory"):
        write_report(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="has no summary.json"):
        write_report(tmp_path)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_report_opens_in_headless_chromium(run_dir):
    """Chromium loads the page from disk: the plot image decodes, the video element loads its
    embedded MP4, and the console shows no errors."""
    skip_unless(
        bool(CHROMIUM and CHROMEDRIVER),
        "needs Debian's chromium and chromium-driver (apt install chromium chromium-driver)",
    )
    skip_unless(webdriver is not None, "needs selenium (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(run_dir / "report.html").resolve().as_uri())
        plot_width = driver.execute_script(
            "const i = document.getElementById('history-plot'); return i.complete && i.naturalWidth;"
        )
        assert plot_width == 1000  # the 1000x700 PNG decoded
        video = driver.execute_script(
            """const v = document.querySelector('video');
               if (!v) return null;
               return new Promise(done => {
                 const report = () => done({error: v.error && v.error.code,
                                            duration: v.duration, width: v.videoWidth});
                 if (v.readyState >= 1 || v.error) return report();
                 v.addEventListener('loadedmetadata', report);
                 v.addEventListener('error', report);
                 setTimeout(report, 20000);
               });"""
        )
        assert video is not None, "no <video> element"
        assert video["error"] is None and video["width"] == 600 and video["duration"] > 0
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
