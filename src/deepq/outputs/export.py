"""``deepq export``: a run's episode log in the format another program reads.

The robust-DQN post logs ``episode;steps;reward;average`` (episodes counted from 0, the average
over the last 100 episodes) and plots it with ``pd.read_csv(file, sep=';')``; ``--format
semicolon`` writes exactly that from progress.csv, so its plot script runs on a deepq run.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

from deepq.errors import UsageError
from deepq.run.files import replacing
from deepq.run.logs import read_progress

# format name -> field separator; both write the post's four columns
FORMATS = {"semicolon": ";", "csv": ","}
HEADER = ("episode", "steps", "reward", "average")


def episode_log_lines(run_dir: str | Path, fmt: str = "semicolon") -> Iterator[str]:
    """The post's log of ``run_dir``, line by line: one line per finished episode (values as
    progress.csv holds them, so no digit is lost, each checked to be a finite number), episodes
    numbered from 0 as the post numbers them."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    sep = FORMATS[fmt]
    rows = read_progress(run_dir, ("episode", "return", "length", "mean_100"))
    first = next(rows, None)  # the file, its columns and first row, before a line is given
    yield sep.join(HEADER) + "\n"
    for row in itertools.chain([] if first is None else [first], rows):
        values = (row["length"], row["return"], row["mean_100"])
        yield sep.join((str(int(row["episode"]) - 1), *values)) + "\n"


def episode_log(run_dir: str | Path, fmt: str = "semicolon") -> str:
    """:func:`episode_log_lines` as one string."""
    return "".join(episode_log_lines(run_dir, fmt))


def export_episode_log(run_dir: str | Path, out: str | Path | None, fmt: str) -> Path | None:
    """Write :func:`episode_log` to ``out`` (to stdout when None), a line at a time; return the
    path written. A failure half-way leaves no file (:func:`~deepq.run.files.replacing`)."""
    lines = episode_log_lines(run_dir, fmt)
    first = next(lines)  # the options, the file and its first row are checked before any write
    if out is None:
        sys.stdout.write(first)
        sys.stdout.writelines(lines)
        return None
    out = Path(out)
    with replacing(out) as temporary, open(temporary, "w", newline="") as handle:
        handle.write(first)
        handle.writelines(lines)
    return out
