"""The one schema of a checkpoint's JSON: ``manifest.json`` and ``meta.json`` (its common fields,
an agent's env facts, and a DQN training state's counters, RNG state and env seeds); and of a
run's ``summary.json``, which the report, the plot and sweeps read back.

Everything read from a checkpoint passes through these models before any of it is used: types
are strict (no "3" for 3, no 3.0 for 3, no list for an object), numbers have ranges, unknown keys
are refused, and non-finite floats are refused. The config inside is validated by its own config
class afterwards (:mod:`deepq.run.config`), and its consistency with the arrays and the env is
checked by the loaders that build from it. Any violation becomes one CheckpointError line naming
the field. pydantic does the checking: nested, typed structures are what it is for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from deepq.errors import CheckpointError, DeepQError, UsageError
from deepq.run.config import MAX_SEED
from deepq.run.files import UnreadableFile, read_json_file

SCHEMA_VERSION = 1
ARRAYS_FILE = "arrays.safetensors"
META_FILE = "meta.json"

# Bounds generous for any real run, small enough that nothing built from them exhausts memory.
MAX_OBS_DIM = 1 << 20
MAX_ACTIONS = 1 << 16
MAX_COUNT = 1 << 62  # env steps, episodes
MAX_LIST = 1 << 20  # eval history, recent returns, env seeds
# No episode's return is larger: float64 holds integers exactly up to 9e15, and a mean over a
# million of these stays finite (1e308 returns made a resumed run "solved" with mean inf).
MAX_RETURN = 1e15

KINDS = ("dqn-agent", "dqn-training-state", "q-table-agent", "reinforce-agent")

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Return = Annotated[float, Field(ge=-MAX_RETURN, le=MAX_RETURN)]
Spread = Annotated[float, Field(ge=0, le=MAX_RETURN)]  # a standard deviation of returns
Probability = Annotated[float, Field(ge=0, le=1)]
Scalar = bool | int | float | str | None
Text = Annotated[str, Field(max_length=1000)]


class StrictModel(BaseModel):
    """Exact types, no unknown keys, finite floats: what every file deepq reads is checked by."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class FileEntry(StrictModel):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Count


class Manifest(StrictModel):
    """``manifest.json``: exactly the two files of a checkpoint, each with its hash and size."""

    schema_version: int
    files: dict[Literal["arrays.safetensors", "meta.json"], FileEntry]


class CheckpointMeta(StrictModel):
    """What every ``meta.json`` holds; ``config`` is checked by the kind's config class."""

    schema_version: Literal[1]
    kind: Literal["dqn-agent", "dqn-training-state", "q-table-agent", "reinforce-agent"]
    deepq_version: Annotated[str, Field(max_length=64)]
    config: dict[Text, Scalar | Annotated[list[int | float | str], Field(max_length=1000)]]
    info: dict[Text, JsonValue] = {}  # free-form notes (env steps, eval mean, provenance)


class NetworkAgentMeta(CheckpointMeta):
    """A DQN or REINFORCE agent: the env facts its network is rebuilt from. ``obs_shape`` (frames)
    and ``obs_dtype`` (uint8 pixels) are absent from float vector agents, as from older checkpoints."""

    kind: Literal["dqn-agent", "dqn-training-state", "reinforce-agent"]
    obs_dim: Annotated[int, Field(ge=1, le=MAX_OBS_DIM)]
    n_actions: Annotated[int, Field(ge=1, le=MAX_ACTIONS)]
    obs_shape: (
        Annotated[
            list[Annotated[int, Field(ge=1, le=MAX_OBS_DIM)]], Field(min_length=1, max_length=4)
        ]
        | None
    ) = None
    obs_dtype: Literal["uint8"] | None = None  # pixels the network scales by 1/255

    @model_validator(mode="after")
    def _shape_holds_obs_dim_values(self) -> NetworkAgentMeta:
        if self.obs_shape is not None and math.prod(self.obs_shape) != self.obs_dim:
            raise ValueError(
                f"obs_shape {self.obs_shape} does not hold obs_dim={self.obs_dim} values"
            )
        return self


class SolvedAt(StrictModel):
    episode: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    env_steps: Count
    wall_s: Annotated[float, Field(ge=0)]


class Evaluation(StrictModel):
    """One periodic evaluation of a run (:meth:`deepq.run.harness.RunRecorder.add_evaluation`)."""

    env_steps: Count
    episodes: Count  # training episodes before it
    train_wall_s: Annotated[float, Field(ge=0)]
    eval_episodes: Annotated[int, Field(ge=1, le=MAX_LIST)]
    mean: Return
    std: Spread
    min: Return
    max: Return
    returns: Annotated[list[Return], Field(max_length=MAX_LIST)]
    lengths: Annotated[list[Count], Field(max_length=MAX_LIST)]
    epsilon: Probability = 0.0  # absent before ε-greedy evaluations

    @model_validator(mode="after")
    def _one_return_and_length_per_episode(self) -> Evaluation:
        if not len(self.returns) == len(self.lengths) == self.eval_episodes:
            raise ValueError("an evaluation holds one return and one length per episode")
        return self


