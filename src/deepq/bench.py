"""``deepq bench``: deepq's LunarLander presets against Stable-Baselines3's RL Zoo DQN.

Systems: ``deepq`` (the default ``lunarlander`` preset), ``deepq-fast`` (the
``lunarlander-fast`` preset) and ``sb3``, run by default; and the Rainbow parts each added to the
default preset, ``deepq-prioritized``, ``deepq-c51`` and ``deepq-noisy``, and all of them,
``deepq-rainbow`` (the ``lunarlander-rainbow`` preset), run when named.

Protocol, identical for both systems:
- LunarLander-v3, the same training seeds, the same env-step budget;
- every ``eval_every`` env steps, a greedy evaluation over ``eval_episodes`` episodes with the
  fixed seeds ``SELECTION_EVAL_SEED + k`` (disjoint from training), run by deepq's own
  :class:`~deepq.run.evaluation.Evaluator` for both, so the numbers are comparable;
- time counted is training wall-clock, evaluation excluded;
- every (system, seed) runs in a fresh subprocess, by default one after the other, never in
  parallel (``--parallel N`` and ``--address`` run them through the sweep's executors,
  :mod:`deepq.sweeps.executors`, trading timing purity for wall-clock); the subprocess reports
  its own peak RSS.

"Solved" is the first evaluation with mean ≥ 200. A seed that never solves counts as its full
training time and budget in the medians. SB3 is an optional extra (``pip install -e .[bench]``);
deepq itself never imports it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepq.errors import UsageError
from deepq.run.files import write_text_file
from deepq.sweeps.grid import parse_seeds

SOLVED_MEAN = 200.0
# deepq's systems: a preset and the overrides that make each variant. The Rainbow parts are
# each added alone to the default preset (C51 replaces its Munchausen target, as the two are
# different targets; its support of ±200 is "Revisiting Rainbow"'s for LunarLander), so each
# part's gain and cost can be read against the default.
C51_ON_LUNARLANDER = {"num_atoms": 51, "v_min": -200.0, "v_max": 200.0, "munchausen": False}
DEEPQ_SYSTEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "deepq": ("lunarlander", {}),
    "deepq-fast": ("lunarlander-fast", {}),
    "deepq-prioritized": ("lunarlander", {"prioritized": True}),
    "deepq-c51": ("lunarlander", C51_ON_LUNARLANDER),
    "deepq-noisy": ("lunarlander", {"noisy": True}),
    "deepq-rainbow": ("lunarlander-rainbow", {}),
}
SYSTEMS = (*DEEPQ_SYSTEMS, "sb3")
DEFAULT_SYSTEMS = ("deepq", "deepq-fast", "sb3")
SB3_ZOO_LUNARLANDER = {  # rl-baselines3-zoo hyperparams/dqn.yml, LunarLander
    "learning_rate": 6.3e-4,
    "batch_size": 128,
    "buffer_size": 50_000,
    "learning_starts": 0,
    "gamma": 0.99,
    "target_update_interval": 250,
    "train_freq": 4,
    "gradient_steps": -1,
    "exploration_fraction": 0.12,
    "exploration_final_eps": 0.1,
    "policy_kwargs": {"net_arch": [256, 256]},
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ----------------------------------------------------------------------------------------------
# Workers: one system, one seed, in their own process.
# ----------------------------------------------------------------------------------------------


def run_deepq(
    seed: int, budget_steps: int, eval_every: int, eval_episodes: int, system: str = "deepq"
) -> dict[str, Any]:
    from deepq.dqn.config import resolve_config
    from deepq.dqn.loop import train

    preset, variant = DEEPQ_SYSTEMS[system]
    config = resolve_config(
        preset=preset,
        seed=seed,
        overrides={
            **variant,
            "total_steps": budget_steps,
            "eval_every": eval_every,
            "eval_episodes": eval_episodes,
            "stop_when_solved": False,  # every system runs the whole budget
            "stop_eval_mean": None,
            "final_eval_episodes": 0,
            "checkpoint_every_episodes": None,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(config, Path(tmp) / "run", show_progress=False, tensorboard=False).summary
    evals = [
        {
            "env_steps": e["env_steps"],
            "train_wall_s": e["train_wall_s"],
            "mean": e["mean"],
            "std": e["std"],
        }
        for e in summary["eval_history"]
    ]
    return {
        "train_wall_s": summary["train_wall_s"],
        "env_steps": summary["env_steps"],
        "evals": evals,
    }


def run_sb3(seed: int, budget_steps: int, eval_every: int, eval_episodes: int) -> dict[str, Any]:
    try:
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        raise UsageError(
            "the sb3 system needs the bench extra: pip install -e '.[bench]'"
        ) from None
    import gymnasium as gym
    import numpy as np

    from deepq.run.envs import make_env
    from deepq.run.evaluation import SELECTION_EVAL_SEED, Evaluator

    evaluator = Evaluator(lambda: make_env("LunarLander-v3"))
    model = DQN(
        "MlpPolicy",
        gym.make("LunarLander-v3"),
        seed=seed,
        device="cpu",
        verbose=0,
        **SB3_ZOO_LUNARLANDER,
    )
    evals: list[dict[str, Any]] = []

    class EvaluateEvery(BaseCallback):
        """Pauses the training clock for a greedy evaluation every ``eval_every`` env steps."""

        def _on_training_start(self) -> None:
            self.train_s, self.started = 0.0, time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                self.train_s += time.perf_counter() - self.started
                result = evaluator.run(
                    lambda obs: np.asarray(model.predict(obs, deterministic=True)[0]),
                    eval_episodes,
                    SELECTION_EVAL_SEED,
                )
                evals.append(
                    {
                        "env_steps": self.num_timesteps,
                        "train_wall_s": round(self.train_s, 3),
                        "mean": result.mean,
                        "std": result.std,
                    }
                )
                self.started = time.perf_counter()
            return True

        def _on_training_end(self) -> None:
            self.train_s += time.perf_counter() - self.started

    callback = EvaluateEvery()
    model.learn(total_timesteps=budget_steps, callback=callback)
    evaluator.close()
    return {"train_wall_s": round(callback.train_s, 3), "env_steps": budget_steps, "evals": evals}


WORKERS = {
    **{system: functools.partial(run_deepq, system=system) for system in DEEPQ_SYSTEMS},
    "sb3": run_sb3,
}


def score(system: str, seed: int, raw: dict[str, Any]) -> dict[str, Any]:
    """Per-seed figures from a worker's raw evaluation history."""
    evals = raw["evals"]
    solved = next((e for e in evals if e["mean"] >= SOLVED_MEAN), None)
    best = max(evals, key=lambda e: e["mean"]) if evals else None
    final = evals[-1] if evals else None
    return {
        "system": system,
        "seed": seed,
        "solved": solved is not None,
        "time_to_solve_s": solved["train_wall_s"] if solved else None,
        "steps_to_solve": solved["env_steps"] if solved else None,
        "best_mean": best["mean"] if best else None,
        "best_std": best["std"] if best else None,
        "final_mean": final["mean"] if final else None,
        "final_std": final["std"] if final else None,
        "train_wall_s": raw["train_wall_s"],
        "env_steps": raw["env_steps"],
        "steps_per_s": round(raw["env_steps"] / max(raw["train_wall_s"], 1e-9), 1),
        "peak_rss_mib": raw["peak_rss_mib"],
        "evals": evals,
    }


