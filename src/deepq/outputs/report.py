"""``deepq report``: one self-contained HTML page per run.

The page holds the headline (solved or not, when, best and final greedy scores), the history plot
(PNG) and an episode (MP4) both embedded as data URIs, the table of greedy evaluations, the
full resolved config, and the software versions and machine. It opens from disk with no server and
fetches nothing: no scripts, fonts or stylesheets from elsewhere. Written with the standard
library's ``html.escape`` and f-strings: a template engine would add a dependency for one page.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deepq.errors import DeepQError, UsageError
from deepq.run.evaluation import acting, agent_eval_epsilon
from deepq.run.files import UnreadableFile, read_json_file, require_suffix, write_text_file
from deepq.run.schema import read_summary

VERSIONED_PACKAGES = ("deepq", "jax", "jaxlib", "flax", "optax", "gymnasium", "numpy")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1060px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.headline { font-size: 1.1em; padding: 0.8em 1em; border-radius: 6px; }
.solved { background: #e6f4ea; } .unsolved { background: #fdf0e0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.key { text-align: left; font-family: monospace; }
img, video { max-width: 100%; border: 1px solid #ddd; }
.note { color: #666; font-size: 0.9em; }
"""


def write_report(run_dir: str | Path, out: str | Path | None = None, video_seed: int = 0) -> Path:
    """Write ``out`` (default RUN_DIR/report.html) for a run directory; return its path.

    Also (re)writes RUN_DIR/history.png, the default of ``deepq plot RUN_DIR``.
    """
    from deepq.outputs.plots import plot_history

    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json", "config.json")
    summary = read_summary(
        _present(run_dir / "summary.json", "summary.json (has the run finished?)")
    )
    out = Path(out) if out is not None else run_dir / "report.html"
    require_suffix(out, (".html", ".htm"))
    plot_png = plot_history([run_dir]).read_bytes()
    video_mp4, video_note = _episode_video(run_dir, video_seed)
    page = render_page(run_dir.name, config, summary, plot_png, video_mp4, video_note)
    write_text_file(out, page)
    return out


def _present(path: Path, what: str) -> Path:
    """``path``, a file of a run directory; a missing directory or file is one UsageError."""
    if not path.parent.is_dir():
        raise UsageError(f"no such run directory: {path.parent}")
    if not path.exists():
        raise UsageError(f"{path.parent} has no {what}")
    return path


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = read_json_file(_present(path, what))
    except UnreadableFile as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} does not hold a JSON object")
    return value


def _episode_video(run_dir: Path, seed: int) -> tuple[bytes | None, str]:
    """One episode of the run's best checkpoint, acted as its evaluations were (greedy, or with
    its eval_epsilon), as MP4 bytes; or None and why not."""
    from deepq.agents import load
    from deepq.outputs.video import VIDEO_FPS, rollout_frames, write_video

    try:
        agent = load(run_dir)
    except DeepQError as exc:
        return None, f"no video: {exc}"
    with tempfile.TemporaryDirectory(prefix="deepq-report-") as scratch:
        try:
            frames, returns = rollout_frames(agent, 1, seed, max_frames=REPORT_VIDEO_FRAMES)
            data = write_video(frames, Path(scratch) / "episode.mp4", VIDEO_FPS).read_bytes()
        except Exception as exc:  # an env without an rgb_array renderer, a missing encoder, ...
            return None, f"no video: {agent.config.env_id} could not be rendered ({exc})"
    how = acting(agent_eval_epsilon(agent))
    if not returns:  # cut at REPORT_VIDEO_FRAMES: an Atari agent that never serves plays for hours
        seconds = REPORT_VIDEO_FRAMES // VIDEO_FPS
        return (
            data,
            f"The first {seconds} s of an episode of the best checkpoint ({how}), reset seed {seed}.",
        )
    return (
        data,
        f"An episode of the best checkpoint ({how}), reset seed {seed}: return {returns[0]:.2f}.",
    )


REPORT_VIDEO_FRAMES = 1800  # a minute at 30 fps: ~180 MB of frames held while encoding


def software_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_facts() -> dict[str, str]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu cores": str(os.cpu_count()),
    }


