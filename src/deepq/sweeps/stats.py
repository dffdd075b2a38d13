"""A sweep's figures: each trial's, read from its run's summary.json, and each config's over its
seeds.

Per trial, as ``deepq bench`` scores a run: *solved* is the first periodic greedy evaluation
whose mean reaches the env's solved threshold (the training average's solve when the run has no
evaluations), *best* and *final* are the highest and the last evaluation means. Per config: the
solved fraction; the median and interquartile range of env steps and training seconds to solve,
where a seed that never solved counts as its whole run (as in the bench; the table marks it);
the mean of best and final with a 95% confidence interval from Student's t over seeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def trial_scores(summary: dict[str, Any]) -> dict[str, Any]:
    """One finished trial's figures from its summary.json."""
    evals = summary.get("eval_history") or []
    threshold = summary.get("solved_threshold")
    if evals:
        solving = next((e for e in evals if threshold is not None and e["mean"] >= threshold), None)
        steps, seconds = (
            (solving["env_steps"], solving["train_wall_s"]) if solving else (None, None)
        )
    else:
        steps, seconds = summary.get("solved_at_step"), summary.get("solved_at_wall_s")
        if not summary.get("solved"):
            steps = seconds = None
    return {
        "solved": steps is not None,
        "steps_to_solve": steps,
        "time_to_solve_s": seconds,
        "best_mean": max(e["mean"] for e in evals) if evals else None,
        "final_mean": evals[-1]["mean"] if evals else None,
        "env_steps": summary.get("env_steps"),
        "train_wall_s": summary.get("train_wall_s"),
        "curve": [[e["env_steps"], e["mean"]] for e in evals],
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile), linearly interpolated between order statistics
    (numpy's default, R's type 7): [10, 20, 30, 40] -> (17.5, 25, 32.5)."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q1), float(median), float(q3)


def mean_ci95(values: list[float]) -> tuple[float, float | None]:
    """The mean and the half-width of its 95% confidence interval, mean ± t(0.975, n−1)·s/√n
    (None for a single value: one seed says nothing of the spread)."""
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, None
    from scipy.stats import t  # a JAX dependency already; imported only when a CI is needed

    half = t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data))
    return mean, float(half)


def config_figures(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One config's figures over its finished trials (each a :func:`trial_scores` dict)."""
    figures: dict[str, Any] = {"seeds": len(trials), "solved": sum(t["solved"] for t in trials)}
    if not trials:
        return figures
    for what, total in (("steps_to_solve", "env_steps"), ("time_to_solve_s", "train_wall_s")):
        values = [t[what] if t["solved"] else t[total] for t in trials]
        if all(v is not None for v in values):
            figures[what] = dict(zip(("q1", "median", "q3"), quartiles(values), strict=True))
    for what in ("best_mean", "final_mean"):
        values = [t[what] for t in trials if t[what] is not None]
        if values:
            mean, half = mean_ci95(values)
            figures[what] = {"mean": mean, "ci95": half}
    return figures
