"""What a run records and shows: progress.csv, TensorBoard scalars, a live progress display.

On a terminal the display is a rich progress bar updated a few times a second; elsewhere (CI,
pipes, notebooks' captured output) it prints one line every ``log_every_episodes`` episodes and
on every evaluation, like the LunarLander lab's "episode 100 | average of the last 100" lines.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

PROGRESS_COLUMNS = ("episode", "env_steps", "return", "length", "mean_100", "epsilon", "wall_s")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


class RunLogger:
    """Appends episode rows and scalars; owns the console display of one training run."""

    def __init__(
        self,
        run_dir: Path,
        total_steps: int | None,
        show_progress: bool | None = None,
        log_every_episodes: int = 100,
        tensorboard: bool = True,
        resume_at: tuple[int, int] | None = None,
    ):
        """``resume_at=(episodes, env_steps)`` continues the logs of a run resumed from there."""
        self.console = Console(highlight=False, soft_wrap=True)
        path = run_dir / "progress.csv"
        if resume_at is None:
            self._csv_file: TextIO = open(path, "w", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(PROGRESS_COLUMNS)
        else:  # keep the rows up to the checkpoint; later ones are replayed by the resumed run
            episodes = resume_at[0]
            kept = path.read_text().splitlines(keepends=True)[: 1 + episodes]
            if len(kept) != 1 + episodes:
                raise ValueError(f"{path} holds fewer than the {episodes} episodes checkpointed")
            path.write_text("".join(kept))
            self._csv_file = open(path, "a", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._csv_file)
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported lazily: protobuf start-up cost

            # On resume, TensorBoard hides the events at or after the checkpoint's step that the
            # interrupted process wrote: the resumed run writes them again.
            purge_step = None if resume_at is None else resume_at[1]
            self._tb = SummaryWriter(str(run_dir / "tb"), flush_secs=10, purge_step=purge_step)
        self._log_every = log_every_episodes
        live = self.console.is_terminal if show_progress is None else show_progress
        self._progress: Progress | None = None
        self._last_refresh = 0.0
        if live:
            self._progress = Progress(
                TextColumn("[bold]DQN"),
                BarColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=self.console,
                refresh_per_second=4,
            )
            self._task = self._progress.add_task("train", total=total_steps, stats="starting")
            self._progress.start()

    def episode(self, row: dict[str, float], steps_per_s: float) -> None:
        """Record one finished training episode (keys: PROGRESS_COLUMNS)."""
        self._csv.writerow([_csv_value(row[c]) for c in PROGRESS_COLUMNS])
        self._csv_file.flush()
        step = int(row["env_steps"])
        if self._tb is not None:
            self._tb.add_scalar("train/episode_return", row["return"], step)
            self._tb.add_scalar("train/episode_length", row["length"], step)
            self._tb.add_scalar("train/mean_100", row["mean_100"], step)
            self._tb.add_scalar("train/epsilon", row["epsilon"], step)
            self._tb.add_scalar("train/steps_per_s", steps_per_s, step)
        stats = (
            f"episode {int(row['episode'])} | steps {step} | return {row['return']:.1f} | "
            f"mean_100 {row['mean_100']:.1f} | ε {row['epsilon']:.3f} | {steps_per_s:,.0f} steps/s"
        )
        if self._progress is not None:
            now = time.monotonic()
            if now - self._last_refresh > 0.1:
                self._progress.update(self._task, completed=step, stats=stats)
                self._last_refresh = now
        elif int(row["episode"]) % self._log_every == 0:
            self.console.print(stats)

    def end_progress(self, step: int) -> None:
        """Show the final step count and stop the live display (training is over)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step)
        self._stop_progress()

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        self._stop_progress()
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def _csv_value(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
