"""The command line contract: train -> eval -> env, exit codes, one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import interrupt_after_episodes
from helpers import run_deepq as deepq

SMOKE_SETTINGS = [
    "--set", "total_steps=600",
    "--set", "learning_starts=100",
    "--set", "train_every=4",
    "--set", "gradient_steps=1",
    "--set", "hidden_sizes=16",
    "--set", "eval_every=300",
    "--set", "eval_episodes=2",
    "--set", "final_eval_episodes=3",
]  # fmt: skip


def test_train_then_eval_then_env(tmp_path):
    run = tmp_path / "run"
    trained = deepq("train", "--env", "CartPole-v1", "--run-dir", str(run), *SMOKE_SETTINGS)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("preset cartpole (CartPole-v1's preset, picked by --env)\n")
    assert "greedy evaluation of the best checkpoint" in trained.stdout
    for name in ("config.json", "progress.csv", "summary.json", "tb"):
        assert (run / name).exists(), name
    for name in ("latest", "best", "final"):
        assert (run / "checkpoints" / name / "COMPLETE").exists(), name
    assert json.loads((run / "config.json").read_text())["total_steps"] == 600
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 600 and summary["stop_reason"] == "total_steps"
    assert summary["final_eval"]["episodes"] == 3
    header = (run / "progress.csv").read_text().splitlines()[0]
    assert header == "episode,env_steps,return,length,mean_100,epsilon,wall_s"

    evaluated = deepq("eval", str(run), "--episodes", "3", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert set(result) == {"mean", "std", "min", "max", "episodes", "returns", "epsilon"}
    assert result["episodes"] == 3 and len(result["returns"]) == 3 and result["epsilon"] == 0
    # `deepq eval` uses the same held-out seeds as the run's final evaluation
    assert result["mean"] == pytest.approx(summary["final_eval"]["mean"])
    at_random = deepq("eval", str(run), "--episodes", "3", "--epsilon", "1")
    assert at_random.returncode == 0, at_random.stderr
    assert "ε-greedy (ε 1) return" in at_random.stdout

    filmed = deepq("video", str(run), "--out", str(tmp_path / "clip.gif"))
    assert filmed.returncode == 0 and (tmp_path / "clip.gif").stat().st_size > 1000, filmed.stderr

    plotted = deepq("plot", str(run))
    assert plotted.returncode == 0 and (run / "history.png").stat().st_size > 10_000, plotted.stderr

    described = deepq("env", "LunarLander-v3", "--action", "2", "--seed", "1")
    assert described.returncode == 0, described.stderr
    for text in (
        "fire main engine",
        "left leg contact",
        "Next state",
        "Reward",
        "Terminated",
        "Truncated",
    ):
        assert text in described.stdout


BAD_CALLS = [
    (["train", "--set", "gamma=2"], "gamma=2.0 must be in [0, 1]"),
    (["train", "--set", "batch_size=0"], "batch_size=0 must be in [1, 65536]"),
    (["train", "--set", "nope=1"], "unknown config key 'nope'"),
    (["train", "--set", "gamma"], "must look like key=value"),
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--seed", "-1"], "seed=-1 must be in"),
    (["train", "--seed", "x"], "invalid int value: 'x'"),
    (["train", "--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    (["train", "--env", "Pendulum-v1"], "deepq's DQN and REINFORCE need Discrete actions"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["eval", "/no/such/run"], "no such run directory or checkpoint"),
    (["eval", ".", "--episodes", "0"], "--episodes 0 must be in [1, 10000000]"),
    (["env", "LunarLander-v3", "--action", "7"], "--action 7 must be in [0, 3]"),
    (["env", "NoSuchEnv-v0"], "cannot make environment"),
    (["video", "/no/such/run"], "no such run directory or checkpoint"),
    (["plot", "/no/such/run"], "has no progress.csv"),
    (["plot", ".", "--rolling-only", "--data-only"], "not allowed with argument --rolling-only"),
    (["plot", ".", "--window", "0"], "--window 0 must be in [1, 10000000]"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_CALLS, ids=[" ".join(a) or "(none)" for a, _ in BAD_CALLS]
)
def test_bad_calls_exit_2_with_one_line(args, message):
    result = deepq(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    result = deepq("train", "--env", "CartPole-v1", "--run-dir", str(run), *SMOKE_SETTINGS)
    assert result.returncode == 2 and "already exists and is not empty" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["precious.txt"]


def test_help_is_complete():
    top = deepq("--help")
    assert top.returncode == 0 and all(
        cmd in top.stdout for cmd in ("train", "eval", "env", "plot", "bench")
    )
    train_help = deepq("train", "--help").stdout
    for text in (
        "--env",
        "--preset",
        "--seed",
        "--run-dir",
        "--set",
        "--stop-when-solved",
        "lunarlander-lab",
    ):
        assert text in train_help
    for key in (
        "total_steps",
        "max_episodes",
        "time_budget_s",
        "target_update",
        "epsilon_decay",
        "dueling",
    ):
        assert key in train_help
    # how --env picks a preset, said where --preset is
    assert "CartPole-v1 -> cartpole" in " ".join(train_help.split())
    assert "--json" in deepq("eval", "--help").stdout
    assert "--action" in deepq("env", "--help").stdout


def test_sigint_saves_and_exits_130(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "train", "--env", "CartPole-v1", "--run-dir", str(run), "--no-progress",
         "--set", "total_steps=10000000", "--set", "eval_every=null"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    stderr = interrupt_after_episodes(process, run, 4)
    assert process.returncode == 130, stderr
    assert "interrupted at env step" in stderr and str(run) in stderr
    assert (run / "checkpoints" / "latest" / "COMPLETE").exists()
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == "interrupted"


def test_a_closed_pipe_is_not_a_traceback():
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "env", "LunarLander-v3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()  # the reader is gone before the first write, like `| head -0`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


NEXT_STEPS = """
import json, sys
import numpy as np
import deepq
agent = deepq.load(sys.argv[1])
env = agent.make_env()
obs, _ = env.reset(seed=123)
trace = []
for _ in range(500):
    action = agent.act(obs)
    trace.append(action)
    obs, reward, terminated, truncated, _ = env.step(action)
    if terminated or truncated:
        obs, _ = env.reset()