def headline(summary: dict[str, Any]) -> str:
    """One sentence: solved or not and when, then the best and final greedy scores."""
    parts = []
    if summary.get("solved"):
        parts.append(
            f"Solved at episode {summary['solved_at_episode']}, env step "
            f"{summary['solved_at_step']:,}, after {summary['solved_at_wall_s']:.1f} s of training."
        )
    history = summary.get("eval_history") or []
    if summary.get("stop_reason") == "eval_mean":
        how = acting(history[-1].get("epsilon", 0.0)) if history else "greedy"
        parts.append(
            f"Stopped at env step {summary['best_eval_step']:,}, where a {how} evaluation "
            f"reached stop_eval_mean ({summary['best_eval_mean']:.2f})."
        )
    elif not summary.get("solved"):
        parts.append(f"Not solved (stopped by {summary.get('stop_reason', 'unknown')}).")
    parts.append(
        f"Trained {summary.get('env_steps', 0):,} env steps, {summary.get('episodes', 0):,} "
        f"episodes in {summary.get('train_wall_s', 0.0):.1f} s."
    )
    if summary.get("best_eval_mean") is not None:
        best = max(history, key=lambda e: e["mean"], default=None)
        spread = f" ± {best['std']:.2f}" if best else ""
        how = acting(best.get("epsilon", 0.0)) if best else "greedy"
        parts.append(
            f"Best {how} evaluation {summary['best_eval_mean']:.2f}{spread} at env step "
            f"{summary['best_eval_step']:,}."
        )
    final = summary.get("final_eval")
    if final:
        how = acting(final.get("epsilon", 0.0))
        parts.append(
            f"Final {how} evaluation of the best checkpoint: {final['mean']:.2f} ± "
            f"{final['std']:.2f} over {final['episodes']} held-out episodes."
        )
    return " ".join(parts)


LEARNING_NAMES = {  # TensorBoard tags, as the report names them
    "train/loss": "loss of the latest update",
    "train/q_mean": "mean Q(s, a) of its batch (with C51: the distributions' means)",
    "replay/priority_mean": "mean priority in replay",
    "replay/priority_max": "largest priority so far (what new transitions get)",
    "replay/beta": "importance-weight exponent β",
    "train/noise_sigma": "noisy layers' mean σ",
}


def render_page(
    name: str,
    config: dict[str, Any],
    summary: dict[str, Any],
    plot_png: bytes,
    video_mp4: bytes | None,
    video_note: str,
) -> str:
    e = html.escape
    png = base64.b64encode(plot_png).decode("ascii")
    if video_mp4 is not None:
        mp4 = base64.b64encode(video_mp4).decode("ascii")
        video = (
            f'<video controls muted loop playsinline src="data:video/mp4;base64,{mp4}"></video>'
            f'<p class="note">{e(video_note)}</p>'
        )
    else:
        video = f'<p class="note">{e(video_note)}</p>'
    evals = summary.get("eval_history") or []
    eval_rows = "".join(
        f"<tr><td>{row['env_steps']:,}</td><td>{row['episodes']:,}</td>"
        f"<td>{row['train_wall_s']:.1f}</td><td>{row['mean']:.2f}</td><td>{row['std']:.2f}</td>"
        f"<td>{row['min']:.2f}</td><td>{row['max']:.2f}</td><td>{row['eval_episodes']}</td></tr>"
        for row in evals
    )
    eval_table = (
        "<table><tr><th>env steps</th><th>episodes</th><th>train s</th><th>mean</th><th>std</th>"
        f"<th>min</th><th>max</th><th>eval episodes</th></tr>{eval_rows}</table>"
        if evals
        else '<p class="note">No greedy evaluations were run (eval_every is null).</p>'
    )
    learning = summary.get("learning") or {}
    learning_rows = "".join(
        f'<tr><td class="key">{e(LEARNING_NAMES.get(key, key))}</td><td>{value:.4g}</td></tr>'
        for key, value in learning.items()
        if key != "env_steps" and isinstance(value, int | float)
    )
    learning_table = (
        f"<h2>Learning at env step {learning.get('env_steps', 0):,}</h2>"
        '<p class="note">The last values logged (every 1,000 env steps); their history is in '
        "TensorBoard (<code>tensorboard --logdir tb</code> in the run directory).</p>"
        f'<table id="learning">{learning_rows}</table>'
        if learning_rows
        else ""
    )
    config_rows = "".join(
        f'<tr><td class="key">{e(key)}</td><td class="key">{e(json.dumps(value))}</td></tr>'
        for key, value in config.items()
    )
    facts = {**software_versions(), **machine_facts()}
    fact_rows = "".join(
        f'<tr><td class="key">{e(key)}</td><td class="key">{e(value)}</td></tr>'
        for key, value in facts.items()
    )
    solved_class = "solved" if summary.get("solved") else "unsolved"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepq run {e(name)}: {e(str(summary.get("env_id", "")))}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>deepq run <code>{e(name)}</code> on {e(str(summary.get("env_id", "")))}</h1>
<p class="headline {solved_class}" id="headline">{e(headline(summary))}</p>
<h2>Training history</h2>
<img id="history-plot" alt="return per episode, moving average and greedy evaluations"
 src="data:image/png;base64,{png}">
<h2>The agent</h2>
{video}
<h2>Greedy evaluations during training</h2>
{eval_table}
{learning_table}
<h2>Config</h2>
<table id="config">{config_rows}</table>
<h2>Software and machine</h2>
<table id="versions">{fact_rows}</table>
<p class="note">Written by deepq {e(facts["deepq"])} on {generated}.</p>
</body>
</html>
"""
