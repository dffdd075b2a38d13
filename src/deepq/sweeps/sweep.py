"""The sweep: configs × seeds as trials, run by an executor, each finished trial's run directory
kept under ``DIR/trials/`` and its figures folded into ``DIR/results.{json,md}`` and
``DIR/sweep.png`` as it finishes, so a sweep stopped anywhere has its results so far.

``DIR/sweep.json`` is the plan (every config, seed and trial name), written before the first
trial; ``DIR/records/<trial>.json`` says how each trial ended. Resuming reads the plan and runs
the trials without a record (with ``retry_failed``, the failed ones too): the same configs,
the same seeds, the same names. What those files may hold, and why a sweep directory with a
symlink in it is never resumed: :mod:`deepq.sweeps.files`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from deepq.errors import ConfigError, DeepQError, UsageError
from deepq.run.config import MAX_SEED
from deepq.run.files import (
    UnreadableFile,
    refuse_symlinks_within,
    write_json,
    write_text_file,
)
from deepq.run.schema import read_summary
from deepq.sweeps.executors import (
    LocalExecutor,
    TrialOutcome,
    TrialTask,
    available_cores,
    remove_path,
    train_task,
)
from deepq.sweeps.files import (
    MAX_SEEDS,
    TrialScores,
    check_label,
    check_plan_size,
    markdown_text,
    plot_text,
    read_plan_file,
    read_record_file,
)
from deepq.sweeps.stats import config_figures, trial_scores
from deepq.sweeps.worker import CHECKPOINT_POLICIES, config_for

PLAN_VERSION = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class SweepConfig:
    """One config of a sweep: its label in the results and its full values (seed aside)."""

    label: str
    values: dict[str, Any]


@dataclass
class SweepPlan:
    algo: str
    configs: list[SweepConfig]
    seeds: list[int]
    trials: list[dict[str, Any]] = field(default_factory=list)  # name, config index, seed

    def __post_init__(self) -> None:
        if not self.trials:  # a new plan: labels made unique (two random draws may print alike)
            check_plan_size(len(self.configs), len(self.seeds))
            for config in self.configs:
                try:
                    check_label(config.label)
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
            counts = Counter(c.label for c in self.configs)
            self.configs = [
                SweepConfig(f"{c.label} (config {i})", c.values) if counts[c.label] > 1 else c
                for i, c in enumerate(self.configs)
            ]
            self.trials = [
                {"name": trial_name(i, c.label, seed), "config": i, "seed": seed}
                for i, c in enumerate(self.configs)
                for seed in self.seeds
            ]

    def task(self, trial: dict[str, Any], cpus: int, checkpoints: str, report: bool,
             env_modules: tuple[str, ...] = ()) -> TrialTask:  # fmt: skip
        values = {**self.configs[trial["config"]].values, "seed": trial["seed"]}
        return train_task(trial["name"], self.algo, values, cpus, checkpoints, report, env_modules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "algo": self.algo,
            "configs": [{"label": c.label, "values": c.values} for c in self.configs],
            "seeds": self.seeds,
            "trials": self.trials,
        }

    @classmethod
    def read(cls, path: Path) -> SweepPlan:
        """The plan in ``path`` (a sweep.json, checked by :class:`~deepq.sweeps.files.PlanFile`);
        every config's values also pass their config class's checks."""
        data = read_plan_file(path)
        plan = cls(data["algo"],
                   [SweepConfig(c["label"], dict(c["values"])) for c in data["configs"]],
                   list(data["seeds"]), [dict(t) for t in data["trials"]])  # fmt: skip
        for i, c in enumerate(plan.configs):
            try:
                config_for(plan.algo, {**c.values, "seed": 0})
            except DeepQError as exc:
                raise UnreadableFile(f"{path}: config {i} is not a valid config ({exc})") from None
        return plan


def trial_name(index: int, label: str, seed: int) -> str:
    """``c01-learning_rate=0.001-seed3``: the config's number, its label made file-safe (and
    cut short), and the seed."""
    slug = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label).strip("_")[:60] or "config"
    return f"c{index:02d}-{slug}-seed{seed}"


def labels_for(configs: list[dict[str, Any]]) -> list[str]:
    """Each config's label: the keys whose values differ between the configs (``base`` for a
    single config)."""
    from deepq.sweeps.grid import point_label

    keys = sorted(
        {k for c in configs for k in c if len({json.dumps(x.get(k)) for x in configs}) > 1}
    )
    if not keys:
        return ["base"] if len(configs) == 1 else [f"config {i}" for i in range(len(configs))]
    return [point_label({k: c.get(k) for k in keys}) for c in configs]


def new_sweep_dir(out: str | Path | None) -> Path:
    path = (
        Path(out) if out is not None else Path("sweeps") / datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"sweep directory {path} already exists and is not empty; "
                         "choose another --out, or continue it with --resume")  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_plan(sweep_dir: Path) -> SweepPlan:
    """The plan of a sweep directory to resume, which must hold no symlink (UnreadableFile)."""
    path = sweep_dir / "sweep.json"
    if not sweep_dir.is_dir() or not (path.is_file() or path.is_symlink()):
        raise UsageError(f"{sweep_dir} is not a sweep directory (no sweep.json)")
    refuse_symlinks_within(sweep_dir)
    return SweepPlan.read(path)


def read_records(sweep_dir: Path, plan: SweepPlan) -> dict[str, dict[str, Any]]:
    """The records of the plan's trials that have one; each is checked, and must be of its own
    trial's config and seed (UnreadableFile)."""
    records = {}
    for trial in plan.trials:
        path = sweep_dir / "records" / f"{trial['name']}.json"
        if path.exists() or path.is_symlink():
            record = read_record_file(path)
            if (record["name"], record["config"], record["seed"]) != (
                trial["name"], trial["config"], trial["seed"]):  # fmt: skip
                raise UnreadableFile(f"{path} is the record of another trial")
            records[trial["name"]] = record
    return records


