"""Property-based fuzzing (hypothesis) of what a stranger controls: a checkpoint's meta.json and
manifest.json (re-hashed, so every edit reaches the loader) and the command line.

Whatever the input: an agent or one DeepQError line (exit 0, 1 or 2 from the CLI), at most two
lines on stderr, never a traceback, no file written outside the run, and never a module imported.
Examples are derandomised, so CI runs the same ones every time; DEEPQ_FUZZ_SCALE=10 runs ten
times as many locally.
"""

import copy
import json
import os
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tampering import replace_member

from deepq.api import load
from deepq.cli import main
from deepq.dqn.agent import Agent, init_params, save_agent
from deepq.dqn.config import DQNConfig
from deepq.errors import DeepQError

SCALE = int(os.environ.get("DEEPQ_FUZZ_SCALE", "1"))
PLUGIN = "deepq_fuzz_plugin"


def fuzz_settings(examples):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))  # fmt: skip


ENV_IDS = ["CartPole-v1", "Acrobot-v1", "LunarLander-v3", "FrozenLake-v1", "Pendulum-v1",
           f"{PLUGIN}:CartPole-v1", "this:CartPole-v1", "ALE/Pong-v5", "MinAtar/Breakout-v1",
           "deepq/FrozenLake-NotSlippery-v1", "", "../../etc/passwd", "x" * 300]  # fmt: skip
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, 2, 4, 2**31, 2**63, 10**12])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(ENV_IDS)
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def paths(tree, prefix=()):
    """Every path to a value inside a JSON tree."""
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from paths(value, (*prefix, index))


def mutate(tree, path, operation, value):
    """``tree`` with the value at ``path`` replaced, deleted, or given a new sibling key."""
    tree = copy.deepcopy(tree)
    if not path:
        return value
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if operation == "delete":
        del parent[path[-1]]
    elif operation == "add" and isinstance(parent, dict):
        parent[f"{path[-1]}_extra"] = value
    else:
        parent[path[-1]] = value
    return tree


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A real agent checkpoint, and a module that would leave a mark if anything imported it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / f"{PLUGIN}.py").write_text(
        f"from pathlib import Path\nPath({str(root / 'imported')!r}).touch()\n"
    )
    sys.path.insert(0, str(root))
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    save_agent(root / "ckpt", Agent(config, init_params(config, 4, 2), 4, 2, {"env_steps": 1}))
    originals = {name: (root / "ckpt" / name).read_bytes() for name in ("meta.json",
                                                                       "manifest.json")}  # fmt: skip
    yield root, originals
    sys.path.remove(str(root))


def write_edited(planted, name, path, operation, value):
    """Restore the planted checkpoint, then write member ``name`` mutated (re-hashed, unless it
    is the manifest itself)."""
    root, originals = planted
    for member, data in originals.items():
        (root / "ckpt" / member).write_bytes(data)
    if path and operation == "delete" and isinstance(path[-1], int):
        operation = "replace"  # deleting from a list would only shift it
    edited = mutate(json.loads(originals[name]), path, operation, value)
    replace_member(root / "ckpt", name, json.dumps(edited).encode())


def assert_nothing_ran(root):
    assert not (root / "imported").exists() and PLUGIN not in sys.modules
    assert "this" not in sys.modules


def load_or_one_error(directory):
    try:
        load(directory)
        event("loaded")
    except DeepQError as exc:
        event(f"refused: {type(exc).__name__}")
        assert len(str(exc).splitlines()) == 1, str(exc)


META_PATHS = list(paths({  # the shape of a DQN agent's meta.json (the planted one's)
    "schema_version": 1, "kind": "dqn-agent", "deepq_version": "0", "obs_dim": 4, "n_actions": 2,
    "config": DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,)).to_dict(),
    "info": {"env_steps": 1},
}))  # fmt: skip


@given(
    path=st.sampled_from(META_PATHS),
    operation=st.sampled_from(["replace", "delete", "add"]),
    value=json_values,
)
@fuzz_settings(1200)
def test_any_meta_json_edit_loads_or_is_one_error(planted, path, operation, value):
    write_edited(planted, "meta.json", path, operation, value)
    load_or_one_error(planted[0] / "ckpt")
    assert_nothing_ran(planted[0])


@given(
    path=st.sampled_from([(), ("schema_version",), ("files",), ("files", "meta.json"),
                          ("files", "meta.json", "bytes"), ("files", "meta.json", "sha256"),
                          ("files", "arrays.safetensors", "bytes")]),
    operation=st.sampled_from(["replace", "delete", "add"]),
    value=json_values,
)  # fmt: skip
@fuzz_settings(400)
def test_any_manifest_edit_is_refused_or_verified(planted, path, operation, value):
    write_edited(planted, "manifest.json", path, operation, value)
    load_or_one_error(planted[0] / "ckpt")
    assert_nothing_ran(planted[0])


