"""The DQN config: one frozen, typed dataclass whose fields carry their help, defaults and rules.

Values come from a preset (a JSON data file in ``deepq/presets/``) and ``--set key=value``
overrides; see :mod:`deepq.run.config` for how they are checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from deepq.errors import ConfigError
from deepq.run.atari import is_atari, is_pixel_game
from deepq.run.config import (
    MAX_EVAL_EPISODES,
    MAX_LAYERS,
    MAX_SEED,
    MAX_WIDTH,
    MAX_WINDOW,
    Config,
    documented,
    require,
    require_env_id,
)

# Bounds of the keys that size memory, generous for any real run: each is checked on its own,
# and run_memory_bytes adds up what they allocate before anything is.
MAX_N_STEP = 100
MAX_ATOMS = 1000  # C51 takes 51, QR-DQN 200
MAX_SUPPORT = 1e6  # |v_min|, |v_max|: returns far beyond any env's
MAX_BUFFER = 10**9
MAX_BATCH = 1 << 16


@dataclass(frozen=True)
class DQNConfig(Config):
    """Everything that defines a DQN run. Env steps are counted over all parallel envs."""

    env_id: str = documented(
        "Gymnasium environment id (Box observations, Discrete actions).",
        "LunarLander-v3",
        group="environment",
    )
    num_envs: int = documented(
        "Parallel environments stepped together (Gymnasium sync vector env).", 1, ge=1, le=1024
    )
    max_episode_steps: int | None = documented(
        "Truncate episodes after this many steps (TimeLimit); null keeps the env's own limit.",
        None,
        ge=1,
    )
    time_feature: bool = documented(
        "Append the fraction of the episode's step limit used so far to each observation.", False
    )
    time_limit_terminal: bool = documented(
        "Learn from an episode cut by its time limit as if it had terminated (no bootstrap), as "
        "the robust-DQN post and the LunarLander lab do; false (the default) bootstraps through "
        "the cut, which is right unless the observation says how much time is left (Pardo et "
        "al. 2018). Returns and evaluations are the same either way.",
        False,
    )
    sticky_actions: bool | None = documented(
        "Repeat the previous action instead of the chosen one at random, as the game's "
        "published protocol does: true gives Atari (ALE/ ids) Machado et al.'s probability 0.25 "
        "and MinAtar its own 0.1; false turns it off; null takes the game's usual setting (off "
        "for Atari, as the Hands-On ML chapter's NoFrameskip-v4; on for MinAtar, as its paper).",
        None,
    )
    life_loss_terminal: bool = documented(
        "Atari: learn from the loss of a life as if the episode had ended (Mnih et al. 2015); "
        "episodes, returns and evaluations still count whole games.",
        False,
    )
    clip_rewards: bool = documented(
        "Learn from the sign of each reward (-1, 0, +1), as DQN does on Atari; logs and "
        "evaluations report the raw scores.",
        False,
    )
    total_steps: int | None = documented(
        "Stop after this many env steps (null: no step limit).",
        500_000,
        ge=1,
        group="budgets (whichever comes first ends the run)",
    )
    max_episodes: int | None = documented(
        "Stop after this many finished training episodes.", None, ge=1
    )
    time_budget_s: float | None = documented(
        "Stop after this many seconds of training wall-clock (evaluation excluded).", None, gt=0
    )
    gamma: float = documented(
        "Discount factor.", 0.99, ge=0, le=1, group="Q-learning targets and loss"
    )
    n_step: int = documented(
        "Bootstrap n steps ahead: target = r_t + ... + γ^(n-1) r_(t+n-1) + γ^n Q(s_(t+n)); 1 is plain DQN.",
        1,
        ge=1,
        le=MAX_N_STEP,
    )
    double: bool = documented(
        "Double DQN: the online net picks a', the target net values it.", False
    )
    munchausen: bool = documented(
        "Munchausen DQN: a soft (softmax) target plus a scaled log-policy bonus on the reward.",
        False,
    )
    munchausen_temperature: float = documented(
        "Munchausen entropy temperature tau of the softmax policy softmax(Q_target / tau).",
        0.03,
        gt=0,
    )
    munchausen_alpha: float = documented(
        "Munchausen scaling alpha of the log-policy bonus alpha * tau * ln pi(a|s).",
        0.9,
        ge=0,
        le=1,
    )
    munchausen_log_policy_floor: float = documented(
        "Munchausen clipping: tau * ln pi(a|s) is floored at this value.", -1.0, lt=0
    )
    num_atoms: int = documented(
        "C51 (Bellemare et al. 2017) when > 1: learn the distribution of returns on this many "
        "atoms from v_min to v_max (51 in the paper), with a cross-entropy loss instead of "
        "`loss`; 1 learns Q-values.",
        1,
        ge=1,
        le=MAX_ATOMS,
    )
    v_min: float = documented(
        "C51: the lowest return the distribution can hold.", -10.0, ge=-MAX_SUPPORT, le=MAX_SUPPORT
    )
    v_max: float = documented(
        "C51: the highest return the distribution can hold.", 10.0, ge=-MAX_SUPPORT, le=MAX_SUPPORT
    )
    loss: Literal["mse", "huber"] = documented("TD error loss: mse or huber.", "mse")
    huber_delta: float = documented(
        "Huber loss threshold (quadratic inside, linear outside).", 1.0, gt=0
    )
    l2_coef: float = documented(
        "L2 penalty coefficient on the weight matrices (0 disables).", 0.0, ge=0
    )
    max_grad_norm: float | None = documented(
        "Clip gradients to this global norm (null disables).", None, gt=0
    )
    hidden_sizes: tuple[int, ...] = documented(
        "Hidden layer widths of the Q-network MLP.", (64, 64), ge=1, le=MAX_WIDTH, group="network"
    )
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = documented(
        "Hidden layer activation.", "relu"
    )
    dueling: bool = documented(
        "Dueling head: Q = V + A - mean(A) (see dueling_aggregation).", False
    )
    dueling_aggregation: Literal["mean", "max"] = documented(
        "What the dueling head subtracts from A: mean (Wang et al.'s choice, deepq's default) or "
        "max (the Hands-On ML chapter's, so V is the greedy action's value).",
        "mean",
    )
    layer_norm: bool = documented(
        "LayerNorm after each hidden Dense layer (before the activation).", False
    )
    noisy: bool = documented(
        "Noisy nets (Fortunato et al. 2018): every Dense layer after the encoder gets learned, "
        "factorised Gaussian noise on its weights, drawn anew at each acting step and each "
        "update; exploration comes from the noise, so epsilon is 0 after random_steps. Greedy "
        "evaluations use the layers' mean.",
        False,
    )
    noisy_sigma0: float = documented(
        "Noisy nets: the noise scale sigma starts at noisy_sigma0 / sqrt(inputs).", 0.5, gt=0
    )
    optimizer: Literal["adam", "rmsprop"] = documented(
        "Optimiser: adam or rmsprop.", "adam", group="optimiser"
    )
    learning_rate: float = documented("Optimiser learning rate.", 1e-3, gt=0)
    learning_rate_end: float | None = documented(
        "Decay the learning rate linearly to this value, reached at env step "
        "learning_rate_decay_steps (null: constant learning rate).",
        None,
    )
    learning_rate_decay_steps: int | None = documented(
        "Env steps by which learning_rate_end is reached (null: total_steps).", None, ge=1
    )
    optimizer_eps: float = documented("Optimiser epsilon (numerical stability term).", 1e-8, gt=0)
    rmsprop_decay: float = documented(
        "RMSprop: decay of the running mean of squared gradients (rho).", 0.9, ge=0, lt=1
    )
    rmsprop_momentum: float = documented("RMSprop: momentum (0: none).", 0.0, ge=0, lt=1)
    rmsprop_centered: bool = documented(
        "RMSprop: divide by the gradients' running variance instead of their mean square.", False
    )
    rmsprop_eps_in_sqrt: bool = documented(
        "RMSprop: add optimizer_eps inside the square root (TensorFlow 1, as the Hands-On ML "
        "chapter's Breakout agent) or, false, outside it (PyTorch, as the MinAtar paper's).",
        True,
    )
    buffer_size: int = documented(
        "Replay buffer capacity in transitions.",
        100_000,
        ge=1,
        le=MAX_BUFFER,
        group="replay and learning steps",
    )
    save_replay: bool = documented(
        "Save the replay buffer in training checkpoints (what makes a resume exact; an Atari "
        "buffer of 1M frames is ~7 GB on disk). false: a resume starts with an empty buffer.",
        True,
    )
    prioritized: bool = documented(
        "Prioritized experience replay (Schaul et al. 2016, proportional): sample transitions "
        "in proportion to (|TD error| + priority_eps) ** priority_alpha, new ones at the "
        "largest priority so far, and weight each sample's loss by (N * P) ** -beta / max.",
        False,
    )
    priority_alpha: float = documented(
        "Prioritized replay: how strongly priorities shape sampling (0: uniform, 1: in "
        "proportion to |TD error|).",
        0.6,
        ge=0,
        le=1,
    )
    priority_beta0: float = documented(
        "Prioritized replay: the importance-weight exponent beta at the start; it rises "
        "linearly to 1 (full correction) at priority_beta_steps.",
        0.4,
        ge=0,
        le=1,
    )
    priority_beta_steps: int | None = documented(
        "Prioritized replay: env steps by which beta reaches 1 (null: total_steps).", None, ge=1
    )
    priority_eps: float = documented(
        "Prioritized replay: added to |TD error| so no transition's priority is 0.", 1e-6, gt=0
    )
    batch_size: int = documented("Minibatch size per gradient step.", 64, ge=1, le=MAX_BATCH)
    learning_starts: int = documented(
        "Env steps collected before learning starts (>= batch_size).", 1000
    )
    train_every: int = documented("Learn every this many env steps.", 4, ge=1)
    train_every_episodes: int | None = documented(
        "Learn once every this many finished episodes instead of every train_every env steps "
        "(the Hands-On ML chapter's CartPole DQNs: one gradient step per episode); null: count "
        "env steps.",
        None,
        ge=1,
    )
    learning_starts_episodes: int = documented(
        "Finished episodes needed before learning starts, on top of learning_starts (the "
        "chapter's `if episode > 50` is 52: its episodes count from 0).",
        0,
        ge=0,
    )
    gradient_steps: int = documented("Gradient steps per learning step.", 1, ge=1, le=1000)
    target_update: Literal["soft", "hard"] = documented(
        "soft: target += tau * (online - target) after every gradient step; "
        "hard: copy online into target every target_update_every env steps.",
        "soft",
        group="target network",
    )
    tau: float = documented("Soft target update rate.", 0.005, gt=0, le=1)
    target_update_every: int = documented("Env steps between hard target copies.", 1000, ge=1)
    target_update_every_episodes: int | None = documented(
        "Hard target copies every this many finished episodes instead (the Hands-On ML chapter's CartPole "
        "DQNs); null: count env steps.",
        None,
        ge=1,
    )
    epsilon_schedule: Literal["exponential", "linear", "linear_episodes", "constant"] = documented(
        "exponential: start * decay**episodes (per finished episode), floored at epsilon_end; "
        "linear: start -> end over epsilon_fraction of total_steps; linear_episodes: "
        "max(start * (1 - episodes / epsilon_decay_episodes), end); constant: epsilon_start.",
        "linear",
        group="exploration",
    )
    epsilon_start: float = documented("Initial exploration rate.", 1.0, ge=0, le=1)
    epsilon_end: float = documented("Final (minimum) exploration rate in [0, epsilon_start].", 0.01)
    epsilon_decay: float = documented(
        "Per-episode multiplicative decay (exponential schedule).", 0.995, gt=0, le=1
    )
    epsilon_fraction: float = documented(
        "Fraction of total_steps over which epsilon decays (linear schedule).", 0.1, gt=0, le=1
    )
    epsilon_decay_steps: int | None = documented(
        "Env steps over which epsilon decays (linear schedule); overrides epsilon_fraction.",
        None,
        ge=1,
    )
    epsilon_decay_episodes: int = documented(
        "Episodes over which epsilon decays (linear_episodes schedule).", 500, ge=1
    )
    random_steps: int = documented(
        "Env steps of purely random actions first (TF-Agents' initial_collect_policy, as the "
        "Hands-On ML chapter's Breakout DQN collects before training), whatever the schedule says; "
        "the schedule itself still counts from step 0.",
        0,
        ge=0,
    )
    solved_threshold: float | None = documented(
        "Solved when the mean return of the last solved_window training episodes reaches this; "
        "null uses the env spec's reward_threshold.",
        None,
        group="solving, evaluation, checkpoints",
    )
    solved_window: int = documented(
        "Episodes in the solved moving average.", 100, ge=1, le=MAX_WINDOW
    )
    stop_when_solved: bool = documented("End the run as soon as it is solved.", False)
    eval_every: int | None = documented(
        "Evaluation every this many env steps; the best one is kept (null disables).",
        10_000,
        ge=1,
    )
    eval_episodes: int = documented(
        "Episodes per periodic evaluation.", 10, ge=1, le=MAX_EVAL_EPISODES
    )
    eval_epsilon: float = documented(
        "Probability of a random action in evaluations (periodic, final and `deepq eval`'s "
        "default); 0: greedy. The Atari presets take 0.05, as Mnih et al. (2015) evaluated: "
        "a greedy Breakout agent that does not press FIRE after a lost life waits until the "
        "episode is cut at 27,000 steps.",
        0.0,
        ge=0.0,
        le=1.0,
    )
    stop_eval_mean: float | None = documented(
        "End the run at the first periodic greedy evaluation whose mean reaches this (that "
        "agent is then the kept one, `best`): a stop rule on the agent a user keeps, where "
        "stop_when_solved watches the ε-greedy training episodes. null: no such stop.",
        None,
    )
    stop_eval_episodes: int = documented(
        "With stop_eval_mean: an evaluation that reaches it, or that would become the best at "
        "or above the solved threshold, is first extended to this many episodes (more "
        "selection seeds), and counts (stops the run, becomes best) by their mean.",
        100,
        ge=1,
        le=MAX_EVAL_EPISODES,
    )
    best_eval_episodes: int | None = documented(
        "A periodic evaluation that would become the best so far is first extended to this "
        "many episodes (further selection seeds) and is kept, or not, by their mean: in a game "
        "as noisy as MinAtar's, a 10-episode mean swings by +-20 and a lucky one kept as best "
        "shuts out better agents after it. null (or not above eval_episodes): kept by its "
        "eval_episodes.",
        None,
        ge=1,
        le=MAX_EVAL_EPISODES,
    )
    final_eval_episodes: int = documented(
        "Episodes of the greedy evaluation at the end of the run.", 100, ge=0, le=MAX_EVAL_EPISODES
    )
    checkpoint_every_episodes: int | None = documented(
        "Write the latest checkpoint every this many episodes (null: only at the end).", 100, ge=1
    )
    keep_checkpoints: int | None = documented(
        "Periodic checkpoints kept as checkpoints/step-<env steps> besides latest, best and "
        "final: the newest N; 0 keeps every one (the robust-DQN post's backups, each a training "
        "state with its replay); null keeps none.",
        3,
        ge=0,
    )
    seed: int = documented(
        "Seed for the networks, replay sampling, exploration and env resets.", 0, ge=0, le=MAX_SEED
    )

    def validate(self) -> None:
        """The rules that tie fields together (each field's own bounds are beside it)."""
        c = self
        require_env_id(c.env_id)
        require(
            c.total_steps is not None or c.max_episodes is not None or c.time_budget_s is not None,
            "set at least one budget: total_steps, max_episodes or time_budget_s",
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
        require(
            c.stop_eval_mean is None or c.eval_every is not None,
            "stop_eval_mean stops at a periodic greedy evaluation: set eval_every too",
        )
        require(
            1 <= len(c.hidden_sizes) <= MAX_LAYERS,
            f"hidden_sizes must list 1 to {MAX_LAYERS} layer widths, not {len(c.hidden_sizes)}",
        )
        if c.num_atoms > 1:
            require(
                not c.munchausen,
                "num_atoms > 1 (C51) and munchausen=true are two different targets: set "
                "munchausen=false or num_atoms=1",
            )
            require(c.v_min < c.v_max, f"v_min={c.v_min} must be below v_max={c.v_max}")
        if c.learning_rate_end is not None:
            require(
                c.train_every_episodes is None,
                "learning_rate_end decays by env steps, which train_every_episodes does not "
                "tie to gradient steps: set one of them to null",
            )
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
        require(
            c.batch_size <= c.buffer_size,
            f"batch_size={c.batch_size} must be <= buffer_size={c.buffer_size}",
        )
        require(
            c.learning_starts >= c.batch_size,
            f"learning_starts={c.learning_starts} must be >= batch_size={c.batch_size}",
        )
        require(
            0.0 <= c.epsilon_end <= c.epsilon_start,
            f"epsilon_end={c.epsilon_end} must be in [0, epsilon_start={c.epsilon_start}]",
        )
        require(
            c.epsilon_schedule != "linear"
            or c.total_steps is not None
            or c.epsilon_decay_steps is not None,
            "epsilon_schedule='linear' decays over total_steps, so set total_steps or epsilon_decay_steps",
        )
        require(
            not c.life_loss_terminal or is_atari(c.env_id),
            f"life_loss_terminal=true needs an Atari game (ALE/ ids) that counts lives, not {c.env_id}",
        )
        require(
            c.sticky_actions is None or is_pixel_game(c.env_id),
            f"sticky_actions applies to Atari (ALE/) and MinAtar games, not {c.env_id}: set it to null",
        )
        require(
            not c.prioritized or c.priority_beta_steps is not None or c.total_steps is not None,
            "prioritized=true anneals beta to 1 over total_steps, so set total_steps or "
            "priority_beta_steps",
        )
        require(
            c.target_update_every_episodes is None or c.target_update == "hard",
            "target_update_every_episodes needs target_update='hard'",
        )


def samples_per_learning_call(config: DQNConfig) -> int:
    """The most transitions one learning call samples: ``gradient_steps`` batches for each
    multiple of ``train_every`` that one loop step (``num_envs`` env steps) can cross."""
    c = config
    return c.gradient_steps * (c.num_envs // c.train_every + 1) * c.batch_size


def schedules_over_total_steps(config: DQNConfig) -> list[str]:
    """The schedules this config stretches over ``total_steps`` (their own length unset): a run
    continued to another total would change them midway, so a resume refuses that."""
    c, schedules = config, []
    if c.epsilon_schedule == "linear" and c.epsilon_decay_steps is None and not c.noisy:
        schedules.append("epsilon's decay (over epsilon_fraction of total_steps)")
    if c.learning_rate_end is not None and c.learning_rate_decay_steps is None:
        schedules.append("the learning rate's decay")
    if c.prioritized and c.priority_beta_steps is None:
        schedules.append("prioritized replay's beta")
    return schedules


def config_from_dict(values: dict[str, Any], cls: type[Config] = DQNConfig) -> Any:
    """``cls.from_dict(values)``: a DQN config unless another config class is named."""
    return cls.from_dict(values)


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
DEFAULT_PRESET_FOR_ENV = {
    "LunarLander-v3": "lunarlander",
    "CartPole-v1": "cartpole",
    "ALE/Breakout-v5": "breakout-adam",  # the chapter's agent with Adam: see docs/pixels.md
    "ALE/Pong-v5": "pong-adam",
    "MinAtar/Asterix-v0": "minatar-asterix",
    "MinAtar/Breakout-v0": "minatar-breakout",
    "MinAtar/Freeway-v0": "minatar-freeway",
    "MinAtar/Seaquest-v0": "minatar-seaquest",
    "MinAtar/SpaceInvaders-v0": "minatar-space-invaders",
}


def default_preset_for(env_id: str | None) -> str | None:
    """The preset used when no ``--preset`` is given (LunarLander's when no env is given either)."""
    return "lunarlander" if env_id is None else DEFAULT_PRESET_FOR_ENV.get(env_id)


def preset_choice(preset: str | None, env_id: str | None) -> str:
    """Which preset a run starts from, and why: a run's first line says it."""
    if preset is not None:
        return f"preset {preset} (--preset)"
    chosen = default_preset_for(env_id)
    if chosen is None:
        return f"no preset: {env_id} trains from deepq's generic defaults (see deepq train --help)"
    why = "the default" if env_id is None else f"{env_id}'s preset, picked by --env"
    return f"preset {chosen} ({why})"


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
