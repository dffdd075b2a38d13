"""The ``deepq`` command line. Exit codes: 0 success, 1 failure, 2 usage/config error, 130 interrupted.

Only the config module is imported up front; JAX and Gymnasium load inside the commands, so
help and bad arguments answer at once, before any environment or network exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from deepq.classic.configs import QLearningConfig, ReinforceConfig
from deepq.dqn.config import (
    DEFAULT_PRESET_FOR_ENV,
    DQNConfig,
    preset_choice,
    preset_description,
    preset_names,
)
from deepq.errors import DeepQError, UsageError
from deepq.run.config import MAX_SEED, Bounds
from deepq.run.signals import (
    ProgramInterrupted,
    exit_code,
    install_program_handlers,
    restore_handlers,
    take_missed_signal,
)
from deepq.shipped import PRETRAINED_NAMES
from deepq.version import __version__

# What --policy takes (video, play); the names are the hand-written policies' (classic.policies).
POLICY_HELP = (
    "a hand-written or searched CartPole policy instead of an agent: lean, angle+velocity, "
    "lean+spin or linear; weights w1,w2,w3,w4[,b] (push right when w·obs + b > 0); or a deepq "
    "search result.json"
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``deepq train: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())[:500]  # one line, whatever was typed
        # "argument --episodes: 0 must be >= 1" -> "--episodes 0 must be >= 1"
        message = re.sub(r"^argument (-[\w-]+)(?:/[\w-]+)*: (?=\S+ must be )", r"\1 ", message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


MAX_EPISODES = 10_000_000


def integer(**limits: float) -> Callable[[str], int]:
    """An argparse type: an integer within ``limits`` (``ge``, ``gt``, ``le``, ``lt``), else the
    one-line usage error ``--flag VALUE must be >= 1``."""
    bounds = Bounds.of(**limits)

    def parse(text: str) -> int:
        value = int(text)  # ValueError: argparse says "invalid int value: 'x'"
        if not bounds.holds(value):
            raise argparse.ArgumentTypeError(f"{value} must be {bounds.text()}")
        return value

    parse.__name__ = "int"
    return parse


def number(**limits: float) -> Callable[[str], float]:
    """An argparse type: a finite number within ``limits``; NaN and infinities are refused."""
    bounds = Bounds.of(**limits)

    def parse(text: str) -> float:
        value = float(text)  # ValueError: argparse says "invalid float value: 'x'"
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {bounds.text()}")
        if not bounds.holds(value):
            raise argparse.ArgumentTypeError(f"{text} must be {bounds.text()}")
        return value

    parse.__name__ = "float"
    return parse


SEED = integer(ge=0, le=MAX_SEED)
EPISODES = integer(ge=1, le=MAX_EPISODES)
STEPS = integer(ge=1, le=10**12)


def _add_epsilon(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epsilon",
        type=number(ge=0, le=1),
        default=None,
        metavar="E",
        help="take a random action with probability E (default: the run's eval_epsilon, "
        "0.05 for the Atari presets as Mnih et al. 2015 evaluated, else 0: greedy)",
    )


def _add_pretrained(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pretrained",
        metavar="NAME",
        choices=PRETRAINED_NAMES,
        help="a pretrained agent shipped with deepq instead of PATH: "
        + ", ".join(PRETRAINED_NAMES),
    )


def _add_env_module(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: a plugin that registers Gymnasium environments. The only way "
        "deepq imports a module you name; env ids never do, so 'module:Env' is refused",
    )


def _train_epilog() -> str:
    lines = ["presets for --algo dqn (--preset NAME):"]
    for name in preset_names():
        lines.append(f"  {name:<20} {textwrap.shorten(preset_description(name), 70)}")
    for algo, cls in (("dqn", DQNConfig), ("reinforce", ReinforceConfig),
                      ("q-learning", QLearningConfig)):  # fmt: skip
        lines += [
            "",
            f"--algo {algo} config keys (--set KEY=VALUE; lists as 64,64; null for none):",
        ]
        for group, rows in cls.field_groups():
            if group is not None:
                lines.append(f"  [{group}]")
            for name, default, text in rows:
                lines.append(f"  {name} (default {default})")
                lines += textwrap.wrap(
                    text, 90, initial_indent="      ", subsequent_indent="      "
                )
    lines += [
        "",
        "With neither --env nor --preset the 'lunarlander' preset is used; --env alone picks that",
        "env's preset when there is one (CartPole-v1: 'cartpole') and the generic defaults otherwise.",
        "The run directory gets config.json, progress.csv, tb/ (TensorBoard), checkpoints/",
        "(latest, best, final), summary.json, history.png and report.html.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepq",
        description="Deep Q-learning on Gymnasium environments, in JAX.",
        epilog="Run 'deepq COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"deepq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    by_env = ", ".join(f"{env} -> {name}" for env, name in DEFAULT_PRESET_FOR_ENV.items())
    train = commands.add_parser(
        "train",
        help="train an agent: DQN (default), REINFORCE or tabular Q-learning",
        description="Train (--algo dqn, reinforce or q-learning); writes a run directory ending with "
        "report.html, and prints the greedy evaluation of its best checkpoint.",
        epilog=_train_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--algo",
        choices=("dqn", "reinforce", "q-learning"),
        default="dqn",
        help="algorithm (default dqn); q-learning is tabular, for Discrete-state envs",
    )
    train.add_argument(
        "--env", metavar="ID", help="Gymnasium env id (Box observations, Discrete actions)"
    )
    train.add_argument(
        "--preset",
        metavar="NAME",
        help=f"config preset: {', '.join(preset_names())} (default: lunarlander, or with --env "
        f"that env's preset: {by_env}; other envs train from the generic defaults; a run's "
        "first line says which)",
    )
    train.add_argument("--seed", type=int, metavar="N", help="seed (overrides the preset's)")
    train.add_argument(
        "--run-dir", metavar="DIR", help="where to write the run (default: runs/<timestamp>)"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key",
    )
    train.add_argument(
        "--stop-when-solved",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop once the mean of the last solved_window training returns reaches the threshold",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no live progress bar (plain lines instead)"
    )
    train.add_argument(
        "--no-report", action="store_true", help="do not write report.html at the end of the run"
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config, the env and the memory the run needs, print the config, and stop",
    )
    _add_env_module(train)
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its latest checkpoint, exactly as if uninterrupted "
        "(takes no other config options: the run's own config is used)",
    )
    train.add_argument(
        "--total-steps",
        type=integer(ge=1, le=10**15),
        metavar="N",
        help="with --resume: continue the run, interrupted or finished, to N env steps in all "
        "(as if started with total_steps=N; a finished run's final checkpoint is kept as "
        "end-<steps>)",
    )

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a trained agent (greedily, or ε-greedily with --epsilon)",
        description="Returns of a run's best checkpoint (or of a checkpoint directory); with no "
        "PATH, of the pretrained LunarLander agent shipped with deepq. Greedy, unless the run's "
        "eval_epsilon or --epsilon says otherwise.",
    )
    evaluate.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        help="run directory or checkpoint directory (default: the pretrained LunarLander agent)",
    )
    _add_pretrained(evaluate)
    evaluate.add_argument(
        "--episodes", type=EPISODES, default=100, metavar="N", help="episodes (default 100)"
    )
    evaluate.add_argument(
        "--seed",
        type=SEED,
        default=None,
        metavar="N",
        help="episode k is reset with seed N + k (default: the held-out eval seeds)",
    )
    _add_epsilon(evaluate)
    evaluate.add_argument(
        "--json",
        action="store_true",
        help='print {"mean","std","min","max","episodes","returns"} as JSON',
    )
    _add_env_module(evaluate)

    env = commands.add_parser(
        "env",
        help="describe an environment and show one step",
        description="Any Gymnasium env: its observation and action spaces (with names where known), "
        "the deepq algorithms that train on it, and a one-step table; --frame saves a rendered frame.",
    )
    env.add_argument("env_id", metavar="ID", help="Gymnasium env id, e.g. LunarLander-v3")
    env.add_argument(
        "--action", type=integer(ge=-(1 << 16), le=1 << 16), metavar="A",
        help="Discrete action for the one step (default: the first; other action spaces: a "
        "seeded sample)",
    )  # fmt: skip
    env.add_argument("--seed", type=SEED, default=0, metavar="N", help="reset seed (default 0)")
    env.add_argument(
        "--frame", metavar="FILE.png", help="also save the frame env.render() draws after the reset"
    )
    _add_env_module(env)

    envs = commands.add_parser(
        "envs",
        help="list registered environments with their spaces",
        description="Every registered Gymnasium env (the Hands-On ML chapter's registry.all()), with "
        "its observation and action spaces and the deepq algorithms that train on it; envs that "
        "cannot be made here say why (a missing package, say).",
    )
    envs.add_argument(
        "pattern", nargs="?", metavar="PATTERN",
        help="only ids matching this glob (*Lander*) or containing this text, any case",
    )  # fmt: skip
    envs.add_argument(
        "--available", action="store_true", help="leave out envs that cannot be made here"
    )
    _add_env_module(envs)

    plot = commands.add_parser(
        "plot",
        help="plot the training history of one or more runs",
        description="Per-episode return and its moving average, the solve threshold, where the run was "
        "solved and the greedy evaluations; several run directories give one figure with the mean ± std "
        "across them.",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="one or more run directories")
    plot.add_argument(
        "--window",
        type=EPISODES,
        metavar="N",
        help="moving-average window (default: 10%% of the episodes)",
    )
    plot.add_argument(
        "--first", type=integer(ge=1, le=10**15), metavar="EP", help="first episode shown"
    )
    plot.add_argument(
        "--last", type=integer(ge=1, le=10**15), metavar="EP", help="last episode shown"
    )
    only = plot.add_mutually_exclusive_group()
    only.add_argument("--rolling-only", action="store_true", help="only the moving average")
    only.add_argument("--data-only", action="store_true", help="only the per-episode returns")
    plot.add_argument(
        "--out",
        metavar="FILE.png",
        help="output file (default: RUN_DIR/history.png, or ./history.png for several)",
    )

    video = commands.add_parser(
        "video",
        help="render episodes of an agent to MP4 or GIF",
        description="Rollouts of a run's best checkpoint (or of a checkpoint directory) rendered to "
        "MP4 or GIF, each frame showing the episode and its return so far. Needs no display. "
        "Greedy, unless the run's eval_epsilon or --epsilon says otherwise.",
    )
    video.add_argument(
        "path", metavar="PATH", nargs="?", help="run directory or checkpoint directory"
    )
    video.add_argument("--policy", metavar="POLICY", help=POLICY_HELP)
    _add_pretrained(video)
    video.add_argument(
        "--episodes",
        type=EPISODES,
        default=1,
        metavar="N",
        help="episodes (default 1)",
    )
    video.add_argument(
        "--seed",
        type=SEED,
        default=0,
        metavar="N",
        help="episode k is reset with seed N + k (default 0)",
    )
    video.add_argument(
        "--fps",
        type=integer(ge=1, le=240),
        default=30,
        metavar="N",
        help="frames per second (default 30)",
    )
    video.add_argument(
        "--max-frames",
        type=integer(ge=1),
        default=9000,
        metavar="N",
        help="stop after N frames, mid-episode if need be (default 9000: 5 minutes at 30 fps; "
        "an Atari agent that never serves plays 27,000 steps)",
    )
    _add_epsilon(video)
    _add_env_module(video)
    video.add_argument(
        "--out",
        metavar="FILE",
        help="FILE.mp4 or FILE.gif (default: RUN_DIR/video.mp4, or ./video.mp4)",
    )

    play = commands.add_parser(
        "play",
        help="watch an agent play (a window, or a video where there is no display)",
        description="Episodes of a run's best checkpoint (or of a checkpoint directory; with no "
        "PATH, the pretrained LunarLander agent) shown in a window when a display exists. Without "
        "one, or with --video, the episodes are written to a video file instead. Greedy, unless "
        "the run's eval_epsilon or --epsilon says otherwise.",
    )
    play.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        help="run directory or checkpoint directory (default: the pretrained LunarLander agent)",
    )
    play.add_argument(
        "--episodes",
        type=EPISODES,
        default=3,
        metavar="N",
        help="episodes (default 3)",
    )
    play.add_argument(
        "--seed", type=SEED, default=0, metavar="N", help="episode k is reset with seed N + k"
    )
    _add_epsilon(play)
    _add_env_module(play)
    play.add_argument("--policy", metavar="POLICY", help=POLICY_HELP)
    _add_pretrained(play)
    play.add_argument(
        "--video", action="store_true", help="write a video even when a display exists"
    )
    play.add_argument(
        "--out",
        metavar="FILE",
        default="play.mp4",
        help="video file used without a display: .mp4 or .gif (default play.mp4)",
    )

    policies = commands.add_parser(
        "policies",
        help="evaluate the hand-written CartPole policies",
        description="Built-in hand-written policies (push toward the pole's lean; angle plus angular "
        "velocity, the chapter's second policy; lean plus half the angular velocity; a hand-picked "
        "linear policy w·obs + b > 0), or your own linear policy (--weights), each evaluated over many seeded "
        "episodes: mean, std, min and max of the returns.",
    )
    policies.add_argument("--env", metavar="ID", default="CartPole-v1", help="env (CartPole-v1)")
    policies.add_argument(
        "--episodes", type=EPISODES, default=500, metavar="N", help="episodes per policy (500)"
    )
    policies.add_argument(
        "--max-steps",
        type=STEPS,
        metavar="N",
        help="cut episodes at N steps (default: the env's 500)",
    )
    policies.add_argument("--seed", type=SEED, default=0, metavar="N", help="seed (default 0)")
    policies.add_argument(
        "--weights", metavar="W1,W2,W3,W4[,B]",
        help="evaluate this linear policy instead (push right when w·obs + b > 0; b defaults to 0)",
    )  # fmt: skip
    policies.add_argument("--json", action="store_true", help="print the results as JSON")

    search = commands.add_parser(
        "search",
        help="search the weights of a linear CartPole policy",
        description="Grid, random search, a genetic algorithm (asexual: mutation only; sexual: "
        "crossover + mutation) or the cross-entropy method (cem: sample from a Gaussian, refit it "
        "to the elite; the chapter's 'variant of gradient descent') over the 4 weights and bias of "
        "the policy 'push right when w·obs + b > 0'. Fitness is the mean return over --episodes "
        "episodes; each generation's episodes run together. Prints the best weights and their "
        "evaluation on 100 held-out episodes; writes history.csv, history.png and result.json.",
    )
    search.add_argument("--method", choices=("grid", "random", "ga-asexual", "ga-sexual", "cem"),
                        default="ga-sexual", help="search method (default ga-sexual)")  # fmt: skip
    search.add_argument("--env", metavar="ID", default="CartPole-v1", help="env (CartPole-v1 only)")
    search.add_argument(
        "--population", type=integer(ge=1, le=100_000), default=50, metavar="N",
        help="candidates per generation (50)",
    )  # fmt: skip
    search.add_argument("--generations", type=integer(ge=1, le=100_000), default=20, metavar="N",
                        help="generations (20)")  # fmt: skip
    search.add_argument(
        "--episodes", type=integer(ge=1, le=100_000), default=10, metavar="N",
        help="episodes per candidate (10)",
    )  # fmt: skip
    search.add_argument(
        "--mutation-scale",
        type=number(ge=0, le=1e6),
        default=0.1,
        metavar="S",
        help="std of the mutation noise; cem: added to the refitted std (0.1)",
    )
    search.add_argument(
        "--elite-fraction",
        type=number(gt=0, le=1),
        default=0.2,
        metavar="F",
        help="share of a generation kept as parents, or that cem refits to (0.2)",
    )
    search.add_argument(
        "--grid-points",
        type=integer(ge=1, le=1000),
        default=5,
        metavar="N",
        help="grid: values per parameter in [-1, 1] (5)",
    )
    search.add_argument("--max-steps", type=STEPS, metavar="N", help="cut episodes at N steps")
    search.add_argument("--seed", type=SEED, default=0, metavar="N", help="seed (default 0)")
    search.add_argument(
        "--out", metavar="DIR", help="output directory (default runs/search-<method>-<time>)"
    )
    search.add_argument("--json", action="store_true", help="print the result as JSON")

    mdp = commands.add_parser(
        "mdp",
        help="Markov chains and MDPs: sample, value iteration, tabular Q-learning, plot",
        description="The Hands-On ML chapter's Markov chain and 3-state MDP (the defaults), an MDP from a JSON/TOML "
        "spec, or a Gymnasium toy-text env with a model (FrozenLake-v1, Taxi-v4, CliffWalking-v1).",
    )
    mdp.add_argument(
        "action",
        choices=("chain", "value-iteration", "q-learning", "plot"),
        help="chain: sample state sequences; value-iteration / q-learning: print the Q table and "
        "greedy policy; plot: Q(s0,a0) against iterations for both, true value dashed",
    )
    mdp.add_argument(
        "--env",
        metavar="ID",
        help="built-in chapter-mdp / chapter-chain (defaults), a .json/.toml spec, or a toy-text env id",
    )
    mdp.add_argument(
        "--gamma", type=number(ge=0, le=1), default=0.9, metavar="G", help="discount (default 0.9)"
    )
    mdp.add_argument("--seed", type=SEED, default=42, metavar="N", help="random seed (default 42)")
    mdp.add_argument(
        "--iterations",
        type=integer(ge=1, le=10**8),
        metavar="N",
        help="value iteration sweeps (default: until converged; plot: 50) / Q-learning updates "
        "(default 10000)",
    )
    mdp.add_argument(
        "--alpha0", type=number(gt=0, le=1), default=0.05,
        help="Q-learning initial learning rate (0.05)",
    )  # fmt: skip
    mdp.add_argument(
        "--decay", type=number(ge=0, le=1e6), default=0.005,
        help="learning rate alpha0/(1+t*decay) (0.005)",
    )  # fmt: skip
    mdp.add_argument(
        "--sequences", type=integer(ge=1, le=100_000), default=10, metavar="N",
        help="chain: sequences (default 10)",
    )  # fmt: skip
    mdp.add_argument(
        "--max-steps", type=integer(ge=1, le=1_000_000), default=50, metavar="N",
        help="chain: states per sequence (50)",
    )  # fmt: skip
    mdp.add_argument("--out", metavar="FILE.png", help="plot: output (default mdp_q_values.png)")
    mdp.add_argument("--json", action="store_true", help="print the result as JSON")

    report = commands.add_parser(
        "report",
        help="write a run's self-contained HTML report",
        description="One HTML page for a run: headline, history plot, a greedy episode as video, the "
        "greedy evaluations, the full config, versions and machine. Opens from disk with no server "
        "and fetches nothing. 'deepq train' writes it at the end of every run.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    report.add_argument(
        "--out", metavar="FILE.html", help="output file (default: RUN_DIR/report.html)"
    )
    _add_env_module(report)

    export = commands.add_parser(
        "export",
        help="write a run's episode log in another program's format",
        description="The episode log of a run (from its progress.csv) as the robust-DQN post logs "
        "it: episode;steps;reward;average, episodes counted from 0, the average over the last 100 "
        "episodes. Its plot script reads it with pd.read_csv(file, sep=';').",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    export.add_argument(
        "--format",
        choices=("semicolon", "csv"),
        default="semicolon",
        help="semicolon: the post's progress.log (default); csv: the same columns, comma-separated",
    )
    export.add_argument("--out", metavar="FILE", help="output file (default: standard output)")

    bench = commands.add_parser(
        "bench",
        help="benchmark deepq against Stable-Baselines3 on LunarLander",
        description="deepq's default preset vs SB3's RL Zoo DQN on LunarLander-v3: same seeds, budget and "
        "evaluation protocol, one run after the other. Needs the bench extra: pip install -e '.[bench]'.",
    )
    from deepq.bench import add_arguments

    add_arguments(bench)

    sweep = commands.add_parser(
        "sweep",
        help="train configs x seeds, locally or on a Ray cluster, and compare them",
        description="Train every config (a --grid of values, --random draws, or one config) on "
        "every seed, each trial a deepq train run under DIR/trials/, and write DIR/results.json, "
        "results.md and sweep.png as trials finish. Local processes by default; --address runs "
        "the trials on a Ray cluster. A stopped sweep continues with --resume DIR.",
    )
    from deepq.sweeps.command import add_arguments as add_sweep_arguments

    add_sweep_arguments(sweep)
    _add_env_module(sweep)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from deepq.bench import bench_from_args

    result = bench_from_args(args)
    print()
    print(result["markdown"], end="")
    print(f"\nwritten to {args.out}/results.json and {args.out}/results.md")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from deepq.sweeps.command import run_from_args

    return run_from_args(args)


def cmd_play(args: argparse.Namespace) -> int:
    from deepq.outputs.video import VIDEO_SUFFIXES
    from deepq.run.files import require_suffix

    require_suffix(args.out, VIDEO_SUFFIXES)

    from deepq.api import load
    from deepq.classic.policies import load_policy
    from deepq.outputs.video import play

    if sum(x is not None for x in (args.path, args.policy, args.pretrained)) > 1:
        raise UsageError(
            "name a run or checkpoint directory, a --policy or a --pretrained agent: only one of them"
        )
    agent = (
        load_policy(args.policy)
        if args.policy is not None
        else load(args.path, pretrained=args.pretrained)
    )
    window = False if args.video else None
    result = play(agent, args.episodes, args.seed, args.out, window, args.epsilon)
    returns = ", ".join(f"{r:.2f}" for r in result.returns)
    if result.video is not None:
        why = f"{result.reason}: " if result.reason else ""
        count = len(result.returns)
        print(f"{why}wrote {count} episode{'s' if count > 1 else ''} to {result.video}")
    name = agent.name if args.policy is not None else _agent_name(args.path, agent)
    print(f"{name}: returns {returns}")
    return EXIT_OK


def _agent_name(path: str | None, agent) -> str:
    return f"pretrained {agent.config.env_id} agent" if path is None else agent.config.env_id


def cmd_policies(args: argparse.Namespace) -> int:
    if args.env != "CartPole-v1":
        raise UsageError(f"the hand-written policies are CartPole-v1 policies, not {args.env}'s")
    from dataclasses import asdict

    from deepq.classic.policies import (
        HAND_WRITTEN,
        EpisodeStats,
        episode_returns,
        linear_policy,
        parse_weights,
    )

    policies = dict(HAND_WRITTEN)
    if args.weights is not None:
        weights, bias = parse_weights(args.weights)
        shown = ", ".join(f"{w:g}" for w in weights)
        described = f"push right when [{shown}]·obs + {bias:g} > 0"
        policies = {"weights": (linear_policy(weights, bias), described)}
    results = {}
    for name, (policy, _) in policies.items():
        returns = episode_returns(policy, args.episodes, args.seed, args.env, args.max_steps)
        results[name] = asdict(EpisodeStats.of(returns))
    if args.json:
        print(json.dumps(results))
        return EXIT_OK
    print(f"{args.env}, {args.episodes} episodes each (seed {args.seed}):")
    for name, (_, description) in policies.items():
        r = results[name]
        print(f"  {name:<14} mean {r['mean']:7.2f}  std {r['std']:6.2f}  min {r['min']:5.0f}  "
              f"max {r['max']:5.0f}   {description}")  # fmt: skip
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from datetime import datetime

    from deepq.classic.search import SearchSettings, run_search, write_search_outputs

    if args.env != "CartPole-v1":
        raise UsageError(f"the linear policy search is for CartPole-v1, not {args.env}")
    settings = SearchSettings(args.method, args.population, args.generations, args.episodes,
                              args.mutation_scale, args.elite_fraction, args.grid_points,
                              args.max_steps, args.seed)  # fmt: skip
    settings.validate()
    out = args.out or f"runs/search-{args.method}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    result = run_search(settings)
    paths = write_search_outputs(result, out)
    if args.json:
        print(json.dumps({**asdict(result), "out": str(out)}))
        return EXIT_OK
    e = result.evaluation
    weights = ", ".join(f"{w:.4f}" for w in result.weights)
    print(f"{args.method}: {result.candidates_scored} candidates scored")
    sign = "+" if result.bias >= 0 else "-"
    print(f"best policy: push right when [{weights}]·obs {sign} {abs(result.bias):.4f} > 0")
    print(f"held-out evaluation: mean {e['mean']:.2f} ± {e['std']:.2f} (min {e['min']:.0f}, "
          f"max {e['max']:.0f}, {e['episodes']} episodes)")  # fmt: skip
    print(f"wrote {paths['csv']}, {paths['png']} and {paths['json']}")
    return EXIT_OK


def cmd_mdp(args: argparse.Namespace) -> int:
    import numpy as np

    from deepq.classic import mdp

    if args.action == "chain":
        chain = mdp.resolve_chain(args.env)
        rng = np.random.default_rng(args.seed)
        samples = [mdp.sample_chain(chain, rng, args.max_steps) for _ in range(args.sequences)]
        if args.json:
            print(
                json.dumps(
                    {"sequences": [s for s, _ in samples], "cut_off": [c for _, c in samples]}
                )
            )
        else:
            for states, cut_off in samples:
                print("States:", " ".join(map(str, states)) + (" ..." if cut_off else ""))
        return EXIT_OK

    model = mdp.resolve_mdp(args.env)
    if args.action == "plot":
        vi_q, vi_history = mdp.value_iteration(model, args.gamma, args.iterations or 50)
        vi_q, _ = mdp.value_iteration(model, args.gamma)  # the true value: converged
        _, ql_history = mdp.q_learning(model, args.gamma, args.iterations or 10_000, args.alpha0,
                                       args.decay, args.seed)  # fmt: skip
        out = mdp.plot_convergence(
            vi_history, ql_history, vi_q[0, 0], args.out or "mdp_q_values.png"
        )
        print(json.dumps({"out": str(out)}) if args.json else f"wrote {out}")
        return EXIT_OK
    if args.action == "value-iteration":
        q_values, _ = mdp.value_iteration(model, args.gamma, args.iterations)
    else:
        q_values, _ = mdp.q_learning(model, args.gamma, args.iterations or 10_000, args.alpha0,
                                     args.decay, args.seed)  # fmt: skip
    if args.json:
        print(json.dumps(mdp.q_table_json(q_values)))
    else:
        print(f"{model.name}, gamma {args.gamma:g}: Q-values (rows: states, columns: actions)")
        print(mdp.format_q_table(q_values))
        print(f"greedy policy: {mdp.greedy_policy(q_values)}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from deepq.outputs.report import write_report

    print(f"wrote {write_report(args.run_dir, args.out)}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from deepq.outputs.export import export_episode_log

    written = export_episode_log(args.run_dir, args.out, args.format)
    if written is not None:
        print(f"wrote {written}")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from deepq.outputs.plots import plot_history

    out = plot_history(
        args.run_dirs,
        args.out,
        args.window,
        args.first,
        args.last,
        args.rolling_only,
        args.data_only,
    )
    print(f"wrote {out}")
    return EXIT_OK


def cmd_video(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepq.api import load
    from deepq.classic.policies import load_policy
    from deepq.outputs.video import record_video

    if sum(x is not None for x in (args.path, args.policy, args.pretrained)) != 1:
        raise UsageError(
            "name a run or checkpoint directory, a --policy or a --pretrained agent (one of them)"
        )
    if args.policy is not None:
        agent, default_dir = load_policy(args.policy), Path(".")
    elif args.pretrained is not None:
        agent, default_dir = load(pretrained=args.pretrained), Path(".")
    else:
        path = Path(args.path)
        agent, default_dir = load(path), path if (path / "progress.csv").exists() else Path(".")
    out = Path(args.out) if args.out else default_dir / "video.mp4"
    written, returns = record_video(
        agent, out, args.episodes, args.seed, args.fps, args.max_frames, args.epsilon
    )
    played = (
        f"{len(returns)} episode{'s' if len(returns) != 1 else ''}, returns "
        + ", ".join(f"{r:.2f}" for r in returns)
        if returns
        else "no whole episode"
    )
    cut = f" (cut at --max-frames {args.max_frames})" if len(returns) < args.episodes else ""
    print(f"wrote {written}: {played}{cut}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    show_progress = False if args.no_progress else None
    preset_line = None  # which preset a new DQN run starts from, and why
    if args.resume is not None:
        given = [
            flag
            for flag, value in (
                ("--env", args.env),
                ("--algo", None if args.algo == "dqn" else args.algo),
                ("--preset", args.preset),
                ("--seed", args.seed),
                ("--run-dir", args.run_dir),
                ("--set", args.overrides or None),
                ("--stop-when-solved", args.stop_when_solved),
                ("--dry-run", args.dry_run or None),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"--resume continues a run with its own config; drop {', '.join(given)}"
            )
    elif args.total_steps is not None:
        raise UsageError(
            "--total-steps continues a run (with --resume RUN_DIR); a new run takes "
            "--set total_steps=N"
        )
    else:
        from deepq.api import config_from_options

        config = config_from_options(args.algo, args.preset, args.env, args.seed, args.overrides,
                                     stop_when_solved=args.stop_when_solved)  # fmt: skip
        if args.algo == "dqn":
            preset_line = preset_choice(args.preset, args.env)
    if args.dry_run:
        return _dry_run(config, preset_line)
    if preset_line is not None:
        print(preset_line, flush=True)

    from deepq.api import resume, train
    from deepq.run.harness import Interrupted

    try:
        if args.resume is not None:
            result = resume(args.resume, total_steps=args.total_steps,
                            show_progress=show_progress, report=not args.no_report)  # fmt: skip
        else:
            result = train(
                config, args.run_dir, show_progress=show_progress, report=not args.no_report
            )
    except Interrupted as exc:
        print(f"deepq: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = result.summary
    print(f"run directory: {result.run_dir}")
    if summary["solved"]:
        print(
            f"solved at episode {summary['solved_at_episode']}, env step {summary['solved_at_step']}, "
            f"{summary['solved_at_wall_s']:.1f} s"
        )
    from deepq.run.evaluation import acting

    if summary["stop_reason"] == "eval_mean":
        how = acting(summary["eval_history"][-1].get("epsilon", 0.0))
        print(
            f"stopped at env step {summary['best_eval_step']}: a {how} evaluation scored "
            f"{summary['best_eval_mean']:.2f}, reaching stop_eval_mean"
        )
    elif not summary["solved"]:
        print(f"not solved (stopped by {summary['stop_reason']})")
    print(
        f"trained {summary['env_steps']} env steps, {summary['episodes']} episodes in "
        f"{summary['train_wall_s']:.1f} s ({summary['steps_per_s']:,.0f} steps/s)"
    )
    if summary["final_eval"]:
        final = summary["final_eval"]
        print(
            f"{acting(final.get('epsilon', 0.0))} evaluation of the best checkpoint: "
            f"{final['mean']:.2f} ± {final['std']:.2f} "
            f"(min {final['min']:.2f}, max {final['max']:.2f}, {final['episodes']} episodes)"
        )
    if (result.run_dir / "report.html").is_file():
        print(f"report: {result.run_dir / 'report.html'}")
    return EXIT_OK


def _dry_run(config, preset_line: str | None) -> int:
    """Everything ``train`` checks before it creates a run directory, then the config."""
    from deepq.api import check_before_training

    check_before_training(config)
    resolved = {"algo": type(config).__name__, "preset": preset_line, "config": config.to_dict()}
    print(json.dumps(resolved, indent=1))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from deepq.api import evaluate, load
    from deepq.run.evaluation import TEST_EVAL_SEED

    agent = load(args.path, pretrained=args.pretrained)
    seed = TEST_EVAL_SEED if args.seed is None else args.seed
    result = evaluate(agent, args.episodes, seed, epsilon=args.epsilon)
    if args.json:
        keys = ("mean", "std", "min", "max", "episodes", "returns", "epsilon")
        print(json.dumps({k: getattr(result, k) for k in keys}))
    else:
        print(f"{_agent_name(args.path, agent)}: {result.line()}")
    return EXIT_OK


def cmd_env(args: argparse.Namespace) -> int:
    from deepq.run.envinfo import describe_env, save_frame
    from deepq.run.files import require_suffix

    if args.frame is not None:
        require_suffix(args.frame, (".png",), "--frame")
    print(describe_env(args.env_id, args.action, args.seed))
    if args.frame is not None:
        from deepq.run.atari import stacked_frames

        written, shape = save_frame(args.env_id, args.frame, args.seed)
        what = f"the frame after reset(seed={args.seed})"
        if stacked_frames(args.env_id) > 1:
            what = f"the screen after reset(seed={args.seed}) and, right, the frame the agent sees"
        print(f"wrote {written}: {what}, {shape[1]}x{shape[0]} pixels")
    return EXIT_OK


def cmd_envs(args: argparse.Namespace) -> int:
    from deepq.run.envinfo import registered_envs

    entries = registered_envs(args.pattern)
    if args.available:
        entries = [entry for entry in entries if not entry.unavailable]
    if not entries:
        raise UsageError(f"no registered environment matches {args.pattern!r}")
    width = max(len(entry.env_id) for entry in entries)
    for entry in entries:
        if entry.unavailable:
            print(f"{entry.env_id:<{width}}  (cannot be made here: {entry.unavailable})")
            continue
        algos = ", ".join(entry.trains_with) or "-"
        print(f"{entry.env_id:<{width}}  obs {entry.observation}  actions {entry.action}  "
              f"trains with: {algos}")  # fmt: skip
    return EXIT_OK


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "env": cmd_env,
    "envs": cmd_envs,
    "plot": cmd_plot,
    "video": cmd_video,
    "play": cmd_play,
    "mdp": cmd_mdp,
    "policies": cmd_policies,
    "search": cmd_search,
    "report": cmd_report,
    "export": cmd_export,
    "bench": cmd_bench,
    "sweep": cmd_sweep,
}


# Commands that compute with JAX, so get deepq's process-wide settings first (thread pools,
# compilation cache: see deepq.run.process). Help, plots and the classic ladder never start JAX.
JAX_COMMANDS = ("train", "eval", "video", "play", "report")


def _trains_from_pixels(args: argparse.Namespace) -> bool:
    """Whether this ``deepq train`` learns an Atari or MinAtar game (by --env, the preset, or the
    resumed run's config.json), whose CNN update wants every core (see configure_process)."""
    if args.command != "train":
        return False
    from pathlib import Path

    from deepq.dqn.config import default_preset_for, load_preset
    from deepq.run.atari import is_pixel_game
    from deepq.run.files import read_regular_file

    env_id = args.env
    try:
        if args.resume is not None:
            text = read_regular_file(Path(args.resume) / "config.json", 1 << 20)
            env_id = json.loads(text).get("env_id")
        elif env_id is None:
            preset = args.preset or default_preset_for(None)
            env_id = load_preset(preset).get("env_id") if preset else None
    except (OSError, ValueError, AttributeError, DeepQError):
        return False  # the command itself says what is wrong
    return isinstance(env_id, str) and is_pixel_game(env_id)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``deepq`` program: this entry point, not the library, sets process-wide settings
    (signal handlers, thread pools). Every way out is one line on stderr and an exit code."""
    previous_handlers = install_program_handlers()
    command = "deepq"
    try:
        args = build_parser().parse_args(argv)
        command = f"deepq {args.command}"
        if getattr(args, "env_module", None):
            from deepq.run.envs import import_env_modules

            import_env_modules(args.env_module)
        if args.command in JAX_COMMANDS:
            from deepq.run.process import configure_process

            configure_process(spare_core=not _trains_from_pixels(args))
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        missed = take_missed_signal()  # Python swallowed it (in a gc callback), the work went on
        if missed is not None:
            raise ProgramInterrupted(missed)
        return code
    except SystemExit as exc:  # argparse: --help, --version, a usage error (printed already)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except DeepQError as exc:
        print(f"{command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        take_missed_signal()  # it was acted on: this is the way out
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{command}: {'terminated' if signum == signal.SIGTERM else 'interrupted'}",
              file=sys.stderr)  # fmt: skip
        return exit_code(signum)
    except BrokenPipeError:  # e.g. `deepq env ID | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # the file system refused something no check above foresaw
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILURE
    except MemoryError:
        print(f"{command}: error: out of memory", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        restore_handlers(previous_handlers)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