DQN_DEFAULTS = DQNConfig().to_dict()
junk = st.sampled_from(["-1", "nan", "inf", "-inf", "1e12", "1e400", "null", "true", "x", "",
                        "=", "100000,100000", "4" * 30, *ENV_IDS])  # fmt: skip
numbers = st.integers(min_value=-3, max_value=3000).map(str) | st.sampled_from(
    ["0.5", "0.99", "1e-3", "64,64", "8"]
)


def setting(key):
    """``key=value``: mostly values of the right kind (the default, a nearby number), to get past
    the first check and reach the later ones; sometimes junk."""
    default = DQN_DEFAULTS[key]
    as_text = ",".join(map(str, default)) if isinstance(default, list) else json.dumps(default)
    return st.one_of(st.just(as_text.strip('"')), numbers, junk).map(f"{key}={{}}".format)


train_options = st.lists(
    st.one_of(
        st.sampled_from(sorted(DQN_DEFAULTS)).flatmap(setting).map(lambda kv: ("--set", kv)),
        st.sampled_from(ENV_IDS[:6]).map(lambda env: ("--env", env)),
        st.one_of(numbers, junk).map(lambda seed: ("--seed", seed)),
        st.sampled_from(["cartpole", "lunarlander", "nope"]).map(lambda p: ("--preset", p)),
    ),
    max_size=5,
)
argument_lists = st.one_of(
    st.tuples(st.just("train"), st.just("--dry-run"), train_options),
    st.tuples(st.sampled_from(["env", "eval", "plot", "report", "video"]), junk | numbers,
              st.lists(st.tuples(st.sampled_from(["--seed", "--episodes", "--action", "--out",
                                                  "--window", "--fps"]), junk | numbers),
                       max_size=2)),
    st.tuples(st.just("env"), st.sampled_from(ENV_IDS),
              st.lists(st.tuples(st.sampled_from(["--seed", "--action"]), numbers | junk),
                       max_size=2)),
    st.tuples(st.just("mdp"), st.sampled_from(["chain", "value-iteration", "q-learning"]),
              st.lists(st.tuples(st.sampled_from(["--gamma", "--seed", "--iterations", "--alpha0",
                                                  "--decay", "--sequences", "--max-steps"]),
                                 numbers | junk)
                       | st.tuples(st.just("--env"), st.sampled_from(
                           ["chapter-mdp", "chapter-chain", "FrozenLake-v1", *ENV_IDS])),
                       max_size=3)),
)  # fmt: skip


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a NaN or overflow on the way is a bug
@given(arguments=argument_lists)
@fuzz_settings(700)
def test_any_command_line_exits_0_1_or_2_with_at_most_two_lines(
    planted, arguments, capsys, tmp_path_factory
):
    root, _ = planted
    command, first, options = arguments
    argv = [command, first, *[part for option in options for part in option]]
    cwd = tmp_path_factory.mktemp("cwd")
    before = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(argv)
    finally:
        os.chdir(before)
    out, err = capsys.readouterr()
    event(f"{command} exit {code}")
    assert code in (0, 1, 2), (argv, err)
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err, (argv, err)
    assert list(cwd.iterdir()) == [], (argv, list(cwd.iterdir()))
    assert_nothing_ran(root)


# Sweep and run directories from others: their JSON files and progress logs -------------------