def check_run_options(cpus_per_trial: int, checkpoints: str) -> None:
    """How trials run, checked before a sweep directory is made (UsageError: exit 2)."""
    if checkpoints not in CHECKPOINT_POLICIES:
        raise UsageError(
            f"--checkpoints {checkpoints!r}: choose from {', '.join(CHECKPOINT_POLICIES)}"
        )
    if cpus_per_trial < 1:
        raise UsageError(f"--cpus-per-trial {cpus_per_trial} must be >= 1")


def run_sweep(
    plan: SweepPlan,
    sweep_dir: Path,
    executor: Any = None,
    cpus_per_trial: int = 2,
    checkpoints: str = "best",
    report: bool = False,
    retry_failed: bool = False,
    on_trial: Callable[[dict[str, Any], int, int], None] | None = None,
    env_modules: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run the plan's missing trials (``retry_failed``: and its failed ones) into ``sweep_dir``
    and return the results. ``on_trial(record, done, total)`` hears of each trial as it ends.
    KeyboardInterrupt stops the trials still running (each saves what it has); the finished
    ones stay recorded. ``env_modules`` are imported by each trial first (``--env-module``)."""
    check_run_options(cpus_per_trial, checkpoints)
    executor = executor or LocalExecutor()
    write_json(sweep_dir / "sweep.json", plan.to_dict())
    records = read_records(sweep_dir, plan)
    if retry_failed:
        records = {name: r for name, r in records.items() if r.get("status") == "ok"}
    todo = [t for t in plan.trials if t["name"] not in records]
    tasks = [plan.task(t, cpus_per_trial, checkpoints, report, env_modules) for t in todo]
    trials_dir, staging = sweep_dir / "trials", sweep_dir / ".staging"
    for directory in (trials_dir, staging, sweep_dir / "records"):
        directory.mkdir(parents=True, exist_ok=True)
    results = SweepResults(plan, records)
    results.write(sweep_dir)
    by_name = {t["name"]: t for t in plan.trials}
    outcomes, plotted = executor.run(tasks, staging), time.monotonic()
    try:
        for outcome in outcomes:
            record = _keep(outcome, by_name[outcome.name], trials_dir, sweep_dir)
            if record is None:  # interrupted: neither finished nor failed; resume reruns it
                continue
            results.add(record)
            plot = time.monotonic() - plotted >= PLOT_EVERY_S
            results.write(sweep_dir, plot)
            plotted = time.monotonic() if plot else plotted
            if on_trial is not None:
                on_trial(record, len(results.records), len(plan.trials))
    finally:
        outcomes.close()  # on Ctrl-C: stops the running trials
    shutil.rmtree(staging, ignore_errors=True)
    return results.write(sweep_dir)


def _keep(
    outcome: TrialOutcome, trial: dict[str, Any], trials_dir: Path, sweep_dir: Path
) -> dict[str, Any] | None:
    """Move a finished trial's run directory into place and write its record."""
    if outcome.returncode in (EXIT_INTERRUPTED, 143, -2, -15):
        return None
    destination = trials_dir / outcome.name
    remove_path(destination)
    if outcome.run_dir is not None:
        outcome.run_dir.rename(destination)
    record: dict[str, Any] = {"name": outcome.name, "config": trial["config"], "seed": trial["seed"],
                              "node": outcome.node[:1000], "wall_s": round(outcome.wall_s, 2)}  # fmt: skip
    scores, error = None, outcome.error
    if outcome.returncode == 0:
        try:
            scores = _scores_of(destination / "summary.json")
        except (DeepQError, ValueError) as exc:
            error = str(exc)
    if scores is not None:
        record.update(status="ok", scores=scores)
    else:
        error = error or (
            f"killed by signal {-outcome.returncode}" if outcome.returncode < 0
            else f"exit code {outcome.returncode}"
        )  # fmt: skip
        record.update(status="failed", returncode=outcome.returncode, error=error[:1000])
    write_json(sweep_dir / "records" / f"{outcome.name}.json", record)
    return record


def _scores_of(summary_path: Path) -> dict[str, Any]:
    """A finished trial's scores from its summary.json (checked), as a record holds them."""
    return TrialScores.model_validate(trial_scores(read_summary(summary_path))).model_dump()


# sweep.png is redrawn at most this often while trials finish (and at the end): drawing it takes
# 0.4 s for 10 configs, 2.7 s for 100, which would bound a driver hearing of many trials a second.
PLOT_EVERY_S = 10.0


class SweepResults:
    """The results so far: each config's row is recomputed only when one of its trials ends,
    so a driver's cost per finished trial does not grow with the sweep (docs/scaling.md)."""

    def __init__(self, plan: SweepPlan, records: dict[str, dict[str, Any]]):
        self.plan, self.records = plan, dict(records)
        self.trials_of: dict[int, list[str]] = {i: [] for i in range(len(plan.configs))}
        for trial in plan.trials:
            self.trials_of[trial["config"]].append(trial["name"])
        self.rows = [self._row(i) for i in range(len(plan.configs))]

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["name"]] = record
        self.rows[record["config"]] = self._row(record["config"])

    def _row(self, i: int) -> dict[str, Any]:
        mine = [self.records[name] for name in self.trials_of[i] if name in self.records]
        ok = [r for r in mine if r["status"] == "ok"]
        return {
            "config": i, "label": self.plan.configs[i].label, "trials": len(self.trials_of[i]),
            "failed": [{"seed": r["seed"], "error": r["error"]} for r in mine if r["status"] != "ok"],
            **config_figures([r["scores"] for r in ok]),
        }  # fmt: skip

    def table(self) -> dict[str, Any]:
        return {"algo": self.plan.algo, "seeds": self.plan.seeds, "configs": self.rows,
                "finished": len(self.records), "trials": len(self.plan.trials)}  # fmt: skip

    def write(self, sweep_dir: Path, plot: bool = True) -> dict[str, Any]:
        """results.json, results.md and (with ``plot``) sweep.png."""
        results = self.table()
        write_json(sweep_dir / "results.json", results)
        write_text_file(sweep_dir / "results.md", results_markdown(results))
        if plot:
            ok = {name for name, r in self.records.items() if r["status"] == "ok"}
            curves = {
                plot_text(config.label): [self.records[n]["scores"]["curve"] for n in self.trials_of[i] if n in ok]
                for i, config in enumerate(self.plan.configs)
            }  # fmt: skip
            if any(run for runs in curves.values() for run in runs):
                from deepq.outputs.plots import plot_eval_curves

                plot_eval_curves(curves, sweep_dir / "sweep.png")
        return results