def median_time_to_solve(rows: list[dict[str, Any]]) -> float:
    """Median training seconds to solve; an unsolved seed counts as its whole training time."""
    return statistics.median(
        r["time_to_solve_s"] if r["solved"] else r["train_wall_s"] for r in rows
    )


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Solved fraction and medians per system; unsolved seeds count as their whole budget."""
    out: dict[str, Any] = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        out[system] = {
            "seeds": len(mine),
            "solved": sum(r["solved"] for r in mine),
            "median_time_to_solve_s": median_time_to_solve(mine),
            "median_steps_to_solve": statistics.median(
                r["steps_to_solve"] if r["solved"] else r["env_steps"] for r in mine
            ),
            "median_best_mean": statistics.median(r["best_mean"] for r in mine),
            "median_final_mean": statistics.median(r["final_mean"] for r in mine),
            "median_steps_per_s": statistics.median(r["steps_per_s"] for r in mine),
            "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in mine),
        }
    for system in DEEPQ_SYSTEMS:
        # The ratio compares the two systems on the seeds both ran, so a bench cut short (or
        # merged from runs over different seeds) never sets one system's lucky seeds against
        # the other's unlucky ones.
        both = sorted(
            {r["seed"] for r in rows if r["system"] == system}
            & {r["seed"] for r in rows if r["system"] == "sb3"}
        )
        if not both:
            continue
        sb3, mine = (
            median_time_to_solve([r for r in rows if r["system"] == name and r["seed"] in both])
            for name in ("sb3", system)
        )
        out[f"ratio_sb3_over_{system}_time_to_solve"] = round(sb3 / max(mine, 1e-9), 2)
        out[f"ratio_sb3_over_{system}_seeds"] = both
    return out


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any], settings: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str = ".1f") -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        f"LunarLander-v3, budget {settings['budget_steps']:,} env steps, greedy evaluation every "
        f"{settings['eval_every']:,} steps over {settings['eval_episodes']} episodes; "
        f"{settings['machine']}.",
        "",
        "| system | seed | solved | time to solve (s) | steps to solve | best mean ± std | final mean ± std "
        "| steps/s | peak RSS (MiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['seed']} | {'yes' if r['solved'] else 'no'} | {fmt(r['time_to_solve_s'])} "
            f"| {fmt(r['steps_to_solve'], ',')} | {fmt(r['best_mean'])} ± {fmt(r['best_std'])} "
            f"| {fmt(r['final_mean'])} ± {fmt(r['final_std'])} | {fmt(r['steps_per_s'], ',.0f')} "
            f"| {fmt(r['peak_rss_mib'], '.0f')} |"
        )
    lines += [
        "",
        "| system | solved | median time to solve (s) | median steps to solve | median best | median final "
        "| median steps/s | median peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system, s in summary.items():
        if not isinstance(s, dict):
            continue
        lines.append(
            f"| {system} | {s['solved']}/{s['seeds']} | {s['median_time_to_solve_s']:.1f} "
            f"| {s['median_steps_to_solve']:,.0f} | {s['median_best_mean']:.1f} | {s['median_final_mean']:.1f} "
            f"| {s['median_steps_per_s']:,.0f} | {s['median_peak_rss_mib']:.0f} |"
        )
    for system in DEEPQ_SYSTEMS:
        ratio = summary.get(f"ratio_sb3_over_{system}_time_to_solve")
        if ratio is None:
            continue
        both = summary[f"ratio_sb3_over_{system}_seeds"]
        ran = {summary[name]["seeds"] for name in ("sb3", system)}
        over = "" if ran == {len(both)} else f" (over the seeds both ran: {both})"
        lines += ["", f"SB3 / {system} median time to solve: **{ratio}×**{over}"]
    return "\n".join(lines) + "\n"


def run_bench(
    seeds: list[int],
    budget_steps: int,
    systems: list[str],
    eval_every: int,
    eval_episodes: int,
    out_dir: Path,
    executor: Any = None,
    cpus_per_trial: int | None = None,
) -> dict[str, Any]:
    """Every (system, seed) as a trial of ``executor`` (default: local, one at a time, each
    with the whole machine, so no two timings share a CPU); results rewritten as each ends."""
    from deepq.sweeps.executors import LocalExecutor, TrialTask

    out_dir.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor(parallel=1)
    settings = {
        "budget_steps": budget_steps,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "seeds": seeds,
        "systems": systems,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "executor": executor.description,
    }
    pairs = [(system, seed) for seed in seeds for system in systems]
    tasks = [
        TrialTask(
            f"{system}-{seed}",
            (
                "deepq.bench",
                "--worker",
                system,
                "--seed",
                str(seed),
                "--budget-steps",
                str(budget_steps),
                "--eval-every",
                str(eval_every),
                "--eval-episodes",
                str(eval_episodes),
            ),
            cpus_per_trial,
        )  # fmt: skip
        for system, seed in pairs
    ]
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    staging = Path(tempfile.mkdtemp(prefix="deepq-bench-"))
    try:
        for outcome in executor.run(tasks, staging):
            system, seed = pairs[[t.name for t in tasks].index(outcome.name)]
            raw_path = outcome.run_dir / "raw.json" if outcome.run_dir else None
            if outcome.returncode != 0 or raw_path is None or not raw_path.is_file():
                failures.append(f"bench worker {system} seed {seed} failed: {outcome.error}")
                print(failures[-1], flush=True)
                continue
            row = score(system, seed, json.loads(raw_path.read_text()))
            rows.append(row)
            rows.sort(key=lambda r: (seeds.index(r["seed"]), systems.index(r["system"])))
            # Rewritten after every run, so a bench stopped partway keeps what it measured.
            write_results(rows, settings, out_dir)
            print(
                f"{system:>14} seed {seed}: solved={row['solved']} time_to_solve={row['time_to_solve_s']} "
                f"steps_to_solve={row['steps_to_solve']} best={row['best_mean']:.1f} final={row['final_mean']:.1f} "
                f"{row['steps_per_s']:,.0f} steps/s ({outcome.wall_s:.0f} s with evaluation, "
                f"on {outcome.node})",
                flush=True,
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    results = write_results(rows, settings, out_dir)
    if failures:
        raise UsageError(f"{len(failures)} of {len(tasks)} bench runs failed; first: {failures[0]}")
    return results


def write_results(
    rows: list[dict[str, Any]], settings: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Write results.json and results.md for the runs so far; return what was written."""
    summary = summarise(rows)
    write_text_file(
        out_dir / "results.json",
        json.dumps({"settings": settings, "summary": summary, "runs": rows}, indent=1),
    )
    table = markdown(rows, summary, settings)
    write_text_file(out_dir / "results.md", table)
    return {"settings": settings, "summary": summary, "runs": rows, "markdown": table}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds", default="0-9", help="seeds: a list or range, e.g. 0-9 or 3,7,11 (default 0-9)"
    )
    parser.add_argument(
        "--budget-steps",
        type=int,
        default=100_000,
        metavar="N",
        help="env steps per run (default 100000)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, from {', '.join(SYSTEMS)} (default {','.join(DEFAULT_SYSTEMS)})",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=5000,
        metavar="N",
        help="env steps between evaluations (default 5000)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=100,
        metavar="N",
        help="episodes per evaluation (default 100)",
    )
    parser.add_argument(
        "--out",
        default="bench-results",
        metavar="DIR",
        help="where to write results.json and results.md",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="runs at a time on this machine (default 1: timings never share a CPU; N > 1 "
        "trades their purity for wall-clock, each run's pools sized to cores // N)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="run on this Ray cluster, one task per (system, seed) (pip install 'deepq[ray]')",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=int,
        default=2,
        metavar="N",
        help="with --address: the CPUs each run asks Ray for and sizes its pools to (default 2)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development mode: seed 0, 30k steps, 20 episodes every 10k steps",
    )