@pytest.fixture(scope="module")
def planted_sweep(tmp_path_factory):
    """A stopped sweep's files as deepq writes them, and a finished run's summary and log."""
    from deepq.sweeps.sweep import SweepConfig, SweepPlan

    values = {k: v for k, v in DQNConfig(env_id="CartPole-v1").to_dict().items() if k != "seed"}
    plan = SweepPlan("dqn", [SweepConfig("gamma=0.99", values)], [0, 1]).to_dict()
    scores = {"solved": True, "steps_to_solve": 500, "time_to_solve_s": 1.0, "best_mean": 500.0,
              "final_mean": 480.0, "env_steps": 1000, "train_wall_s": 2.0,
              "curve": [[500, 500.0], [1000, 480.0]]}  # fmt: skip
    record = {"name": plan["trials"][0]["name"], "config": 0, "seed": 0, "node": "here",
              "wall_s": 3.0, "status": "ok", "scores": scores}  # fmt: skip
    evaluation = {"env_steps": 500, "episodes": 20, "train_wall_s": 1.0, "eval_episodes": 2,
                  "mean": 500.0, "std": 0.0, "min": 500.0, "max": 500.0,
                  "returns": [500.0, 500.0], "lengths": [500, 500], "epsilon": 0.0}  # fmt: skip
    summary = {"env_id": "CartPole-v1", "stop_reason": "total_steps", "solved": True,
               "solved_threshold": 475.0, "solved_at_episode": 20, "solved_at_step": 500,
               "solved_at_wall_s": 1.0, "train_wall_s": 2.0, "env_steps": 1000, "episodes": 30,
               "grad_steps": 200, "learning": {"env_steps": 1000, "train/loss": 0.5},
               "steps_per_s": 500.0, "best_eval_mean": 500.0, "best_eval_step": 500,
               "eval_history": [evaluation],
               "final_eval": {"mean": 480.0, "std": 3.0, "min": 470.0, "max": 490.0,
                              "episodes": 10, "epsilon": 0.0}}  # fmt: skip
    return tmp_path_factory.mktemp("sweep"), {"sweep.json": plan, "record": record,
                                              "summary.json": summary}  # fmt: skip


def write_sweep_files(root, originals, name, path, operation, value):
    """The planted sweep and run files, with member ``name`` mutated."""
    from deepq.run.files import write_json

    (root / "records").mkdir(exist_ok=True)
    files = {"sweep.json": root / "sweep.json", "summary.json": root / "summary.json",
             "record": root / "records" / f"{originals['record']['name']}.json"}  # fmt: skip
    for member, data in originals.items():
        edited = mutate(data, path, operation, value) if member == name else data
        files[member].write_text(json.dumps(edited))
    write_json(root / "config.json", {"env_id": "CartPole-v1"})


def read_or_one_error(read):
    try:
        read()
        event("read")
    except DeepQError as exc:
        event(f"refused: {type(exc).__name__}")
        assert len(str(exc).splitlines()) == 1, str(exc)


SWEEP_MEMBERS = ("sweep.json", "record", "summary.json")


@given(
    member=st.sampled_from(SWEEP_MEMBERS),
    choice=st.integers(min_value=0, max_value=10**6),
    operation=st.sampled_from(["replace", "delete", "add"]),
    value=json_values,
)
@fuzz_settings(400)
def test_any_sweep_or_summary_edit_reads_or_is_one_error(planted_sweep, member, choice, operation,
                                                          value):  # fmt: skip
    """What resuming a sweep reads (its plan, a trial's record) and what the plot, the report and
    a sweep read of a run (its summary): any edit is read, or is one DeepQError line."""
    from deepq.outputs.report import headline, render_page
    from deepq.run.schema import read_summary
    from deepq.sweeps.stats import trial_scores
    from deepq.sweeps.sweep import SweepPlan, SweepResults, read_records

    root, originals = planted_sweep
    every_path = list(paths(originals[member]))
    path = every_path[choice % len(every_path)]
    if path and operation == "delete" and isinstance(path[-1], int):
        operation = "replace"
    write_sweep_files(root, originals, member, path, operation, value)

    def resume_and_report():
        plan = SweepPlan.read(root / "sweep.json")
        SweepResults(plan, read_records(root, plan)).write(root, plot=False)
        summary = read_summary(root / "summary.json")
        trial_scores(summary)
        render_page("run", {}, summary, b"", None, headline(summary))

    read_or_one_error(resume_and_report)


PROGRESS_HEADER = "episode,env_steps,return,length,mean_100,epsilon,wall_s\n"
progress_cells = st.sampled_from(["1", "2", "-3.5", "0", "1e308", "nan", "inf", "-inf", "abc",
                                  "", " ", "1,2", '"', "\x00", "9" * 40, "-1"])  # fmt: skip


@given(
    rows=st.lists(st.lists(progress_cells, min_size=0, max_size=9), max_size=4),
    header=st.sampled_from([PROGRESS_HEADER, "a,b\n", "", "episode,return\n"]),
)
@fuzz_settings(300)
def test_any_progress_log_plots_exports_or_is_one_error(tmp_path_factory, rows, header):
    from deepq.outputs.export import episode_log
    from deepq.outputs.plots import read_history

    run_dir = tmp_path_factory.mktemp("run")
    text = header + "".join(",".join(row) + "\n" for row in rows)
    (run_dir / "progress.csv").write_text(text)
    read_or_one_error(lambda: read_history(run_dir))
    read_or_one_error(lambda: episode_log(run_dir))
