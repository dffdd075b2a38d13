"""What a sweep directory holds, and how deepq reads one that someone else may have made.

``sweep.json`` (the plan) and ``records/<trial>.json`` (how each trial ended) are checked
against one schema each before anything in them is used: exact types, bounded sizes and
counts, trial names that are file names, labels of printable text, finite numbers. A sweep
directory is resumed only if it holds no symlink anywhere: resuming writes into it and removes
trial directories in it, and a link could point either at any folder of yours. Labels end up
in results.md and sweep.png: they are escaped for Markdown and for matplotlib's mathtext there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from deepq.errors import UsageError
from deepq.run.config import MAX_SEED
from deepq.run.files import UnreadableFile, read_json_file
from deepq.run.schema import MAX_COUNT, MAX_LIST, StrictModel, Text, validated_or

# A sweep larger than these is refused with one line before anything is made: each trial is a
# training run, so even the largest would take a cluster weeks; the bounds keep a typo such as
# --seeds 0-9999999 from building millions of trials in memory.
MAX_SEEDS = 10_000
MAX_CONFIGS = 10_000
MAX_TRIALS = 100_000
MAX_LABEL = 200  # characters of a config's label
MAX_PLAN_BYTES = 16 << 20  # sweep.json: 10,000 configs of ~1.5 KB
MAX_RECORD_BYTES = 1 << 20  # a trial's record: its evaluation curve is most of it
MAX_PLAN_ITEMS = 3_000_000  # 10,000 configs of ~100 values and 100,000 trials of 3

TRIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,120}$")


def check_label(label: str) -> str:
    """A config's label: 1 to MAX_LABEL printable characters (one line, no control codes)."""
    if not 1 <= len(label) <= MAX_LABEL:
        raise ValueError(f"a label has 1 to {MAX_LABEL} characters, not {len(label)}")
    if not label.isprintable():
        raise ValueError(f"the label {label[:40]!r} holds characters that are not printable")
    return label


Label = Annotated[str, AfterValidator(check_label)]
TrialName = Annotated[str, Field(pattern=TRIAL_NAME.pattern)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Seconds = Annotated[float, Field(ge=0)]
ConfigValues = dict[Text, bool | int | float | str | None |
                    Annotated[list[int | float | str], Field(max_length=1000)]]  # fmt: skip


class PlanConfig(StrictModel):
    label: Label
    values: ConfigValues


class PlanTrial(StrictModel):
    name: TrialName
    config: Annotated[int, Field(ge=0, lt=MAX_CONFIGS)]
    seed: Seed


class PlanFile(StrictModel):
    """``sweep.json``: every config, seed and trial, written before the first trial."""

    version: Literal[1]
    algo: Literal["dqn", "reinforce", "q-learning"]
    configs: Annotated[list[PlanConfig], Field(min_length=1, max_length=MAX_CONFIGS)]
    seeds: Annotated[list[Seed], Field(min_length=1, max_length=MAX_SEEDS)]
    trials: Annotated[list[PlanTrial], Field(min_length=1, max_length=MAX_TRIALS)]

    @model_validator(mode="after")
    def _one_trial_per_config_and_seed(self) -> PlanFile:
        if len({t.name for t in self.trials}) != len(self.trials):
            raise ValueError("a trial name appears twice")
        pairs = {(t.config, t.seed) for t in self.trials}
        expected = {(c, s) for c in range(len(self.configs)) for s in self.seeds}
        if pairs != expected or len(pairs) != len(self.trials):
            raise ValueError("the trials are not each config once with each seed")
        return self


class TrialScores(StrictModel):
    """A finished trial's figures (:func:`deepq.sweeps.stats.trial_scores`)."""

    solved: bool
    steps_to_solve: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None
    time_to_solve_s: Seconds | None
    best_mean: float | None
    final_mean: float | None
    env_steps: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None
    train_wall_s: Seconds | None
    curve: Annotated[
        list[Annotated[list[float], Field(min_length=2, max_length=2)]], Field(max_length=MAX_LIST)
    ]


class TrialRecord(StrictModel):
    """``records/<trial>.json``: how one trial ended, its scores when it finished."""

    name: TrialName
    config: Annotated[int, Field(ge=0, lt=MAX_CONFIGS)]
    seed: Seed
    node: Text
    wall_s: Seconds
    status: Literal["ok", "failed"]
    scores: TrialScores | None = None
    returncode: int | None = None
    error: Text | None = None

    @model_validator(mode="after")
    def _scores_or_error(self) -> TrialRecord:
        if (self.status == "ok") != (self.scores is not None) or (
            self.status == "failed" and self.error is None
        ):
            raise ValueError("a finished trial has scores, a failed one an error and no scores")
        return self


def read_plan_file(path: Path) -> dict[str, Any]:
    """``sweep.json``'s content, checked (UnreadableFile, exit 1, naming what is wrong)."""
    data = read_json_file(path, MAX_PLAN_BYTES, MAX_PLAN_ITEMS)
    return validated_or(UnreadableFile, PlanFile, data, str(path)).model_dump()


def read_record_file(path: Path) -> dict[str, Any]:
    """A trial's record, checked (UnreadableFile)."""
    data = read_json_file(path, MAX_RECORD_BYTES)
    return validated_or(UnreadableFile, TrialRecord, data, str(path)).model_dump()


def check_plan_size(configs: int, seeds: int) -> None:
    """Refuse a sweep over the stated bounds, before its trials are listed (UsageError)."""
    if seeds > MAX_SEEDS:
        raise UsageError(f"{seeds:,} seeds: a sweep takes at most {MAX_SEEDS:,}")
    if configs > MAX_CONFIGS:
        raise UsageError(f"{configs:,} configs: a sweep takes at most {MAX_CONFIGS:,}")
    if configs * seeds > MAX_TRIALS:
        raise UsageError(
            f"{configs:,} configs x {seeds:,} seeds = {configs * seeds:,} trials: a sweep runs "
            f"at most {MAX_TRIALS:,}"
        )


def markdown_text(text: str) -> str:
    """``text`` as one Markdown table cell that reads as written: the characters that would end
    the cell, start a link, an HTML tag, code or emphasis are backslash-escaped."""
    return re.sub(r"([\\`*\[\]<>|$#!])", r"\\\1", " ".join(str(text).split()))


def plot_text(text: str) -> str:
    """``text`` as a matplotlib label that is drawn as written: ``$`` would start mathtext
    (a label such as ``$\\frac$`` made matplotlib raise), and a leading ``_`` would hide it
    from the legend."""
    text = str(text).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text
