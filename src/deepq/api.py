"""The Python API the CLI also uses: train any algorithm, resume a DQN run, load and evaluate
any agent.

Each algorithm has its own loop and config (``dqn/loop.py`` with ``DQNConfig``,
``classic/reinforce.py`` and ``classic/tabular.py`` with ``classic/configs.py``); here one
``train`` picks by the config's type. Loading (by the checkpoint's ``kind``) is
:mod:`deepq.agents`. Every finished run ends with its report.html.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from deepq.agents import evaluate, find_checkpoint, load, load_agent_checkpoint
from deepq.classic.configs import QLearningConfig, ReinforceConfig
from deepq.dqn.config import DQNConfig, config_from_dict, resolve_config
from deepq.errors import UsageError
from deepq.run.envs import make_env
from deepq.run.files import RunWriteError, write_json
from deepq.run.harness import TrainResult, new_run_dir, removed_if_unstarted

__all__ = ["evaluate", "find_checkpoint", "load", "load_agent_checkpoint", "resume", "train"]


def train(
    config: Any = None,
    run_dir: str | Path | None = None,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
    report: bool = True,
) -> TrainResult:
    """Train as ``config`` says (a DQNConfig, ReinforceConfig or QLearningConfig; a dict is read
    as a DQN config; None is the default LunarLander preset) into ``run_dir`` (default
    runs/<time>), then write report.html unless ``report`` is false."""
    from deepq.dqn import loop as dqn_loop

    if config is None:
        config = resolve_config()
    elif isinstance(config, dict):
        config = config_from_dict(config)
    if isinstance(config, DQNConfig):
        result = dqn_loop.train(
            config, run_dir, show_progress=show_progress, tensorboard=tensorboard
        )
        return _with_report(result, report)
    from deepq.classic.reinforce import train_reinforce
    from deepq.classic.tabular import train_q_learning

    trainers = {ReinforceConfig: train_reinforce, QLearningConfig: train_q_learning}
    if type(config) not in trainers:
        raise UsageError(f"train() takes a deepq config, not {type(config).__name__}")
    check_before_training(config)
    run_dir = new_run_dir(run_dir)
    with removed_if_unstarted(run_dir):  # these short runs save only at their end
        write_json(run_dir / "config.json", config.to_dict())
        summary, agent = trainers[type(config)](config, run_dir, show_progress, tensorboard)
    return _with_report(TrainResult(run_dir, summary, agent), report)


# The algorithms a command line names, and their configs.
ALGORITHMS = {"dqn": DQNConfig, "reinforce": ReinforceConfig, "q-learning": QLearningConfig}


def config_from_options(
    algo: str,
    preset: str | None = None,
    env_id: str | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    **values: Any,
) -> Any:
    """The config ``deepq train`` and ``deepq sweep`` build from their options: for DQN the
    preset (or the env's) with ``--set`` on top; for the others their defaults with ``--set``,
    the env and the seed. ``values`` that are not None override keys too. ConfigError or
    UsageError (exit 2) on a bad key, value or combination."""
    cls = ALGORITHMS[algo]
    chosen = cls.parse_overrides(overrides or [])
    chosen.update({key: value for key, value in values.items() if value is not None})
    if cls is DQNConfig:
        return resolve_config(preset, env_id, seed, chosen)
    if preset is not None:
        raise UsageError(f"presets are DQN configurations; --algo {algo} takes --set")
    for key, value in (("env_id", env_id), ("seed", seed)):
        if value is not None:
            chosen[key] = value
    return cls.from_dict(chosen)


def check_before_training(config: Any) -> None:
    """What ``train`` checks before it creates a run directory (``deepq train --dry-run``): the
    env can be made, with the spaces the algorithm needs, and a DQN run fits this machine's
    memory. Raises a one-line DeepQError otherwise."""
    if isinstance(config, DQNConfig):
        from deepq.dqn.training_run import check_memory

        check_memory(config)
    else:
        make_env(
            config.env_id, spaces="tabular" if isinstance(config, QLearningConfig) else "vector"
        ).close()


def resume(
    run_dir: str | Path,
    *,
    total_steps: int | None = None,
    show_progress: bool | None = None,
    tensorboard: bool = True,
    report: bool = True,
) -> TrainResult:
    """Continue an interrupted DQN run exactly, or with ``total_steps`` an interrupted or
    finished one to that many env steps (see :func:`deepq.dqn.loop.resume`)."""
    from deepq.dqn import loop as dqn_loop

    result = dqn_loop.resume(
        run_dir, total_steps=total_steps, show_progress=show_progress, tensorboard=tensorboard
    )
    return _with_report(result, report)


def _with_report(result: TrainResult, report: bool) -> TrainResult:
    """Write the run's report.html. The run is saved by now, so a failure here (say, no video
    encoder) is a warning on stderr, not a failed run; a file that cannot be written (a full
    disk) is an error, as for every file a run writes."""
    if report:
        from deepq.outputs.report import write_report

        try:
            write_report(result.run_dir)
        except RunWriteError:  # the disk refused it: an error, like any write the run makes
            raise
        except Exception as exc:
            print(f"deepq: warning: report.html not written ({exc})", file=sys.stderr)
    return result