def bench_from_args(args: argparse.Namespace) -> dict[str, Any]:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise UsageError(f"--systems {args.systems!r}: choose from {', '.join(SYSTEMS)}")
    seeds, budget, every, episodes = (
        parse_seeds(args.seeds),
        args.budget_steps,
        args.eval_every,
        args.eval_episodes,
    )
    if args.quick:
        seeds, budget, every, episodes = seeds[:1], 30_000, 10_000, 20
    for name, value in (
        ("--budget-steps", budget),
        ("--eval-every", every),
        ("--eval-episodes", episodes),
    ):
        if value < 1:
            raise UsageError(f"{name} {value} must be >= 1")
    from deepq.sweeps.executors import available_cores
    from deepq.sweeps.sweep import make_executor

    executor = make_executor(args.address, args.parallel, args.cpus_per_trial)
    if args.address is not None:
        cpus = args.cpus_per_trial
    else:  # one at a time: the whole machine, as deepq train; N at a time: cores // N each
        cpus = None if args.parallel == 1 else max(1, available_cores() // args.parallel)
    return run_bench(seeds, budget, systems, every, episodes, Path(args.out), executor, cpus)


def _worker_main(argv: list[str]) -> int:
    """One (system, seed), a trial program (deepq.sweeps.executors.run_trial_here): writes
    OUT/raw.json."""
    from deepq.sweeps.executors import add_trial_arguments, end_with_parent

    parser = argparse.ArgumentParser(prog="python -m deepq.bench")
    parser.add_argument("--worker", choices=SYSTEMS, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--budget-steps", type=int, required=True)
    parser.add_argument("--eval-every", type=int, required=True)
    parser.add_argument("--eval-episodes", type=int, required=True)
    add_trial_arguments(parser)
    args = parser.parse_args(argv)
    if not end_with_parent(args.parent):
        return 143
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if args.worker in DEEPQ_SYSTEMS:  # the worker is a program of its own, timed as `deepq train`
        from deepq.run.process import configure_process

        configure_process(cores=args.cpus)
    raw = WORKERS[args.worker](args.seed, args.budget_steps, args.eval_every, args.eval_episodes)
    raw["peak_rss_mib"] = round(peak_rss_mib(), 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_file(out / "raw.json", json.dumps(raw))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
