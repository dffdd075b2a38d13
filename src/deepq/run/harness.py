"""The run harness every training loop shares: counters, finished episodes, the solved test,
greedy evaluations and the best one, the training clock, the stop rules, the end of a run and its
summary.

DQN, REINFORCE and tabular Q-learning each keep their own loop (one file each) and call these, so
their run directories, progress logs, summaries, plots and reports are the same, and no loop
writes its own stop ladder, clock or end of run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from deepq.errors import UsageError
from deepq.run.evaluation import TEST_EVAL_SEED, EvalResult, Evaluator
from deepq.run.files import describe_os_error, write_json
from deepq.run.logs import RunLogger


class Interrupted(Exception):
    """Training was stopped by SIGINT/SIGTERM after saving; ``run_dir`` holds what was saved."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    agent: Any


def new_run_dir(run_dir: str | Path | None) -> Path:
    """Create the run directory; an existing non-empty one is refused (never overwrite a run),
    and one that cannot be created (a path through a file, a read-only file system, a name too
    long) is one UsageError."""
    path = (
        Path(run_dir)
        if run_dir is not None
        else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    )
    try:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(
                f"run directory {path} already exists and is not empty; choose another --run-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot create run directory {path}: {describe_os_error(exc)}") from None
    return path


@contextmanager
def removed_if_unstarted(run_dir: Path) -> Iterator[None]:
    """Remove ``run_dir`` (new and empty but for config.json and logs) if anything, Ctrl-C
    included, stops the run before it saved a checkpoint: such a directory could be neither
    resumed nor reused. Once a checkpoint exists, the directory is the run's and is kept."""
    try:
        yield
    except BaseException:
        if not (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


@dataclass
class RunProgress:
    """The loop's counters and records: everything besides arrays that a resume needs."""

    env_steps: int = 0
    episodes: int = 0
    recent_returns: list[float] = field(default_factory=list)  # the last solved_window returns
    solved_at: dict[str, Any] | None = None
    best_eval_mean: float | None = None
    best_eval_step: int | None = None
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0  # training wall-clock so far, evaluation excluded


class TrainingClock:
    """Training wall-clock, kept in ``progress.train_seconds``: evaluations and checkpoint writes
    happen inside :meth:`paused` and are not training time."""

    def __init__(self, progress: RunProgress):
        self.progress = progress
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        """Training seconds so far, this run's earlier sessions (before a resume) included."""
        return self.progress.train_seconds + time.perf_counter() - self._started

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        yield
        self._started = time.perf_counter()

    def stop(self) -> None:
        """Add the time since the last start to ``progress.train_seconds``."""
        now = time.perf_counter()
        self.progress.train_seconds += now - self._started
        self._started = now


@dataclass(frozen=True)
class StopRules:
    """When a run ends: the first rule that holds, checked at the end of a step (or episode, or
    iteration), where the whole state is consistent and can be saved."""

    stop_when_solved: bool
    total_steps: int | None = None
    max_episodes: int | None = None
    time_budget_s: float | None = None
    eval_mean: float | None = None  # stop once a periodic greedy evaluation's mean reaches this

    def reason(self, progress: RunProgress, elapsed: float, interrupted: bool) -> str | None:
        """Why the run stops now, or None to go on."""
        if interrupted:
            return "interrupted"
        if progress.solved_at is not None and self.stop_when_solved:
            return "solved"
        best = progress.best_eval_mean
        if self.eval_mean is not None and best is not None and best >= self.eval_mean:
            return "eval_mean"
        if self.total_steps is not None and progress.env_steps >= self.total_steps:
            return "total_steps"
        if self.max_episodes is not None and progress.episodes >= self.max_episodes:
            return "max_episodes"
        if self.time_budget_s is not None and elapsed >= self.time_budget_s:
            return "time_budget"
        return None


def solved_threshold(configured: float | None, env_spec: Any) -> float | None:
    """The configured threshold, else the env's ``reward_threshold`` (200 for LunarLander)."""
    if configured is not None:
        return configured
    return env_spec.reward_threshold if env_spec is not None else None


class RunRecorder:
    """Records finished episodes and evaluations of one run into ``progress`` and the logger."""

    def __init__(
        self,
        progress: RunProgress,
        logger: RunLogger,
        threshold: float | None,
        solved_window: int,
    ):
        self.progress = progress
        self.logger = logger
        self.threshold = threshold
        self.solved_window = solved_window
        self.recent_returns: deque[float] = deque(progress.recent_returns, maxlen=solved_window)

    def end_episode(self, episode_return: float, length: int, epsilon: float, wall: float) -> None:
        """Count a finished training episode: log its row, and note when the run is solved (the
        mean of the last ``solved_window`` returns reaches the threshold)."""
        p = self.progress
        p.episodes += 1
        self.recent_returns.append(float(episode_return))
        mean_recent = float(np.mean(self.recent_returns))
        row = {
            "episode": p.episodes,
            "env_steps": p.env_steps,
            "return": float(episode_return),
            "length": int(length),
            "mean_100": mean_recent,
            "epsilon": epsilon,
            "wall_s": round(wall, 3),
        }
        self.logger.episode(row, p.env_steps / max(wall, 1e-9))
        if (
            p.solved_at is None
            and self.threshold is not None
            and len(self.recent_returns) == self.solved_window
            and mean_recent >= self.threshold
        ):
            p.solved_at = {
                "episode": p.episodes,
                "env_steps": p.env_steps,
                "wall_s": round(wall, 3),
            }
            self.logger.message(
                f"Environment solved in {p.episodes} episodes! mean of the last "
                f"{self.solved_window} returns {mean_recent:.2f} ≥ {self.threshold:g} after "
                f"{p.env_steps} env steps, {wall:.1f} s"
            )

    def add_evaluation(self, result: EvalResult) -> bool:
        """Record a periodic greedy evaluation; True when it is the best so far (the caller then
        saves the ``best`` checkpoint)."""
        p = self.progress
        evaluation = {k: v for k, v in result.to_dict().items() if k != "episodes"}
        p.eval_history.append(
            {
                "env_steps": p.env_steps,
                "episodes": p.episodes,  # training episodes so far
                "train_wall_s": round(p.train_seconds, 3),
                "eval_episodes": result.episodes,
                **evaluation,
            }
        )
        self.logger.scalars(
            p.env_steps, {"eval/mean_return": result.mean, "eval/std_return": result.std}
        )
        improved = p.best_eval_mean is None or result.mean > p.best_eval_mean
        if improved:
            p.best_eval_mean, p.best_eval_step = result.mean, p.env_steps
        self.logger.message(
            f"eval @ {p.env_steps} steps: {result.line()}{'  (best so far)' if improved else ''}"
        )
        return improved

    def state(self) -> dict[str, Any]:
        """``progress`` as JSON-ready data for a checkpoint's meta.json."""
        return {**dataclasses.asdict(self.progress), "recent_returns": list(self.recent_returns)}

    def summary(self, env_id: str, stop_reason: str, **extra: Any) -> dict[str, Any]:
        """summary.json's content; ``extra`` adds algorithm-specific counts (e.g. grad_steps)."""
        p = self.progress
        return {
            "env_id": env_id,
            "stop_reason": stop_reason,
            "solved": p.solved_at is not None,
            "solved_threshold": self.threshold,
            "solved_at_episode": p.solved_at["episode"] if p.solved_at else None,
            "solved_at_step": p.solved_at["env_steps"] if p.solved_at else None,
            "solved_at_wall_s": p.solved_at["wall_s"] if p.solved_at else None,
            "train_wall_s": round(p.train_seconds, 3),
            "env_steps": p.env_steps,
            "episodes": p.episodes,
            **extra,
            "steps_per_s": round(p.env_steps / max(p.train_seconds, 1e-9), 1),
            "best_eval_mean": p.best_eval_mean,
            "best_eval_step": p.best_eval_step,
            "eval_history": p.eval_history,
            "final_eval": None,
        }


def final_eval_summary(result: EvalResult) -> dict[str, Any]:
    """The final evaluation as summary.json keeps it: the statistics, not every return."""
    return {k: v for k, v in result.to_dict().items() if k not in ("returns", "lengths")}


def finish_run(
    record: RunRecorder,
    clock: TrainingClock,
    run_dir: Path,
    env_id: str,
    stop_reason: str,
    *,
    evaluate_now: Callable[[], None],
    save_final: Callable[[], None],
    load_best: Callable[[], Any],
    evaluator: Evaluator,
    final_eval_episodes: int,
    eval_epsilon: float = 0.0,
    save_interrupted: Callable[[], None] | None = None,
    resume_hint: str | None = None,
    **extra: Any,
) -> tuple[dict[str, Any], Any]:
    """The end of every run: stop the training clock and the live display. Interrupted:
    ``save_interrupted`` (default ``save_final``), write
    the summary and raise :class:`Interrupted`, whose message says how to resume (``resume_hint``)
    or that the run cannot be. Otherwise: let the end of the run compete for ``best``
    (``evaluate_now`` unless the last evaluation was at this very step), ``save_final``, evaluate
    the best agent on the held-out seeds and write summary.json. Returns the summary and the best
    agent; ``extra`` adds algorithm-specific counts (e.g. grad_steps) to the summary."""
    p = record.progress
    clock.stop()
    record.logger.end_progress(p.env_steps)
    if stop_reason == "interrupted":
        (save_interrupted or save_final)()
        write_json(run_dir / "summary.json", record.summary(env_id, stop_reason, **extra))
        how = resume_hint or "the run cannot be resumed"
        raise Interrupted(f"interrupted at env step {p.env_steps}; {how}", run_dir)
    if not p.eval_history or p.eval_history[-1]["env_steps"] != p.env_steps:
        evaluate_now()
    save_final()
    summary = record.summary(env_id, stop_reason, **extra)
    best = load_best()
    if final_eval_episodes > 0:
        final = evaluator.run(best.policy(), final_eval_episodes, TEST_EVAL_SEED, eval_epsilon)
        summary["final_eval"] = final_eval_summary(final)
    write_json(run_dir / "summary.json", summary)
    return summary, best