class ProgressState(StrictModel):
    """:class:`deepq.run.harness.RunProgress` as a checkpoint keeps it."""

    env_steps: Count
    episodes: Count
    recent_returns: Annotated[list[Return], Field(max_length=MAX_LIST)]
    solved_at: SolvedAt | None
    best_eval_mean: Return | None
    best_eval_step: Count | None
    eval_history: Annotated[list[Evaluation], Field(max_length=MAX_LIST)]
    train_seconds: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _counts_agree(self) -> ProgressState:
        """Every step, episode and evaluation lies within the run so far."""
        steps = [self.best_eval_step or 0, *(e.env_steps for e in self.eval_history)]
        if self.solved_at is not None:
            steps.append(self.solved_at.env_steps)
        if self.episodes > self.env_steps or max(steps) > self.env_steps:
            raise ValueError("counts beyond the run's env steps")
        if len(self.recent_returns) > self.episodes:
            raise ValueError("more recent returns than finished episodes")
        return self


class FinalEvaluation(StrictModel):
    """The evaluation of the kept agent on the held-out seeds, as summary.json holds it."""

    mean: Return
    std: Spread
    min: Return
    max: Return
    episodes: Annotated[int, Field(ge=1, le=MAX_LIST)]
    epsilon: Probability = 0.0


class RunSummary(StrictModel):
    """A run's ``summary.json`` (:meth:`deepq.run.harness.RunRecorder.summary`), as the report,
    the plot and a sweep read it from a run directory that may be someone else's."""

    env_id: Text
    stop_reason: Literal["interrupted", "solved", "eval_mean", "total_steps", "max_episodes",
                         "time_budget", "iterations"]  # fmt: skip
    solved: bool
    solved_threshold: Return | None
    solved_at_episode: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None
    solved_at_step: Count | None
    solved_at_wall_s: Annotated[float, Field(ge=0)] | None
    train_wall_s: Annotated[float, Field(ge=0)]
    env_steps: Count
    episodes: Count
    grad_steps: Count | None = None  # DQN
    updates: Count | None = None  # REINFORCE, tabular Q-learning
    learning: dict[Text, float] | None = None  # DQN: the last learning scalars logged
    steps_per_s: Annotated[float, Field(ge=0)]
    best_eval_mean: Return | None
    best_eval_step: Count | None
    eval_history: Annotated[list[Evaluation], Field(max_length=MAX_LIST)]
    final_eval: FinalEvaluation | None

    @model_validator(mode="after")
    def _solved_says_when(self) -> RunSummary:
        when = (self.solved_at_episode, self.solved_at_step, self.solved_at_wall_s)
        if self.solved != (None not in when) or (not self.solved and when != (None,) * 3):
            raise ValueError("a solved run says when, and only a solved one")
        if (self.best_eval_mean is None) != (self.best_eval_step is None):
            raise ValueError("best_eval_mean and best_eval_step go together")
        return self


class PCG64Words(StrictModel):
    state: Annotated[int, Field(ge=0, lt=1 << 128)]
    inc: Annotated[int, Field(ge=0, lt=1 << 128)]

    @model_validator(mode="after")
    def _odd_increment(self) -> PCG64Words:
        """PCG64's increment is odd in every state numpy makes; {state: 0, inc: 0} would draw 0
        forever, and numpy's sampling then loops in C, deaf to Ctrl-C."""
        if self.inc % 2 != 1:
            raise ValueError("the PCG64 increment must be odd")
        return self


class RNGState(StrictModel):
    """numpy's ``default_rng`` (PCG64) ``bit_generator.state``."""

    bit_generator: Literal["PCG64"]
    state: PCG64Words
    has_uint32: Annotated[int, Field(ge=0, le=1)]
    uinteger: Annotated[int, Field(ge=0, lt=1 << 32)]


class EnvSeeds(StrictModel):
    """Each env's base seed and how many episodes it has started (its current one included)."""

    base_seeds: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED + MAX_LIST)]],
                          Field(min_length=1, max_length=MAX_LIST)]  # fmt: skip
    episodes_started: Annotated[list[Annotated[int, Field(ge=1, le=MAX_COUNT)]],
                                Field(min_length=1, max_length=MAX_LIST)]  # fmt: skip


class TrainingStateMeta(NetworkAgentMeta):
    """A DQN training checkpoint (``checkpoints/latest``): the agent plus what resuming needs."""

    kind: Literal["dqn-training-state"]
    progress: ProgressState
    rng: RNGState
    envs: EnvSeeds


Model = TypeVar("Model", bound=BaseModel)


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json, checked against :class:`RunSummary` (a run directory may be
    someone else's): one UsageError naming what is wrong."""
    try:
        data = read_json_file(path)
    except UnreadableFile as exc:  # a damaged run directory: what plot and report say of it
        raise UsageError(str(exc)) from None
    return validated_or(UsageError, RunSummary, data, str(path)).model_dump()


def validated(model: type[Model], data: Any, source: str) -> Model:
    """``data`` checked against ``model``; the first violation is one CheckpointError line."""
    return validated_or(CheckpointError, model, data, source)


def validated_or(error: type[DeepQError], model: type[Model], data: Any, source: str) -> Model:
    """``data`` checked against ``model``; the first violation is one ``error`` line naming
    the field: ``sweep.json: configs.0.label: ...``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(_printable(part) for part in first["loc"]) or "the top level"
        raise error(f"{source}: {where}: {first['msg']}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply") from None


def _printable(part: Any) -> str:
    """A key of the path to an error, quoted when it is not plain printable text."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)[:80]


def meta_model(kind: Any) -> type[CheckpointMeta]:
    """The schema of a ``meta.json`` of this ``kind``."""
    if kind == "dqn-training-state":
        return TrainingStateMeta
    if kind in ("dqn-agent", "reinforce-agent"):
        return NetworkAgentMeta
    return CheckpointMeta
