"""A DQN training checkpoint: everything a resume needs to go on bit for bit.

Arrays: the learner state (online and target parameters, optimiser state, step count), the
replay's filled region and write position (unless ``save_replay`` is false), and each env's
unfinished episode (length, actions; with stacked frames, the ids of its frames).
meta.json: ``kind`` ``dqn-training-state``, the config, the env facts, the run's counters and
records, the numpy RNG's state and each env's seeds. Envs are never serialised: a resume resets
each into its episode's seed and replays the actions (:meth:`Collector.restore`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepq.dqn.agent import checkpoint_arrays_bound
from deepq.dqn.collector import Collector
from deepq.dqn.config import DQNConfig, config_from_dict
from deepq.dqn.frame_replay import FrameReplay
from deepq.dqn.learner import Learner
from deepq.dqn.replay import ReplayBuffer
from deepq.errors import CheckpointError, TrainingDiverged, UsageError
from deepq.run.checkpoint import (
    checkpoint_config,
    load_checkpoint,
    observation_facts,
    remove_unfinished_saves,
    save_checkpoint,
    saved_checkpoints_note,
)
from deepq.run.files import UnreadableFile, refuse_symlinks_within
from deepq.run.harness import RunProgress, RunRecorder
from deepq.version import __version__

KIND = "dqn-training-state"


def save_training_state(
    directory: Path,
    config: DQNConfig,
    learner: Learner,
    replay: ReplayBuffer | FrameReplay,
    collector: Collector,
    rng: np.random.Generator,
    record: RunRecorder,
) -> None:
    """Write the training checkpoint at ``directory``; a non-finite learner state is refused (the
    previous checkpoint stays the last finite one)."""
    p, space = record.progress, collector.observation_space
    if not learner.is_finite():
        raise TrainingDiverged(
            f"the parameters or optimiser state became non-finite by env step {p.env_steps} "
            f"(try a lower learning_rate); {saved_checkpoints_note(directory.parent)}"
        )
    replay_arrays = replay.state_arrays() if config.save_replay else {}
    arrays = {
        **learner.state_arrays(),
        **{f"replay/{k}": v for k, v in replay_arrays.items()},
        **collector.state_arrays(with_frames=config.save_replay),
    }
    meta = {
        "kind": KIND,
        "deepq_version": __version__,
        "config": config.to_dict(),
        "obs_dim": int(np.prod(space.shape)),
        "n_actions": collector.n_actions,
        **observation_facts(space.shape, space.dtype),
        "info": {"env_steps": p.env_steps, "episodes": p.episodes},
        "progress": record.state(),
        "rng": rng.bit_generator.state,
        "envs": collector.state_meta(),
    }
    save_checkpoint(directory, arrays, meta)


def restore_training_state(
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    source: str,
    learner: Learner,
    replay: ReplayBuffer | FrameReplay,
    collector: Collector,
    rng: np.random.Generator,
) -> RunProgress:
    """Load what :func:`save_training_state` wrote into freshly built parts; return the run's
    counters and records. Anything missing or misshapen is a CheckpointError naming ``source``.
    ``meta`` already matches :class:`~deepq.run.schema.TrainingStateMeta`; here it must also
    agree with the env and the arrays."""
    space = collector.observation_space
    shape = tuple(meta.get("obs_shape") or (meta["obs_dim"],))
    pixels = (meta.get("obs_dtype") == "uint8", np.dtype(space.dtype) == np.uint8)
    if (shape, meta["n_actions"]) != (tuple(space.shape), collector.n_actions) or (
        pixels[0] != pixels[1]
    ):
        raise CheckpointError(
            f"{source}: the checkpoint's {'uint8 ' * pixels[0]}observations of shape {shape} "
            f"and {meta['n_actions']} actions are not {collector.env_id}'s"
        )
    learner.load_state_arrays(arrays, source)
    if not learner.is_finite():
        raise CheckpointError(f"{source}: the learner state holds NaN or infinite values")
    try:
        replay_arrays = {
            k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")
        }
        if replay_arrays or config_saves_replay(meta):  # save_replay=false: starts empty
            replay.load_state_arrays(replay_arrays, collector.n_actions)
        rng.bit_generator.state = meta["rng"]
        progress = RunProgress(**meta["progress"])
        collector.restore(meta["envs"], arrays, frames_saved=config_saves_replay(meta))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot restore the training state ({exc})") from None
    return progress


def config_saves_replay(meta: dict[str, Any]) -> bool:
    """Whether the run that wrote ``meta`` saved its replay (a missing one is then an error)."""
    return bool(meta["config"].get("save_replay", True))


def read_training_state(
    run_dir: Path, finished_ok: bool = False
) -> tuple[DQNConfig, tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """The config and the (arrays, meta) of a run's latest checkpoint, verified: an unfinished
    run's, or with ``finished_ok`` (a run continued to a new total) a finished one's too."""
    checkpoints = run_dir / "checkpoints"
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    if (checkpoints / "final").exists() and not finished_ok:
        raise UsageError(
            f"{run_dir} already finished; continue it with --total-steps N (a larger total), "
            "or start a new run"
        )
    try:
        refuse_symlinks_within(run_dir)
    except UnreadableFile as exc:
        raise CheckpointError(str(exc)) from None
    remove_unfinished_saves(checkpoints)
    source = str(checkpoints / "latest" / "meta.json")
    arrays, meta = load_checkpoint(
        checkpoints / "latest", lambda m: checkpoint_arrays_bound(m, source)
    )
    if meta["kind"] != KIND:
        raise CheckpointError(f"{checkpoints / 'latest'} is not a training-state checkpoint")
    config = checkpoint_config(config_from_dict, meta, str(checkpoints / "latest"))
    steps = meta["progress"]["env_steps"]
    if config.total_steps is not None and steps > config.total_steps:
        raise CheckpointError(
            f"{source}: progress.env_steps {steps} exceeds the config's total_steps "
            f"{config.total_steps}"
        )
    return config, (arrays, meta)
