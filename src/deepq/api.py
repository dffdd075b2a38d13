"""The Python API the CLI also uses: train any algorithm, load any agent, evaluate it.

Each algorithm has its own file and config (``dqn.py``/``DQNConfig``, ``reinforce.py``/
``ReinforceConfig``, ``tabular.py``/``QLearningConfig``); here one ``train`` picks by the config's
type, and ``load`` by the checkpoint's ``kind``. Every finished run ends with its report.html.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from deepq.checkpoint import checkpoint_exists, load_checkpoint
from deepq.config import (
    DQNConfig,
    QLearningConfig,
    ReinforceConfig,
    config_from_dict,
    resolve_config,
)
from deepq.envs import make_env
from deepq.errors import CheckpointError, UsageError
from deepq.evaluation import TEST_EVAL_SEED, EvalResult, Evaluator
from deepq.runlog import write_json
from deepq.runs import TrainResult, new_run_dir

ALGORITHMS = ("dqn", "reinforce", "q-learning")


def config_class(algo: str) -> type:
    """The config dataclass of ``algo`` (one of ALGORITHMS)."""
    classes = {"dqn": DQNConfig, "reinforce": ReinforceConfig, "q-learning": QLearningConfig}
    if algo not in classes:
        raise UsageError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    return classes[algo]


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
    from deepq import dqn

    if config is None:
        config = resolve_config()
    elif isinstance(config, dict):
        config = config_from_dict(config)
    if isinstance(config, DQNConfig):
        result = dqn.train(config, run_dir, show_progress=show_progress, tensorboard=tensorboard)
        return _with_report(result, report)
    from deepq.reinforce import train_reinforce
    from deepq.tabular import train_q_learning

    trainers = {ReinforceConfig: train_reinforce, QLearningConfig: train_q_learning}
    if type(config) not in trainers:
        raise UsageError(f"train() takes a deepq config, not {type(config).__name__}")
    make_env(config.env_id, tabular=isinstance(config, QLearningConfig)).close()  # fail early
    run_dir = new_run_dir(run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    summary, agent = trainers[type(config)](config, run_dir, show_progress, tensorboard)
    return _with_report(TrainResult(run_dir, summary, agent), report)


def resume(
    run_dir: str | Path,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
    report: bool = True,
) -> TrainResult:
    """Continue an interrupted DQN run exactly (see :func:`deepq.dqn.resume`)."""
    from deepq import dqn

    result = dqn.resume(run_dir, show_progress=show_progress, tensorboard=tensorboard)
    return _with_report(result, report)


def _with_report(result: TrainResult, report: bool) -> TrainResult:
    """Write the run's report.html. The run is saved by now, so a failure here (say, no video
    encoder) is a warning on stderr, not a failed run."""
    if report:
        from deepq.report import write_report

        try:
            write_report(result.run_dir)
        except Exception as exc:
            print(f"deepq: warning: report.html not written ({exc})", file=sys.stderr)
    return result


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir as given, or a run dir's best (then final, then latest) checkpoint."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such run directory or checkpoint: {path}")
    if (path / "meta.json").exists() or (path / "COMPLETE").exists():
        return path
    for name in ("best", "final", "latest"):
        candidate = path / "checkpoints" / name
        if checkpoint_exists(candidate):
            return candidate
    raise UsageError(f"{path} is neither a checkpoint nor a run directory with checkpoints/")


def load_agent_checkpoint(directory: str | Path) -> Any:
    """Any deepq agent from a checkpoint directory, by the ``kind`` its meta.json names."""
    arrays, meta = load_checkpoint(directory)
    kind = meta.get("kind")
    if kind in ("dqn-agent", "dqn-training-state"):
        from deepq.dqn import agent_from_checkpoint

        return agent_from_checkpoint(arrays, meta, str(directory))
    if kind == "q-table-agent":
        from deepq.tabular import q_table_agent_from

        return q_table_agent_from(arrays, meta, str(directory))
    if kind == "reinforce-agent":
        from deepq.reinforce import reinforce_agent_from

        return reinforce_agent_from(arrays, meta, str(directory))
    raise CheckpointError(f"{directory}: unknown checkpoint kind {kind!r}")


def load(path: str | Path | None = None) -> Any:
    """Load an agent from a run directory (its best checkpoint) or a checkpoint directory; with no
    path, the pretrained LunarLander agent shipped with deepq."""
    if path is None:
        from deepq.pretrained import pretrained_path

        return load_agent_checkpoint(pretrained_path())
    return load_agent_checkpoint(find_checkpoint(path))


def evaluate(
    agent: Any = None,
    episodes: int = 100,
    seed: int = TEST_EVAL_SEED,
    max_parallel: int = 32,
) -> EvalResult:
    """Greedy returns of ``agent`` (or of the agent at a path; None: the pretrained lander) over
    ``episodes`` episodes, episode k reset with ``seed + k``."""
    if agent is None or isinstance(agent, str | Path):
        agent = load(agent)
    if episodes < 1:
        raise UsageError(f"episodes={episodes} must be >= 1")
    evaluator = Evaluator(agent.make_env, max_parallel)
    try:
        return evaluator.run(agent.policy(), episodes, seed)
    finally:
        evaluator.close()