def results_markdown(results: dict[str, Any]) -> str:
    def quartiles(q: dict[str, float] | None, spec: str) -> str:
        if q is None:
            return "—"
        return f"{format(q['median'], spec)} ({format(q['q1'], spec)}–{format(q['q3'], spec)})"

    def ci(m: dict[str, Any] | None) -> str:
        if m is None:
            return "—"
        return f"{m['mean']:.1f}" + (f" ± {m['ci95']:.1f}" if m["ci95"] is not None else "")

    lines = [
        f"{results['finished']} of {results['trials']} trials finished; seeds "
        f"{', '.join(map(str, results['seeds']))}.",
        "",
        "| config | solved | env steps to solve, median (IQR) | seconds to solve, median (IQR) "
        "| best greedy mean ± 95% CI | final greedy mean ± 95% CI | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["configs"]:
        lines.append(
            f"| {markdown_text(row['label'])} | {row['solved']}/{row['seeds']} "
            f"| {quartiles(row.get('steps_to_solve'), ',.0f')} "
            f"| {quartiles(row.get('time_to_solve_s'), '.1f')} "
            f"| {ci(row.get('best_mean'))} | {ci(row.get('final_mean'))} | {len(row['failed'])} |"
        )
    lines += ["", "A seed that never solved counts as its whole run in the steps and seconds."]
    for row in results["configs"]:
        for failure in row["failed"]:
            lines.append(f"- {markdown_text(row['label'])}, seed {failure['seed']} failed: "
                         f"{markdown_text(failure['error'])}")  # fmt: skip
    return "\n".join(lines) + "\n"


def sweep(
    configs: list[Any] | dict[str, Any],
    seeds: list[int] | range,
    address: str | None = None,
    *,
    out: str | Path | None = None,
    parallel: int | None = None,
    cpus_per_trial: int = 2,
    checkpoints: str = "best",
) -> dict[str, Any]:
    """Train every config on every seed and return the results table (``results.json``'s
    content): per config, the solved fraction, steps and seconds to solve, best and final
    greedy means. ``configs``: configs of one algorithm (DQNConfig, ReinforceConfig,
    QLearningConfig, or dicts read as DQN configs), or a dict of them by label. Local processes
    by default; ``address`` runs the trials on that Ray cluster."""
    from deepq.api import ALGORITHMS
    from deepq.dqn.config import config_from_dict

    labelled = dict(configs) if isinstance(configs, dict) else None
    items = list(labelled.values()) if labelled is not None else list(configs)
    if not items:
        raise UsageError("sweep() needs at least one config")
    objects = [config_from_dict(c) if isinstance(c, dict) else c for c in items]
    kinds = {next((a for a, cls in ALGORITHMS.items() if type(c) is cls), None) for c in objects}
    if None in kinds or len(kinds) != 1:
        raise ConfigError("sweep() takes configs of one deepq algorithm")
    values = [{k: v for k, v in c.to_dict().items() if k != "seed"} for c in objects]
    labels = list(labelled) if labelled is not None else labels_for(values)
    if len(seeds) > MAX_SEEDS:  # counted before a list is made
        raise UsageError(f"{len(seeds):,} seeds: a sweep takes at most {MAX_SEEDS:,}")
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise UsageError("sweep() needs at least one seed")
    if not all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds):
        raise UsageError(f"sweep() seeds must be integers in [0, {MAX_SEED}]")
    plan = SweepPlan(kinds.pop(), [SweepConfig(str(lab), v) for lab, v in zip(labels, values, strict=True)],
                     seeds)  # fmt: skip
    check_run_options(cpus_per_trial, checkpoints)
    executor = make_executor(address, parallel, cpus_per_trial)
    return run_sweep(plan, new_sweep_dir(out), executor, cpus_per_trial, checkpoints)


def make_executor(address: str | None, parallel: int | None, cpus_per_trial: int,
                  use_ray: bool = False) -> Any:  # fmt: skip
    """Ray when an address is given (or ``use_ray``), checked to answer, else local processes:
    by default as many at a time as this machine's cores hold trials of ``cpus_per_trial``."""
    if address is not None or use_ray:
        from deepq.sweeps.ray_executor import RayExecutor

        executor = RayExecutor(address, cpus_per_trial)
        executor.check()  # before anything is made: a cluster answers at the address
        return executor
    cores = available_cores()
    return LocalExecutor(parallel if parallel is not None else max(1, cores // cpus_per_trial))
