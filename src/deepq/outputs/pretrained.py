"""The pretrained agents shipped inside the package, and how they are made.

``deepq eval`` and ``deepq play`` with no PATH use the lander: the best checkpoint of one run of
the ``lunarlander-fast`` preset (its seed 7 lands well: 243.6 over 100 held-out episodes),
re-saved with where it came from and its held-out score::

    make pretrained   # = deepq train --preset $(PRETRAINED_PRESET) --seed $(PRETRAINED_SEED)
                      #       --run-dir runs/pretrained-lunarlander
                      #   then: python -m deepq.outputs.pretrained runs/pretrained-lunarlander
                      #       --preset $(PRETRAINED_PRESET)

``--pretrained minatar-breakout`` is a MinAtar Breakout player made the same way by
``make pretrained-minatar`` (the ``minatar-breakout-modern`` preset, 1M frames).

The weights are safetensors checkpoints like any other (the lander's about 20 KB, MinAtar's about
530 KB), loaded without pickle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepq.agents import evaluate, load, pretrained_path
from deepq.shipped import PRETRAINED_NAMES


def install_pretrained(
    run_dir: str | Path,
    *,
    preset: str,
    destination: str | Path | None = None,
    name: str = "lunarlander",
) -> dict:
    """Re-save ``run_dir``'s best checkpoint as the shipped agent, with its provenance and its
    greedy score over 100 held-out episodes in the checkpoint's ``info``; return that info."""
    from deepq.dqn.agent import save_agent
    from deepq.run.evaluation import TEST_EVAL_SEED

    run_dir = Path(run_dir)
    agent = load(run_dir)
    result = evaluate(agent, 100, TEST_EVAL_SEED)
    agent.info = {
        **agent.info,
        "pretrained": {
            "trained_with": f"deepq train --preset {preset} --seed {agent.config.seed}",
            "source_run": run_dir.name,
            "eval_100_held_out": {"mean": result.mean, "std": result.std, "min": result.min},
        },
    }
    save_agent(Path(destination) if destination else pretrained_path(name), agent)
    return agent.info["pretrained"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deepq.outputs.pretrained",
        description="Install a run's best checkpoint as the pretrained agent shipped with deepq.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument(
        "--preset",
        required=True,
        metavar="NAME",
        help="the preset the run was trained with (recorded as its provenance)",
    )
    parser.add_argument(
        "--name",
        default="lunarlander",
        choices=PRETRAINED_NAMES,
        help="which shipped agent it becomes (default lunarlander)",
    )
    args = parser.parse_args(argv)
    from deepq.errors import DeepQError

    try:
        info = install_pretrained(args.run_dir, preset=args.preset, name=args.name)
    except DeepQError as exc:
        print(f"python -m deepq.outputs.pretrained: error: {exc}", file=sys.stderr)
        return exc.exit_code
    score = info["eval_100_held_out"]
    print(
        f"installed {pretrained_path(args.name)}: greedy {score['mean']:.2f} ± {score['std']:.2f} "
        f"(min {score['min']:.2f}) over 100 held-out episodes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
