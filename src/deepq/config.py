"""The DQN config: one frozen, typed dataclass, validated on construction, saved with every run.

Each field's ``help`` is the CLI documentation (``deepq train --help`` lists them). Values come
from a preset (a JSON data file in ``deepq/presets/``) and ``--set key=value`` overrides, both
coerced by :func:`config_from_dict`; unknown keys and wrong types are :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from deepq.errors import ConfigError

MAX_SEED = 2**31 - 1


def documented(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class DQNConfig:
    """Everything that defines a DQN run. Env steps are counted over all parallel envs."""

    # --- environment ---
    env_id: str = documented(
        "Gymnasium environment id (Box observations, Discrete actions).", "LunarLander-v3"
    )
    num_envs: int = documented(
        "Parallel environments stepped together (Gymnasium sync vector env).", 1
    )
    max_episode_steps: int | None = documented(
        "Truncate episodes after this many steps (TimeLimit); null keeps the env's own limit.", None
    )
    time_feature: bool = documented(
        "Append the fraction of the episode's step limit used so far to each observation.", False
    )
    # --- budgets: whichever comes first ends the run ---
    total_steps: int | None = documented(
        "Stop after this many env steps (null: no step limit).", 500_000
    )
    max_episodes: int | None = documented("Stop after this many finished training episodes.", None)
    time_budget_s: float | None = documented(
        "Stop after this many seconds of training wall-clock (evaluation excluded).", None
    )
    # --- Q-learning ---
    gamma: float = documented("Discount factor in [0, 1].", 0.99)
    n_step: int = documented(
        "Bootstrap n steps ahead: target = r_t + ... + γ^(n-1) r_(t+n-1) + γ^n Q(s_(t+n)); 1 is plain DQN.",
        1,
    )
    double: bool = documented(
        "Double DQN: the online net picks a', the target net values it.", False
    )
    munchausen: bool = documented(
        "Munchausen DQN: a soft (softmax) target plus a scaled log-policy bonus on the reward.",
        False,
    )
    munchausen_temperature: float = documented(
        "Munchausen entropy temperature tau of the softmax policy softmax(Q_target / tau) (> 0).",
        0.03,
    )
    munchausen_alpha: float = documented(
        "Munchausen scaling of the log-policy bonus alpha * tau * ln pi(a|s), in [0, 1].", 0.9
    )
    munchausen_log_policy_floor: float = documented(
        "Munchausen clipping: tau * ln pi(a|s) is floored at this value (< 0).", -1.0
    )
    loss: Literal["mse", "huber"] = documented("TD error loss: mse or huber.", "mse")
    huber_delta: float = documented("Huber loss threshold (quadratic inside, linear outside).", 1.0)
    l2_coef: float = documented("L2 penalty coefficient on the weight matrices (0 disables).", 0.0)
    max_grad_norm: float | None = documented(
        "Clip gradients to this global norm (null disables).", None
    )
    # --- network ---
    hidden_sizes: tuple[int, ...] = documented(
        "Hidden layer widths of the Q-network MLP.", (64, 64)
    )
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = documented(
        "Hidden layer activation.", "relu"
    )
    dueling: bool = documented("Dueling head: Q = V + A - mean(A).", False)
    layer_norm: bool = documented(
        "LayerNorm after each hidden Dense layer (before the activation).", False
    )
    # --- optimiser ---
    optimizer: Literal["adam", "rmsprop"] = documented("Optimiser: adam or rmsprop.", "adam")
    learning_rate: float = documented("Optimiser learning rate (> 0).", 1e-3)
    learning_rate_end: float | None = documented(
        "Decay the learning rate linearly to this value, reached at env step "
        "learning_rate_decay_steps (null: constant learning rate).",
        None,
    )
    learning_rate_decay_steps: int | None = documented(
        "Env steps by which learning_rate_end is reached (null: total_steps).", None
    )
    optimizer_eps: float = documented("Optimiser epsilon (numerical stability term, > 0).", 1e-8)
    # --- replay ---
    buffer_size: int = documented("Replay buffer capacity in transitions.", 100_000)
    batch_size: int = documented("Minibatch size per gradient step.", 64)
    learning_starts: int = documented(
        "Env steps collected before learning starts (>= batch_size).", 1000
    )
    train_every: int = documented("Learn every this many env steps.", 4)
    gradient_steps: int = documented("Gradient steps per learning step.", 1)
    # --- target network ---
    target_update: Literal["soft", "hard"] = documented(
        "soft: target += tau * (online - target) after every gradient step; "
        "hard: copy online into target every target_update_every env steps.",
        "soft",
    )
    tau: float = documented("Soft target update rate in (0, 1].", 0.005)
    target_update_every: int = documented("Env steps between hard target copies.", 1000)
    target_update_every_episodes: int | None = documented(
        "Hard target copies every this many finished episodes instead (seed 004's CartPole "
        "DQNs); null: count env steps.",
        None,
    )
    # --- exploration ---
    epsilon_schedule: Literal["exponential", "linear", "linear_episodes", "constant"] = documented(
        "exponential: start * decay**episodes (per finished episode), floored at epsilon_end; "
        "linear: start -> end over epsilon_fraction of total_steps; linear_episodes: "
        "max(start * (1 - episodes / epsilon_decay_episodes), end); constant: epsilon_start.",
        "linear",
    )
    epsilon_start: float = documented("Initial exploration rate in [0, 1].", 1.0)
    epsilon_end: float = documented("Final (minimum) exploration rate in [0, epsilon_start].", 0.01)
    epsilon_decay: float = documented(
        "Per-episode multiplicative decay (exponential schedule).", 0.995
    )
    epsilon_fraction: float = documented(
        "Fraction of total_steps over which epsilon decays (linear schedule).", 0.1
    )
    epsilon_decay_steps: int | None = documented(
        "Env steps over which epsilon decays (linear schedule); overrides epsilon_fraction.", None
    )
    epsilon_decay_episodes: int = documented(
        "Episodes over which epsilon decays (linear_episodes schedule).", 500
    )
    # --- solving, evaluation, checkpoints ---
    solved_threshold: float | None = documented(
        "Solved when the mean return of the last solved_window training episodes reaches this; "
        "null uses the env spec's reward_threshold.",
        None,
    )
    solved_window: int = documented("Episodes in the solved moving average.", 100)
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every: int | None = documented(
        "Greedy evaluation every this many env steps; the best one is kept (null disables).",
        10_000,
    )
    eval_episodes: int = documented("Episodes per periodic greedy evaluation.", 10)
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100
    )
    checkpoint_every_episodes: int | None = documented(
        "Write the latest checkpoint every this many episodes (null: only at the end).", 100
    )
    keep_checkpoints: int = documented(
        "Periodic checkpoints kept as checkpoints/step-<env steps> besides latest, best and final.",
        3,
    )
    seed: int = documented("Seed for the networks, replay sampling, exploration and env resets.", 0)

    def __post_init__(self) -> None:
        coerce_fields(self)
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    def replace(self, **changes: Any) -> DQNConfig:
        """A copy with ``changes`` applied (coerced and validated like any other input)."""
        return config_from_dict({**self.to_dict(), **changes})


# ----------------------------------------------------------------------------------------------
# Shared by every algorithm's config dataclass (DQN here; REINFORCE and tabular Q-learning in
# their own files): typed fields with help, coerced on construction, parsed from --set.
# ----------------------------------------------------------------------------------------------


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce_fields(config: Any) -> None:
    """Check every field of a frozen config dataclass against its annotation, normalising in
    place (int -> float, list -> tuple); ConfigError names the field and value."""
    types_ = field_types(type(config))
    for f in dataclasses.fields(config):
        object.__setattr__(
            config, f.name, _check_type(f.name, types_[f.name], getattr(config, f.name))
        )


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict (tuples become lists); ``config_from_dict`` reads it back."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def field_help(cls: type = DQNConfig) -> list[tuple[str, str, str]]:
    """(name, default, help) for every config field, in declaration order."""
    rows = []
    for f in dataclasses.fields(cls):
        if isinstance(f.default, tuple):
            default = ",".join(map(str, f.default))  # as typed after --set: 64,64
        elif f.default is None or isinstance(f.default, bool):
            default = json.dumps(f.default)  # null, true, false
        else:
            default = str(f.default)
        rows.append((f.name, default, f.metadata["help"]))
    return rows


# ----------------------------------------------------------------------------------------------
# Types: strict checks for Python values, lenient parsing for strings from the command line.
# ----------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of integers"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        type(None): "null",
    }[tp]


def _check_type(name: str, tp: Any, value: Any) -> Any:
    """Return ``value`` normalised to ``tp`` (int -> float, list -> tuple) or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            try:
                return _check_type(name, arg, value)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{name}={value!r} must be {_type_name(tp)}")


