"""One trial of a sweep, as a program of its own: ``python -m deepq.sweeps.worker --out DIR
--cpus N --checkpoints best`` reads ``{"algo": ..., "config": {...}}`` on stdin and trains it
into DIR exactly as ``deepq train`` would on a machine of N cores (the same process settings,
:func:`deepq.run.process.configure_process`), without progress display or report.

Why a process per trial: JAX's thread pools are sized once per process, a trial's timings must
not carry another's compiled state or memory, and a crash or an out-of-memory kill ends one
trial, not the sweep. Exit codes are deepq's: 0 trained, 2 a bad config, 1 another failure
(its one line on stderr), 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from deepq.sweeps.executors import add_trial_arguments, end_with_parent

CHECKPOINT_POLICIES = ("none", "best", "all")


def config_for(algo: str, values: dict[str, Any]) -> Any:
    """The config object of a trial's algorithm (ConfigError on a bad value)."""
    from deepq.api import ALGORITHMS

    return ALGORITHMS[algo].from_dict(values)


def keep_checkpoints(run_dir: Path, policy: str) -> None:
    """Drop what ``policy`` does not keep: ``best`` keeps the best agent (small) and drops the
    training states, whose replay buffers are most of a run's bytes; ``none`` drops all."""
    checkpoints = run_dir / "checkpoints"
    if policy == "all" or not checkpoints.is_dir():
        return
    for entry in checkpoints.iterdir():
        if policy == "none" or entry.name != "best":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def main(argv: list[str]) -> int:
    from deepq.run.signals import exit_code, install_program_handlers

    install_program_handlers()
    parser = argparse.ArgumentParser(prog="python -m deepq.sweeps.worker")
    add_trial_arguments(parser)
    parser.add_argument("--checkpoints", choices=CHECKPOINT_POLICIES, default="best")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--env-module", action="append", default=[])
    args = parser.parse_args(argv)
    if args.parent is not None and not end_with_parent(args.parent):
        return exit_code(signal.SIGTERM)
    from deepq.errors import DeepQError
    from deepq.run.harness import Interrupted

    try:
        from deepq.run.envs import import_env_modules

        import_env_modules(args.env_module)
        trial = json.loads(sys.stdin.read())
        config = config_for(trial["algo"], trial["config"])
        from deepq.run.atari import is_pixel_game
        from deepq.run.process import configure_process

        configure_process(spare_core=not is_pixel_game(config.env_id), cores=args.cpus)
        from deepq.api import train

        result = train(config, args.out, show_progress=False, report=args.report)
        keep_checkpoints(result.run_dir, args.checkpoints)
        return 0
    except DeepQError as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except Interrupted:  # training saved what it had, then stopped at the signal
        return exit_code(signal.SIGINT)
    except KeyboardInterrupt as exc:
        return exit_code(getattr(exc, "signum", signal.SIGINT))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
