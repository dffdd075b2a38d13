"""What a run records and shows: progress.csv, TensorBoard scalars, a live progress display.

On a terminal the display is a rich progress bar updated a few times a second; elsewhere (CI,
pipes, notebooks' captured output) it prints one line every ``log_every_episodes`` episodes and
on every evaluation, like the LunarLander lab's "episode 100 | average of the last 100" lines.

Every write goes through :func:`deepq.run.files.writing`: a full disk or a read-only file system
is one :class:`~deepq.run.files.RunWriteError`, raised in the training thread, never a hang.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deepq.errors import CheckpointError, UsageError
from deepq.run.files import RunWriteError, UnreadableFile, read_lines, replacing, writing
from deepq.run.schema import MAX_COUNT, MAX_RETURN

__all__ = ["PROGRESS_COLUMNS", "RunLogger", "TensorBoardScalars", "read_progress"]

PROGRESS_COLUMNS = ("episode", "env_steps", "return", "length", "mean_100", "epsilon", "wall_s")
MAX_PROGRESS_BYTES = 1 << 30  # ~10M episodes' rows


def read_progress(
    run_dir: str | Path, columns: tuple[str, ...] = ("episode", "return")
) -> Iterator[dict[str, str]]:
    """The ``columns`` of each row of a run's progress.csv, one dict per finished episode
    (values as written), read one line at a time: a log of millions of episodes is never held
    whole (a 210 MB one took 5.4 GB read at once).

    Every row is checked as it is read: one value per column, and in ``columns`` a count where
    deepq writes a count, a finite number elsewhere. One UsageError when the run directory has
    no progress.csv, it lacks one of ``columns``, or a row is not what deepq writes."""
    path = Path(run_dir) / "progress.csv"
    if not path.is_file():
        raise UsageError(f"{run_dir} has no progress.csv: is it a deepq run directory?")
    try:
        reader = csv.reader(read_lines(path, MAX_PROGRESS_BYTES))
        header = next(reader, [])
        if not set(columns) <= set(header):
            raise UsageError(
                f"{path} is not a deepq progress log (columns {', '.join(header)[:200]!r})"
            )
        where = [(column, header.index(column), column in INTEGER_COLUMNS) for column in columns]
        for row in reader:
            if len(row) != len(header):
                raise UsageError(
                    f"{path}: line {reader.line_num} does not have one value per column"
                )
            yield {column: _checked(row[i], count, path, reader.line_num, column)
                   for column, i, count in where}  # fmt: skip
    except (UnreadableFile, csv.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


INTEGER_COLUMNS = ("episode", "env_steps", "length")


def _checked(text: str, count: bool, path: Path, line: int, column: str) -> str:
    """``text`` if it is a count in [0, MAX_COUNT] (``count``) or a finite number within the
    bound the checkpoint schema puts on returns; else one UsageError naming where."""
    try:
        if count:
            ok = 0 <= int(text) <= MAX_COUNT
        else:
            value = float(text)
            ok = -MAX_RETURN <= value <= MAX_RETURN  # False for nan too
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"{path}: line {line} has {column} {text[:40]!r}")
    return text


class TensorBoardScalars:
    """Scalars in a TensorBoard event file, written in the calling thread.

    Not tensorboardX's SummaryWriter: it writes from a background thread, and once a write fails
    there (a full disk) its queue fills and blocks the training thread forever, deaf to Ctrl-C.
    A run writes a few scalars per episode, so writing them here costs microseconds, and a failed
    write surfaces as an OSError where the run can stop cleanly. The events are tensorboardX's.
    """

    FLUSH_SECONDS = 10.0

    def __init__(self, directory: Path, purge_step: int | None = None):
        from tensorboardX.event_file_writer import EventsWriter  # lazily: protobuf start-up
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.summary import scalar

        self._event, self._scalar = Event, scalar
        directory.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(directory / "events"))
        if purge_step is not None:  # TensorBoard hides the events at or after it written before
            self._writer.write_event(
                Event(step=purge_step, session_log=SessionLog(status=SessionLog.START))
            )
        self._last_flush = time.monotonic()

    def add(self, tag: str, value: float, step: int) -> None:
        summary = self._scalar(tag, float(value))
        self._writer.write_event(self._event(wall_time=time.time(), step=step, summary=summary))
        if time.monotonic() - self._last_flush > self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._writer.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self._writer.close()


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
        self._failed = False
        path = self._csv_path = run_dir / "progress.csv"
        with self._guard(path):
            if resume_at is None:
                self._csv_file: TextIO = open(path, "w", newline="")  # noqa: SIM115
                self._csv = csv.writer(self._csv_file)
                self._csv.writerow(PROGRESS_COLUMNS)
            else:  # keep the rows up to the checkpoint; the resumed run replays later ones
                _keep_first_lines(path, 1 + resume_at[0])
                self._csv_file = open(path, "a", newline="")  # noqa: SIM115
                self._csv = csv.writer(self._csv_file)
        self._tb: TensorBoardScalars | None = None
        if tensorboard:
            # On resume, TensorBoard hides the events at or after the checkpoint's step that the
            # interrupted process wrote: the resumed run writes them again.
            with self._guard(run_dir / "tb"):
                self._tb = TensorBoardScalars(
                    run_dir / "tb", purge_step=None if resume_at is None else resume_at[1]
                )
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

    @contextmanager
    def _guard(self, path: Path) -> Iterator[None]:
        """Any OSError is one RunWriteError, and marks the logger failed: closing it then stays
        quiet about what cannot be flushed."""
        try:
            with writing(path):
                yield
        except RunWriteError:
            self._failed = True
            raise

    def episode(self, row: dict[str, float], steps_per_s: float) -> None:
        """Record one finished training episode (keys: PROGRESS_COLUMNS)."""
        with self._guard(self._csv_path):
            self._csv.writerow([_csv_value(row[c]) for c in PROGRESS_COLUMNS])
            self._csv_file.flush()
        step = int(row["env_steps"])
        self.scalars(
            step,
            {
                "train/episode_return": row["return"],
                "train/episode_length": row["length"],
                "train/mean_100": row["mean_100"],
                "train/epsilon": row["epsilon"],
                "train/steps_per_s": steps_per_s,
            },
        )
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
            with self._guard(self._csv_path.parent / "tb"):
                for name, value in values.items():
                    self._tb.add(name, value, step)

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        """Flush and close the files. After a failed write, close quietly: that failure was
        reported already, and what is left to flush cannot be written either."""
        self._stop_progress()
        failed_before, first_error = self._failed, None
        files: list[tuple[Path, Any]] = [(self._csv_path, self._csv_file)]
        if self._tb is not None:
            files.append((self._csv_path.parent / "tb", self._tb))
        for path, handle in files:
            try:
                with self._guard(path):
                    handle.close()
            except RunWriteError as exc:
                first_error = first_error or exc
        if first_error is not None and not failed_before:
            raise first_error


def _keep_first_lines(path: Path, lines: int) -> None:
    """Cut progress.csv to its header and the episodes a checkpoint counted, streaming the kept
    lines into the file that replaces it (never the whole file in memory)."""
    try:
        with replacing(path) as temporary, open(temporary, "w", newline="") as kept:
            written = 0
            for line in read_lines(path, MAX_PROGRESS_BYTES, follow_symlinks=False):
                if written == lines:
                    break
                kept.write(line)
                written += 1
            if written != lines:
                raise CheckpointError(
                    f"{path} holds fewer than the {lines - 1} episodes checkpointed"
                )
    except UnreadableFile as exc:
        raise CheckpointError(f"cannot resume from {path}: {exc}") from None


def _csv_value(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
