"""``deepq sweep``'s options and what they make: the base config (as ``deepq train`` makes it
from ``--preset``, ``--env``, ``--algo`` and ``--set``), the configs of ``--grid`` and
``--random``, the seeds, and the executor. Every config is built and checked before the first
trial starts, so a bad key or value exits 2 having run nothing."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from deepq.errors import UsageError
from deepq.sweeps.worker import CHECKPOINT_POLICIES

CONFIG_OPTIONS = ("preset", "env", "algo", "seeds", "grid", "random", "samples", "sweep_seed",
                  "overrides", "out")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to run (as deepq train takes them)")
    what.add_argument("--algo", choices=("dqn", "reinforce", "q-learning"), default=None,
                      help="algorithm (default dqn)")  # fmt: skip
    what.add_argument("--env", metavar="ID", help="Gymnasium env id")
    what.add_argument("--preset", metavar="NAME", help="DQN config preset")
    what.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="a config key for every trial")  # fmt: skip
    what.add_argument("--seeds", help="seeds: a list or range such as 0-9 or 3,7,11 (default 0-9)")
    what.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="try each value of a key; several --grid are crossed. A list-valued key separates "
        "its values with |: --grid hidden_sizes='64,64|256,256'",
    )  # fmt: skip
    what.add_argument("--random", action="append", default=[], metavar="KEY=LOW:HIGH[:log]",
                      help="draw a number key uniformly (or log-uniformly) --samples times")  # fmt: skip
    what.add_argument("--samples", type=int, metavar="N", help="how many --random configs to draw")
    what.add_argument("--sweep-seed", type=int, default=None, metavar="N",
                      help="seed of the --random draws (default 0)")  # fmt: skip
    where = parser.add_argument_group("where and how")
    where.add_argument("--out", metavar="DIR", help="sweep directory (default sweeps/<time>)")
    where.add_argument("--resume", metavar="DIR",
                       help="run a stopped sweep's missing trials (its own configs and seeds)")  # fmt: skip
    where.add_argument("--retry-failed", action="store_true",
                       help="with --resume: run the failed trials again too")  # fmt: skip
    where.add_argument("--parallel", type=int, metavar="N",
                       help="local trials at a time (default: cores // --cpus-per-trial)")  # fmt: skip
    where.add_argument("--cpus-per-trial", type=int, default=2, metavar="N",
                       help="cores each trial's thread pools are sized to (default 2: the loop's "
                       "thread and XLA's)")  # fmt: skip
    where.add_argument("--address", metavar="ADDR",
                       help="run the trials on this Ray cluster (pip install 'deepq[ray]')")  # fmt: skip
    where.add_argument("--ray", action="store_true",
                       help="run on Ray: a new local Ray instance when no --address is given")  # fmt: skip
    where.add_argument("--checkpoints", choices=CHECKPOINT_POLICIES, default="best",
                       help="what each trial keeps: its best agent (default), nothing, or also the "
                       "training states with their replay buffers (large)")  # fmt: skip
    where.add_argument("--report", action="store_true", help="write each trial's report.html")
    where.add_argument("--dry-run", action="store_true",
                       help="print the configs and trials, and stop")  # fmt: skip


def plan_from_args(args: argparse.Namespace) -> Any:
    """The sweep plan the options describe (ConfigError or UsageError: exit 2)."""
    from deepq.api import config_from_options
    from deepq.sweeps.grid import parse_grid, parse_random, parse_seeds, point_label, sweep_points
    from deepq.sweeps.sweep import SweepConfig, SweepPlan
    from deepq.sweeps.worker import config_for

    algo = args.algo or "dqn"
    seeds = parse_seeds(args.seeds or "0-9")
    base = config_from_options(algo, args.preset, args.env, None, args.overrides)
    config_class = type(base)
    if args.samples is not None and args.samples < 1:
        raise UsageError(f"--samples {args.samples} must be >= 1")
    points = sweep_points(parse_grid(args.grid, config_class),
                          parse_random(args.random, config_class), args.samples,
                          0 if args.sweep_seed is None else args.sweep_seed)  # fmt: skip
    from deepq.api import check_before_training
    from deepq.sweeps.files import check_plan_size

    check_plan_size(len(points), len(seeds))  # before 300 configs are each built and checked
    values = []
    for point in points:  # each config whole, through its class's checks, before any trial
        config = config_for(algo, {**base.to_dict(), **point})
        check_before_training(config)  # the env exists, the replay fits this machine
        values.append({k: v for k, v in config.to_dict().items() if k != "seed"})
    labels = [point_label(point) for point in points]
    return SweepPlan(
        algo, [SweepConfig(lab, v) for lab, v in zip(labels, values, strict=True)], seeds
    )


def run_from_args(args: argparse.Namespace) -> int:
    from deepq.run.signals import exit_code, take_missed_signal
    from deepq.sweeps.sweep import (
        check_run_options,
        make_executor,
        new_sweep_dir,
        read_plan,
        run_sweep,
    )

    if args.resume is not None:
        given = [f"--{name.replace('_', '-')}" for name in CONFIG_OPTIONS
                 if getattr(args, name) not in (None, [], False)]  # fmt: skip
        if given:
            raise UsageError(
                f"--resume runs the sweep's own configs and seeds; drop {', '.join(given)}"
            )
        sweep_dir = Path(args.resume)
        plan = read_plan(sweep_dir)
    else:
        if args.retry_failed:
            raise UsageError("--retry-failed goes with --resume")
        plan = plan_from_args(args)
        sweep_dir = None
    if args.dry_run:
        for i, config in enumerate(plan.configs):
            print(f"config {i}: {config.label}")
        print(f"{len(plan.trials)} trials: {len(plan.configs)} configs x seeds "
              f"{', '.join(map(str, plan.seeds))}")  # fmt: skip
        return 0
    check_run_options(args.cpus_per_trial, args.checkpoints)
    executor = make_executor(args.address, args.parallel, args.cpus_per_trial, args.ray)
    if sweep_dir is None:
        sweep_dir = new_sweep_dir(args.out)
    print(f"sweep {sweep_dir}: {len(plan.configs)} configs x {len(plan.seeds)} seeds, "
          f"{executor.description}", flush=True)  # fmt: skip

    def heard(record: dict[str, Any], done: int, total: int) -> None:
        config = plan.configs[record["config"]].label
        if record["status"] == "ok":
            s = record["scores"]
            best = "—" if s["best_mean"] is None else f"{s['best_mean']:.1f}"
            what = (f"solved at {s['steps_to_solve']:,} steps" if s["solved"] else "not solved") + \
                f", best {best}"  # fmt: skip
        else:
            what = f"failed: {record['error']}"
        print(f"[{done}/{total}] {config}, seed {record['seed']}: {what} "
              f"({record['wall_s']:.0f} s on {record['node']})", flush=True)  # fmt: skip

    try:
        results = run_sweep(plan, sweep_dir, executor, args.cpus_per_trial, args.checkpoints,
                            args.report, args.retry_failed, heard, tuple(args.env_module))  # fmt: skip
    except KeyboardInterrupt as exc:
        take_missed_signal()
        from deepq.sweeps.sweep import read_records

        finished = len(read_records(sweep_dir, plan))
        print(f"deepq sweep: interrupted with {finished} of {len(plan.trials)} trials finished; "
              f"continue with: deepq sweep --resume {sweep_dir}", file=sys.stderr)  # fmt: skip
        return exit_code(getattr(exc, "signum", signal.SIGINT))
    from deepq.sweeps.sweep import results_markdown

    print()
    print(results_markdown(results), end="")
    written = ["results.json", "results.md"] + (
        ["sweep.png"] if (sweep_dir / "sweep.png").exists() else []
    )
    print(f"\nwritten to {sweep_dir}: {', '.join(written)}; runs in {sweep_dir / 'trials'}")
    return 1 if any(row["failed"] for row in results["configs"]) else 0
