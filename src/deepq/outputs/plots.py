"""``deepq plot``: the training history of one run, or of several runs as mean ± spread.

After the LunarLander lab's ``plot_history``: per-episode return and its trailing moving average (default
window 10% of the episodes), here with the solve threshold, the point where the run was solved
and the greedy evaluations overlaid. Drawn with matplotlib's object API on an Agg canvas, so it
needs no display and touches no global pyplot state.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepq.errors import UsageError
from deepq.run.files import IMAGE_SUFFIXES, replacing, require_suffix
from deepq.run.logs import read_progress
from deepq.run.schema import read_summary

FIGSIZE = (10, 7)  # inches
DPI = 100  # -> 1000 x 700 pixels


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` values; NaN until the window is full (pandas'
    ``rolling(window).mean()``, as the LunarLander lab computes it)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    if window < 1:
        raise ValueError(f"window={window} must be >= 1")
    if len(values) >= window:
        sums = np.cumsum(np.concatenate([[0.0], values]))
        out[window - 1 :] = (sums[window:] - sums[:-window]) / window
    return out


@dataclass
class RunHistory:
    """What a run directory says about its training: episode returns, evaluations, solving."""

    name: str
    episodes: np.ndarray  # [E] episode numbers, from 1
    returns: np.ndarray  # [E]
    threshold: float | None = None
    solved_at_episode: int | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)  # episodes, mean, std


def read_history(run_dir: str | Path) -> RunHistory:
    """Read progress.csv (and summary.json / config.json when present) of a run directory."""
    run_dir = Path(run_dir)
    progress = run_dir / "progress.csv"
    episodes, returns = array("q"), array("d")  # 16 bytes an episode, however many there are
    for row in read_progress(run_dir):  # each row checked as it is read
        episodes.append(int(row["episode"]))
        returns.append(float(row["return"]))
    if len(episodes) == 0:
        raise UsageError(f"{progress} has no finished episode yet")
    history = RunHistory(run_dir.name, np.asarray(episodes), np.asarray(returns))
    summary_path = run_dir / "summary.json"
    if summary_path.exists() or summary_path.is_symlink():
        summary = read_summary(summary_path)
        history.threshold = summary.get("solved_threshold")
        history.solved_at_episode = summary.get("solved_at_episode")
        history.evals = [
            {"episodes": e["episodes"], "mean": e["mean"], "std": e["std"]}
            for e in summary["eval_history"]
        ]
    return history


def plot_history(
    run_dirs: list[str | Path],
    out: str | Path | None = None,
    window: int | None = None,
    first: int | None = None,
    last: int | None = None,
    rolling_only: bool = False,
    data_only: bool = False,
) -> Path:
    """Write the history plot of one run, or mean ± std across several, as a PNG; return its path.

    ``first``/``last`` are episode numbers (inclusive) bounding the view; the moving average is
    computed over the whole run, so a point's value does not depend on the view.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not run_dirs:
        raise UsageError("name at least one run directory")
    if rolling_only and data_only:
        raise UsageError("--rolling-only and --data-only exclude each other")
    if window is not None and window < 1:
        raise UsageError(f"--window {window} must be >= 1")
    if first is not None and first < 1:
        raise UsageError(f"--first {first} must be >= 1")
    if first is not None and last is not None and last < first:
        raise UsageError(f"--last {last} must be >= --first {first}")
    histories = [read_history(run_dir) for run_dir in run_dirs]
    if out is None:
        out = Path(run_dirs[0]) / "history.png" if len(run_dirs) == 1 else Path("history.png")
    out = Path(out)
    require_suffix(out, IMAGE_SUFFIXES)

    figure = Figure(figsize=FIGSIZE, dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(histories) == 1:
        _draw_run(axes, histories[0], window, rolling_only, data_only)
        axes.set_title(f"{histories[0].name}: return per episode")
    else:
        _draw_runs(axes, histories, window, data_only)
        axes.set_title(f"{len(histories)} runs: mean ± std across runs")
    thresholds = {h.threshold for h in histories if h.threshold is not None}
    for threshold in thresholds:
        axes.axhline(
            threshold, color="green", linestyle="--", linewidth=1, label=f"solved at {threshold:g}"
        )
    axes.set_xlim(
        left=first if first is not None else None, right=last if last is not None else None
    )
    axes.set_xlabel("episode")
    axes.set_ylabel("return")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return save_figure(figure, out)


def save_figure(figure: Any, out: Path) -> Path:
    """Save a matplotlib figure to ``out`` atomically (:func:`~deepq.run.files.replacing`), in
    the format its suffix names."""
    with replacing(out) as temporary:
        figure.savefig(temporary, format=out.suffix.lstrip(".").lower())
    return out


def _window_for(history: RunHistory, window: int | None) -> int:
    return window if window is not None else max(1, len(history.returns) // 10)


def _draw_run(
    axes: Any, history: RunHistory, window: int | None, rolling_only: bool, data_only: bool
) -> None:
    size = _window_for(history, window)
    if not rolling_only:
        axes.plot(
            history.episodes, history.returns, linewidth=1, color="tab:cyan", label="episode return"
        )
    if not data_only:
        average = moving_average(history.returns, size)
        axes.plot(
            history.episodes,
            average,
            linewidth=2,
            color="tab:purple",
            label=f"moving average ({size})",
        )
    if history.evals:
        axes.errorbar(
            [e["episodes"] for e in history.evals],
            [e["mean"] for e in history.evals],
            yerr=[e["std"] for e in history.evals],
            fmt="o",
            color="tab:orange",
            markersize=4,
            capsize=2,
            label="greedy evaluation (mean ± std)",
        )
    if history.solved_at_episode is not None:
        axes.axvline(history.solved_at_episode, color="green", linewidth=1)
        axes.plot([history.solved_at_episode], [history.threshold], marker="*", markersize=14, color="green",
                  linestyle="none", label=f"solved at episode {history.solved_at_episode}")  # fmt: skip


def _draw_runs(axes: Any, histories: list[RunHistory], window: int | None, data_only: bool) -> None:
    length = min(len(h.returns) for h in histories)
    episodes = np.arange(1, length + 1)
    curves = np.stack(
        [
            h.returns[:length]
            if data_only
            else moving_average(h.returns, _window_for(h, window))[:length]
            for h in histories
        ]
    )  # [runs, episodes]
    mean, std = _nan_mean_std(curves)
    label = "episode return" if data_only else "moving average"
    axes.plot(
        episodes,
        mean,
        linewidth=2,
        color="tab:purple",
        label=f"{label}, mean of {len(histories)} runs",
    )
    axes.fill_between(
        episodes, mean - std, mean + std, color="tab:purple", alpha=0.25, label="± std across runs"
    )


def _nan_mean_std(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over runs (axis 0) of the values that exist: a moving average is NaN until
    its window fills, and runs' windows differ. NaN where no run has a value yet."""
    present = ~np.isnan(curves)
    counts = present.sum(axis=0)
    safe = np.maximum(counts, 1)
    mean = np.where(present, curves, 0.0).sum(axis=0) / safe
    variance = np.where(present, (curves - mean) ** 2, 0.0).sum(axis=0) / safe
    return np.where(counts > 0, mean, np.nan), np.where(counts > 0, np.sqrt(variance), np.nan)


def plot_eval_curves(curves: dict[str, list[list[list[float]]]], out: str | Path) -> Path:
    """A sweep's plot: per config (a label), the greedy evaluation mean against env steps as
    mean ± std over its runs (each run a list of [env_steps, mean]). A run that stopped early
    leaves the later points to the runs that went on (:func:`_nan_mean_std`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    require_suffix(out, IMAGE_SUFFIXES)
    figure = Figure(figsize=FIGSIZE, dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        steps = sorted({point[0] for run in runs for point in run})
        column = {step: i for i, step in enumerate(steps)}
        values = np.full((len(runs), len(steps)), np.nan)
        for r, run in enumerate(runs):
            for step, mean in run:
                values[r, column[step]] = mean
        mean, std = _nan_mean_std(values)
        line = axes.plot(steps, mean, linewidth=2, marker="o", markersize=3,
                         label=f"{label} ({len(runs)} runs)")[0]  # fmt: skip
        axes.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    axes.set_title("greedy evaluation: mean ± std across seeds")
    axes.set_xlabel("env steps")
    axes.set_ylabel("greedy evaluation mean return")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return save_figure(figure, out)