def parse_value(name: str, text: str, cls: type = DQNConfig) -> Any:
    """Parse a command-line string for field ``name`` (e.g. ``64,64``, ``1e5``, ``true``, ``null``)."""
    if name not in field_types(cls):
        raise ConfigError(f"unknown config key {name!r} (see 'deepq train --help' for the keys)")
    return _parse(name, field_types(cls)[name], text.strip())


def _parse(name: str, tp: Any, text: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(name, arg, text)
            except ConfigError:
                continue
    elif origin is Literal:
        if text in typing.get_args(tp):
            return text
    elif origin is tuple:
        body = text.strip("[]() ")
        try:
            return tuple(int(part) for part in body.split(",") if part.strip()) if body else ()
        except ValueError:
            pass
    elif tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    elif tp is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = math.nan
            if math.isfinite(as_float) and as_float.is_integer():
                return int(as_float)
    elif tp is float:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
    elif tp is str:
        return text
    raise ConfigError(f"{name}={text!r} must be {_type_name(tp)}")


# ----------------------------------------------------------------------------------------------
# Validation: every rule names the field and the value.
# ----------------------------------------------------------------------------------------------


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _validate(c: DQNConfig) -> None:
    require(bool(c.env_id.strip()), "env_id must not be empty")
    require(c.num_envs >= 1, f"num_envs={c.num_envs} must be >= 1")
    for name in (
        "max_episode_steps",
        "total_steps",
        "max_episodes",
        "eval_every",
        "checkpoint_every_episodes",
        "learning_rate_decay_steps",
    ):
        value = getattr(c, name)
        require(value is None or value >= 1, f"{name}={value} must be >= 1 or null")
    require(
        c.time_budget_s is None or c.time_budget_s > 0,
        f"time_budget_s={c.time_budget_s} must be > 0 or null",
    )
    require(
        c.total_steps is not None or c.max_episodes is not None or c.time_budget_s is not None,
        "set at least one budget: total_steps, max_episodes or time_budget_s",
    )
    require(0.0 <= c.gamma <= 1.0, f"gamma={c.gamma} must be in [0, 1]")
    require(c.n_step >= 1, f"n_step={c.n_step} must be >= 1")
    require(c.huber_delta > 0, f"huber_delta={c.huber_delta} must be > 0")
    require(
        c.munchausen_temperature > 0,
        f"munchausen_temperature={c.munchausen_temperature} must be > 0",
    )
    require(
        0.0 <= c.munchausen_alpha <= 1.0, f"munchausen_alpha={c.munchausen_alpha} must be in [0, 1]"
    )
    require(
        c.munchausen_log_policy_floor < 0,
        f"munchausen_log_policy_floor={c.munchausen_log_policy_floor} must be < 0",
    )
    if c.munchausen:
        require(
            not c.double,
            "munchausen=true replaces the max over Q_target(s') (and Double DQN's argmax) with a "
            "softmax: set double=false or munchausen=false",
        )
        require(
            c.n_step == 1,
            f"munchausen=true needs n_step=1 (got {c.n_step}): the log-policy bonus of the "
            "intermediate steps of an n-step return is not stored; set munchausen=false for "
            "n-step returns",
        )
    require(c.l2_coef >= 0, f"l2_coef={c.l2_coef} must be >= 0")
    require(
        c.max_grad_norm is None or c.max_grad_norm > 0,
        f"max_grad_norm={c.max_grad_norm} must be > 0 or null",
    )
    require(len(c.hidden_sizes) >= 1, "hidden_sizes=[] must list at least one layer width")
    require(
        all(h >= 1 for h in c.hidden_sizes), f"hidden_sizes={list(c.hidden_sizes)} must all be >= 1"
    )
    require(c.learning_rate > 0, f"learning_rate={c.learning_rate} must be > 0")
    if c.learning_rate_end is not None:
        require(
            0 <= c.learning_rate_end <= c.learning_rate,
            f"learning_rate_end={c.learning_rate_end} must be in [0, learning_rate]",
        )
        decay_steps = c.learning_rate_decay_steps or c.total_steps
        require(
            decay_steps is not None,
            "learning_rate_end decays over total_steps, so set total_steps or "
            "learning_rate_decay_steps",
        )
        require(
            decay_steps > c.learning_starts,
            f"the learning rate decays until env step {decay_steps}, which must come after "
            f"learning_starts={c.learning_starts}",
        )
    require(c.optimizer_eps > 0, f"optimizer_eps={c.optimizer_eps} must be > 0")
    require(c.buffer_size >= 1, f"buffer_size={c.buffer_size} must be >= 1")
    require(c.batch_size >= 1, f"batch_size={c.batch_size} must be >= 1")
    require(
        c.batch_size <= c.buffer_size,
        f"batch_size={c.batch_size} must be <= buffer_size={c.buffer_size}",
    )
    require(
        c.learning_starts >= c.batch_size,
        f"learning_starts={c.learning_starts} must be >= batch_size={c.batch_size}",
    )
    require(c.train_every >= 1, f"train_every={c.train_every} must be >= 1")
    require(c.gradient_steps >= 1, f"gradient_steps={c.gradient_steps} must be >= 1")
    require(0.0 < c.tau <= 1.0, f"tau={c.tau} must be in (0, 1]")
    require(c.target_update_every >= 1, f"target_update_every={c.target_update_every} must be >= 1")
    require(0.0 <= c.epsilon_start <= 1.0, f"epsilon_start={c.epsilon_start} must be in [0, 1]")
    require(
        0.0 <= c.epsilon_end <= c.epsilon_start,
        f"epsilon_end={c.epsilon_end} must be in [0, epsilon_start={c.epsilon_start}]",
    )
    require(0.0 < c.epsilon_decay <= 1.0, f"epsilon_decay={c.epsilon_decay} must be in (0, 1]")
    require(
        0.0 < c.epsilon_fraction <= 1.0, f"epsilon_fraction={c.epsilon_fraction} must be in (0, 1]"
    )
    require(
        c.epsilon_decay_steps is None or c.epsilon_decay_steps >= 1,
        f"epsilon_decay_steps={c.epsilon_decay_steps} must be >= 1 or null",
    )
    require(
        c.epsilon_schedule != "linear"
        or c.total_steps is not None
        or c.epsilon_decay_steps is not None,
        "epsilon_schedule='linear' decays over total_steps, so set total_steps or epsilon_decay_steps",
    )
    require(
        c.epsilon_decay_episodes >= 1,
        f"epsilon_decay_episodes={c.epsilon_decay_episodes} must be >= 1",
    )
    require(
        c.target_update_every_episodes is None or c.target_update_every_episodes >= 1,
        f"target_update_every_episodes={c.target_update_every_episodes} must be >= 1 or null",
    )
    require(
        c.target_update_every_episodes is None or c.target_update == "hard",
        "target_update_every_episodes needs target_update='hard'",
    )
    require(c.solved_window >= 1, f"solved_window={c.solved_window} must be >= 1")
    require(c.eval_episodes >= 1, f"eval_episodes={c.eval_episodes} must be >= 1")
    require(c.final_eval_episodes >= 0, f"final_eval_episodes={c.final_eval_episodes} must be >= 0")
    require(c.keep_checkpoints >= 0, f"keep_checkpoints={c.keep_checkpoints} must be >= 0")
    require(0 <= c.seed <= MAX_SEED, f"seed={c.seed} must be in [0, {MAX_SEED}]")


# ----------------------------------------------------------------------------------------------
# Building configs: dicts, presets, --set overrides.
# ----------------------------------------------------------------------------------------------


def config_from_dict(values: dict[str, Any], cls: type = DQNConfig) -> Any:
    """Build a config from JSON-style values; unknown keys are an error."""
    unknown = sorted(set(values) - set(field_types(cls)))
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]!r} (see 'deepq train --help' for the keys)"
        )
    return cls(**values)


