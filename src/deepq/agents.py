"""Loading and evaluating any agent deepq saved: by path, by the checkpoint's ``kind``, or the
pretrained LunarLander agent shipped inside the package.

Below the API and the outputs (report, video, play), which all load agents through here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from deepq.errors import CheckpointError, UsageError
from deepq.run.checkpoint import checkpoint_exists, load_checkpoint
from deepq.run.evaluation import TEST_EVAL_SEED, EvalResult, Evaluator

PRETRAINED_NAME = "lunarlander"


def pretrained_path() -> Path:
    """The directory of the shipped LunarLander checkpoint (see :mod:`deepq.outputs.pretrained`)."""
    return Path(str(resources.files("deepq") / "pretrained" / PRETRAINED_NAME))


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
        from deepq.dqn.agent import agent_from_checkpoint

        return agent_from_checkpoint(arrays, meta, str(directory))
    if kind == "q-table-agent":
        from deepq.classic.tabular import q_table_agent_from

        return q_table_agent_from(arrays, meta, str(directory))
    if kind == "reinforce-agent":
        from deepq.classic.reinforce import reinforce_agent_from

        return reinforce_agent_from(arrays, meta, str(directory))
    raise CheckpointError(f"{directory}: unknown checkpoint kind {kind!r}")


def load(path: str | Path | None = None) -> Any:
    """Load an agent from a run directory (its best checkpoint) or a checkpoint directory; with no
    path, the pretrained LunarLander agent shipped with deepq."""
    if path is None:
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