probe = np.random.default_rng(7).standard_normal((64, 4)).astype(np.float32)
print(json.dumps({"trace": trace, "probe": agent.act(probe).tolist(), "q": agent.q_values(probe).tolist()}))
"""


def test_a_saved_agent_behaves_the_same_in_a_new_process(tmp_path):
    run = tmp_path / "run"
    assert (
        deepq("train", "--env", "CartPole-v1", "--run-dir", str(run), *SMOKE_SETTINGS).returncode
        == 0
    )
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", NEXT_STEPS, str(run)], capture_output=True, text=True, env=env
        )
        for _ in range(2)
    ]
    assert all(o.returncode == 0 for o in outputs), outputs[0].stderr
    first, second = (json.loads(o.stdout) for o in outputs)
    assert len(first["trace"]) == 500 and first == second
    import deepq as library

    agent = library.load(run)  # and the same as in this process
    probe = np.random.default_rng(7).standard_normal((64, 4)).astype(np.float32)
    assert agent.act(probe).tolist() == first["probe"]


def test_a_second_sigint_aborts_at_once_and_keeps_the_last_checkpoint(tmp_path):
    from deepq.run.checkpoint import load_checkpoint

    run = tmp_path / "run"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "train", "--env", "CartPole-v1", "--run-dir", str(run), "--no-progress",
         "--set", "total_steps=10000000", "--set", "eval_every=null", "--set", "checkpoint_every_episodes=5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline and not (run / "checkpoints" / "latest" / "COMPLETE").exists()
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    _, meta = load_checkpoint(run / "checkpoints" / "latest")  # whichever save won, it is whole
    assert meta["progress"]["env_steps"] > 0


@pytest.mark.parametrize(
    ("algo", "args"),
    [
        ("q-learning", ["--env", "FrozenLake-v1", "--set", "max_episodes=100000000"]),
        ("reinforce", ["--set", "iterations=100000"]),
    ],
)
def test_sigint_stops_the_other_algorithms_with_130(tmp_path, algo, args):
    run = tmp_path / "run"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deepq", "train", "--algo", algo, "--run-dir", str(run),
         "--no-progress", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    stderr = interrupt_after_episodes(process, run, 4)
    assert process.returncode == 130, stderr
    assert "interrupted at env step" in stderr and "Traceback" not in stderr
    assert (run / "checkpoints" / "final" / "COMPLETE").exists()
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == "interrupted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--algo", "reinforce", "--preset", "lunarlander"],
            "presets are DQN configurations",
        ),
        (["train", "--algo", "reinforce", "--set", "n_step=3"], "unknown config key 'n_step'"),
        (["train", "--algo", "q-learning", "--set", "alpha0=2"], "alpha0=2.0 must be in (0, 1]"),
        (["train", "--algo", "q-learning", "--env", "CartPole-v1"], "needs Discrete states"),
        (["train", "--algo", "reinforce", "--env", "FrozenLake-v1"], "1-D Box observation"),
        (["train", "--resume", "x", "--algo", "reinforce"], "drop --algo"),
    ],
)
def test_other_algorithms_bad_calls_exit_2(tmp_path, args, message):
    run_dir = [] if "--resume" in args else ["--run-dir", str(tmp_path / "r")]
    done = deepq(*args, *run_dir, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
