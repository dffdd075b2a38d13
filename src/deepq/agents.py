"""Loading and evaluating any agent deepq saved: by path, by the checkpoint's ``kind``, or one of
the pretrained agents shipped inside the package (the lander, and a MinAtar Breakout player).

Below the API and the outputs (report, video, play), which all load agents through here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from deepq.errors import CheckpointError, UsageError
from deepq.run.checkpoint import checkpoint_exists, load_checkpoint
from deepq.run.evaluation import TEST_EVAL_SEED, EvalResult, Evaluator, agent_eval_epsilon
from deepq.shipped import PRETRAINED_NAME, PRETRAINED_NAMES


def pretrained_path(name: str = PRETRAINED_NAME) -> Path:
    """The directory of a shipped checkpoint (see :mod:`deepq.outputs.pretrained`)."""
    if name not in PRETRAINED_NAMES:
        raise UsageError(f"no pretrained agent {name!r}; deepq ships {', '.join(PRETRAINED_NAMES)}")
    return Path(str(resources.files("deepq") / "pretrained" / name))


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
    source = str(Path(directory) / "meta.json")
    arrays, meta = load_checkpoint(directory, lambda m: arrays_bound(m, source))
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


def arrays_bound(meta: dict[str, Any], source: str) -> int:
    """The largest arrays file a checkpoint of this kind and config can hold (see
    :func:`deepq.run.checkpoint.load_checkpoint`): each kind's loader says."""
    kind = meta["kind"]
    if kind in ("dqn-agent", "dqn-training-state"):
        from deepq.dqn.agent import checkpoint_arrays_bound

        return checkpoint_arrays_bound(meta, source)
    if kind == "reinforce-agent":
        from deepq.classic.reinforce import checkpoint_arrays_bound as reinforce_bound

        return reinforce_bound(meta, source)
    from deepq.classic.tabular import MAX_Q_TABLE_BYTES

    return MAX_Q_TABLE_BYTES


def load(path: str | Path | None = None, *, pretrained: str | None = None) -> Any:
    """Load an agent from a run directory (its best checkpoint) or a checkpoint directory; with no
    path, the pretrained agent shipped with deepq named ``pretrained`` (default the lander)."""
    if path is not None and pretrained is not None:
        raise UsageError("name a run or checkpoint directory, or a pretrained agent, not both")
    if path is None:
        return load_agent_checkpoint(pretrained_path(pretrained or PRETRAINED_NAME))
    return load_agent_checkpoint(find_checkpoint(path))


def evaluate(
    agent: Any = None,
    episodes: int = 100,
    seed: int = TEST_EVAL_SEED,
    max_parallel: int = 32,
    epsilon: float | None = None,
) -> EvalResult:
    """Returns of ``agent`` (or of the agent at a path; None: the pretrained lander) over
    ``episodes`` episodes, episode k reset with ``seed + k``: greedy, or with a random action
    at probability ``epsilon`` (None: the agent's own ``eval_epsilon``, 0 where it has none)."""
    if agent is None or isinstance(agent, str | Path):
        agent = load(agent)
    if episodes < 1:
        raise UsageError(f"episodes={episodes} must be >= 1")
    if epsilon is None:
        epsilon = agent_eval_epsilon(agent)
    evaluator = Evaluator(agent.make_env, max_parallel)
    try:
        return evaluator.run(agent.policy(), episodes, seed, epsilon)
    finally:
        evaluator.close()