def parse_overrides(pairs: list[str], cls: type = DQNConfig) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` from ``--set`` into typed values."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} must look like key=value")
        overrides[key.strip()] = parse_value(key.strip(), text, cls)
    return overrides


def preset_names() -> list[str]:
    """Names of the presets shipped in ``deepq/presets``."""
    files = resources.files("deepq").joinpath("presets").iterdir()
    return sorted(p.name.removesuffix(".json") for p in files if p.name.endswith(".json"))


def load_preset(name: str) -> dict[str, Any]:
    """The config values of preset ``name`` (not yet validated)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}")
    text = resources.files("deepq").joinpath("presets", f"{name}.json").read_text()
    return dict(json.loads(text)["config"])


def preset_description(name: str) -> str:
    text = resources.files("deepq").joinpath("presets", f"{name}.json").read_text()
    return str(json.loads(text).get("description", ""))


# The preset used when only ``--env`` is given; other envs train with the generic defaults.
DEFAULT_PRESET_FOR_ENV = {"LunarLander-v3": "lunarlander", "CartPole-v1": "cartpole"}


def default_preset_for(env_id: str | None) -> str | None:
    """The preset used when no ``--preset`` is given (LunarLander's when no env is given either)."""
    return "lunarlander" if env_id is None else DEFAULT_PRESET_FOR_ENV.get(env_id)


def resolve_config(
    preset: str | None = None,
    env_id: str | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> DQNConfig:
    """Preset (or the env's default preset, or generic defaults) + env/seed + overrides."""
    if preset is None:
        preset = default_preset_for(env_id)
    values = load_preset(preset) if preset is not None else {}
    if env_id is not None:
        values["env_id"] = env_id
    if seed is not None:
        values["seed"] = seed
    values.update(overrides or {})
    return config_from_dict(values)


# ----------------------------------------------------------------------------------------------
# The other algorithms' configs (their loops are in tabular.py and reinforce.py).
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QLearningConfig:
    """Everything that defines a tabular Q-learning run."""

    env_id: str = documented(
        "Gymnasium env id with Discrete observations and actions.", "FrozenLake-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None
    )
    max_episodes: int | None = documented("Stop after this many training episodes.", 5000)
    total_steps: int | None = documented(
        "Stop after this many env steps (null: no step limit).", None
    )
    gamma: float = documented("Discount factor in [0, 1].", 0.99)
    alpha0: float = documented(
        "Initial learning rate; step t uses alpha0 / (1 + t * alpha_decay).", 0.5
    )
    alpha_decay: float = documented("Learning-rate decay per update (0: constant).", 0.0)
    initial_q: float = documented("Initial value of every table cell.", 0.0)
    epsilon_start: float = documented("Initial exploration rate in [0, 1].", 1.0)
    epsilon_end: float = documented("Final exploration rate in [0, epsilon_start].", 0.05)
    epsilon_decay_episodes: int = documented(
        "Episodes over which ε falls linearly to its end.", 2000
    )
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented("Episodes in the solved moving average.", 100)
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_episodes: int | None = documented(
        "Greedy evaluation every this many training episodes (null: only at the end).", 500
    )
    eval_episodes: int = documented("Episodes per periodic greedy evaluation.", 100)
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100
    )
    seed: int = documented("Seed for exploration and env resets.", 0)

    def __post_init__(self) -> None:
        coerce_fields(self)
        _validate_q_learning(self)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _validate_q_learning(c: QLearningConfig) -> None:
    require(bool(c.env_id.strip()), "env_id must not be empty")
    for name in ("max_episodes", "total_steps", "max_episode_steps", "eval_every_episodes"):
        value = getattr(c, name)
        require(value is None or value >= 1, f"{name}={value} must be >= 1 or null")
    require(
        c.max_episodes is not None or c.total_steps is not None, "set max_episodes or total_steps"
    )
    require(0.0 <= c.gamma <= 1.0, f"gamma={c.gamma} must be in [0, 1]")
    require(0.0 < c.alpha0 <= 1.0, f"alpha0={c.alpha0} must be in (0, 1]")
    require(c.alpha_decay >= 0, f"alpha_decay={c.alpha_decay} must be >= 0")
    require(0.0 <= c.epsilon_start <= 1.0, f"epsilon_start={c.epsilon_start} must be in [0, 1]")
    require(
        0.0 <= c.epsilon_end <= c.epsilon_start,
        f"epsilon_end={c.epsilon_end} must be in [0, epsilon_start={c.epsilon_start}]",
    )
    for name in ("epsilon_decay_episodes", "solved_window", "eval_episodes"):
        require(getattr(c, name) >= 1, f"{name}={getattr(c, name)} must be >= 1")
    require(c.final_eval_episodes >= 0, f"final_eval_episodes={c.final_eval_episodes} must be >= 0")
    require(0 <= c.seed <= MAX_SEED, f"seed={c.seed} must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class ReinforceConfig:
    """Everything that defines a REINFORCE run."""

    env_id: str = documented(
        "Gymnasium env id (1-D Box observations, Discrete actions).", "CartPole-v1"
    )
    max_episode_steps: int | None = documented(
        "Cut episodes at this length (null: the env's own).", None
    )
    iterations: int = documented("Policy updates (each on episodes_per_update episodes).", 150)
    episodes_per_update: int = documented("Episodes played (side by side) per update.", 10)
    gamma: float = documented("Discount factor in [0, 1].", 0.95)
    normalize_advantages: bool = documented(
        "Normalise discounted returns across the update's episodes (mean 0, std 1).", True
    )
    hidden_sizes: tuple[int, ...] = documented("Hidden layer widths of the policy MLP.", (32,))
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = documented(
        "Hidden activation.", "elu"
    )
    learning_rate: float = documented("Adam learning rate (> 0).", 0.01)
    temperature: float = documented(
        "Sampling temperature while training: probabilities p^(1/T), renormalised (1: as is).", 1.0
    )
    imitation_policy: Literal["none", "lean", "lean+spin"] = documented(
        "Warm-up: first imitate this hand-written CartPole policy (none: skip).", "none"
    )
    imitation_iterations: int = documented(
        "Warm-up gradient steps (one per parallel env step).", 1000
    )
    imitation_envs: int = documented("Parallel envs stepped during the warm-up.", 50)
    solved_threshold: float | None = documented(
        "Mean return over solved_window episodes that counts as solved (null: the env's).", None
    )
    solved_window: int = documented("Episodes in the solved moving average.", 100)
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every_iterations: int | None = documented(
        "Greedy evaluation every this many updates (null: only at the end).", 10
    )
    eval_episodes: int = documented("Episodes per periodic greedy evaluation.", 20)
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100
    )
    seed: int = documented("Seed for the network, action sampling and env resets.", 0)

    def __post_init__(self) -> None:
        coerce_fields(self)
        _validate_reinforce(self)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _validate_reinforce(c: ReinforceConfig) -> None:
    require(bool(c.env_id.strip()), "env_id must not be empty")
    for name in ("max_episode_steps", "eval_every_iterations"):
        value = getattr(c, name)
        require(value is None or value >= 1, f"{name}={value} must be >= 1 or null")
    for name in (
        "iterations",
        "episodes_per_update",
        "imitation_envs",
        "solved_window",
        "eval_episodes",
    ):
        require(getattr(c, name) >= 1, f"{name}={getattr(c, name)} must be >= 1")
    require(
        c.imitation_iterations >= 0, f"imitation_iterations={c.imitation_iterations} must be >= 0"
    )
    require(0.0 <= c.gamma <= 1.0, f"gamma={c.gamma} must be in [0, 1]")
    require(
        len(c.hidden_sizes) >= 1 and min(c.hidden_sizes) >= 1, "hidden_sizes must list widths >= 1"
    )
    require(c.learning_rate > 0, f"learning_rate={c.learning_rate} must be > 0")
    require(c.temperature > 0, f"temperature={c.temperature} must be > 0")
    require(c.final_eval_episodes >= 0, f"final_eval_episodes={c.final_eval_episodes} must be >= 0")
    require(0 <= c.seed <= MAX_SEED, f"seed={c.seed} must be in [0, {MAX_SEED}]")
