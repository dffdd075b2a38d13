"""``deepq export``: a run's episode log in the format another program reads.

The robust-DQN post logs ``episode;steps;reward;average`` (episodes counted from 0, the average
over the last 100 episodes) and plots it with ``pd.read_csv(file, sep=';')``; ``--format
semicolon`` writes exactly that from progress.csv, so its plot script runs on a deepq run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deepq.errors import UsageError
from deepq.run.files import write_text_file
from deepq.run.logs import read_progress

# format name -> field separator; both write the post's four columns
FORMATS = {"semicolon": ";", "csv": ","}
HEADER = ("episode", "steps", "reward", "average")


def episode_log(run_dir: str | Path, fmt: str = "semicolon") -> str:
    """The post's log of ``run_dir``: one line per finished episode (values as progress.csv
    holds them, so no digit is lost), episodes numbered from 0 as the post numbers them."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    sep = FORMATS[fmt]
    lines = [sep.join(HEADER)]
    for row in read_progress(run_dir, ("episode", "return", "length", "mean_100")):
        try:
            episode = int(row["episode"]) - 1
        except (TypeError, ValueError):
            raise UsageError(f"{run_dir}/progress.csv has an episode {row['episode']!r}") from None
        values = (row["length"], row["return"], row["mean_100"])
        if None in values:
            raise UsageError(f"{run_dir}/progress.csv has a short row at episode {episode + 1}")
        lines.append(sep.join((str(episode), *values)))
    return "\n".join(lines) + "\n"


def export_episode_log(run_dir: str | Path, out: str | Path | None, fmt: str) -> Path | None:
    """Write :func:`episode_log` to ``out`` (to stdout when None); return the path written."""
    text = episode_log(run_dir, fmt)
    if out is None:
        sys.stdout.write(text)
        return None
    out = Path(out)
    write_text_file(out, text)
    return out
