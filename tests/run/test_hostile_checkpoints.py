"""A checkpoint from a stranger: tampered files whose manifest is re-hashed, special files, and
out-of-range values can neither run code, exhaust memory, hang, nor end in a traceback."""

import os
import re
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import run_deepq
from tampering import edit_arrays, edit_json, edit_meta, rehash, replace_member, set_path

import deepq.run.checkpoint as checkpoint_module
from deepq.api import load
from deepq.dqn.agent import Agent, init_params, save_agent
from deepq.dqn.config import DQNConfig
from deepq.dqn.loop import resume, train
from deepq.errors import CheckpointError, DeepQError, TrainingDiverged
from deepq.run.checkpoint import load_checkpoint

PLUGIN = """
from pathlib import Path
Path(__file__).with_name("plugin-ran").touch()
import gymnasium as gym
gym.register("Plugin-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
             max_episode_steps=50)
"""


@pytest.fixture
def agent_dir(tmp_path):
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    save_agent(tmp_path / "ckpt", Agent(config, init_params(config, 4, 2), 4, 2, {}))
    return tmp_path / "ckpt"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A short real DQN run on CartPole with two envs: its latest is a training state."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    config = {"env_id": "CartPole-v1", "num_envs": 2, "total_steps": 400, "hidden_sizes": [8],
              "batch_size": 16, "learning_starts": 100, "eval_every": 200, "eval_episodes": 1,
              "final_eval_episodes": 1, "checkpoint_every_episodes": 5}  # fmt: skip
    train(config, run_dir, show_progress=False, tensorboard=False)
    return run_dir


@pytest.fixture
def resumable(finished_run, tmp_path):
    """A copy of the run that looks interrupted: ``final`` removed, ``latest`` kept."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "final")
    return run_dir


def latest(run_dir):
    return run_dir / "checkpoints" / "latest"


# 1. Nothing read from a file imports a module -------------------------------------------------


def test_an_env_id_naming_a_module_in_a_checkpoint_is_refused_and_never_imported(agent_dir):
    (agent_dir.parent / "deepq_plugin.py").write_text(PLUGIN)
    edit_meta(agent_dir, lambda m: set_path(m, ("config", "env_id"), "deepq_plugin:CartPole-v1"))
    for command in (("eval", str(agent_dir), "--episodes", "1"), ("video", str(agent_dir))):
        done = subprocess_in(agent_dir.parent, *command)
        assert done.returncode == 1, done.stderr
        assert "names a module to import" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (agent_dir.parent / "plugin-ran").exists()


def test_the_this_module_is_not_imported_either(agent_dir):
    edit_meta(agent_dir, lambda m: set_path(m, ("config", "env_id"), "this:CartPole-v1"))
    with pytest.raises(CheckpointError, match="names a module to import"):
        load(agent_dir)
    assert "this" not in sys.modules


def subprocess_in(cwd, *args):
    """deepq in ``cwd`` (where ``python -m`` puts a planted module on sys.path first)."""
    import subprocess

    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    return subprocess.run([sys.executable, "-m", "deepq", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_plugin_env_needs_the_users_own_env_module_flag(tmp_path):
    (tmp_path / "deepq_plugin.py").write_text(PLUGIN)
    refused = subprocess_in(tmp_path, "train", "--env", "deepq_plugin:Plugin-v0")
    assert refused.returncode == 2 and "--env-module deepq_plugin" in refused.stderr
    unknown = subprocess_in(tmp_path, "env", "Plugin-v0")
    assert unknown.returncode == 2 and not (tmp_path / "plugin-ran").exists()
    allowed = subprocess_in(tmp_path, "env", "Plugin-v0", "--env-module", "deepq_plugin")
    assert allowed.returncode == 0, allowed.stderr
    assert "Plugin-v0" in allowed.stdout and (tmp_path / "plugin-ran").exists()


# 2. Special files and sizes are refused before anything is read -----------------------------


@pytest.mark.parametrize(
    ("member", "target"),
    [("arrays.safetensors", "/dev/zero"), ("manifest.json", "/dev/urandom"),
     ("meta.json", "/etc/passwd")],
)  # fmt: skip
def test_a_member_symlinked_anywhere_is_refused(agent_dir, member, target):
    (agent_dir / member).unlink()
    (agent_dir / member).symlink_to(target)
    with pytest.raises(CheckpointError, match=f"{member} is a symlink"):
        load_checkpoint(agent_dir)


def test_a_fifo_is_refused_without_hanging(agent_dir):
    (agent_dir / "arrays.safetensors").unlink()
    os.mkfifo(agent_dir / "arrays.safetensors")
    done = run_deepq("eval", str(agent_dir), timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("arrays.safetensors is not a regular file")


def test_a_file_larger_than_the_bound_is_refused_before_it_is_read(agent_dir, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "max_array_file_bytes", lambda: 1 << 20)
    with open(agent_dir / "arrays.safetensors", "r+b") as handle:
        handle.truncate(200 << 20)  # sparse: 200 MB that occupy no disk
    rehash_size_only(agent_dir, "arrays.safetensors", 200 << 20)
    with pytest.raises(CheckpointError, match=r"is 209.7 MB, more than the 1.0 MB"):
        load_checkpoint(agent_dir)


def test_an_arrays_file_larger_than_its_config_implies_is_refused_before_it_is_read(agent_dir):
    """Under half the machine's memory, but far above what a CartPole agent of 8 hidden units
    can hold (its parameters, and room for the header): refused by size, before one read."""
    with open(agent_dir / "arrays.safetensors", "r+b") as handle:
        handle.truncate(200 << 20)
    rehash_size_only(agent_dir, "arrays.safetensors", 200 << 20)
    with pytest.raises(CheckpointError, match=r"is 209.7 MB, more than the 1.1 MB deepq reads"):
        load(agent_dir)


def rehash_size_only(directory, name, size):
    """The manifest claims ``size`` bytes (hashing 200 MB of zeros is not the point here)."""
    edit_json(directory, "manifest.json", lambda m: set_path(m, ("files", name, "bytes"), size))


def test_a_manifest_larger_than_64_kb_is_refused_before_it_is_read(agent_dir):
    manifest = (agent_dir / "manifest.json").read_bytes()
    (agent_dir / "manifest.json").write_bytes(manifest + b" " * (64 << 10))  # still valid JSON
    with pytest.raises(CheckpointError, match=r"manifest.json is 6\d.\d KB, more than the 65.5 KB"):
        load_checkpoint(agent_dir)


def test_a_size_that_differs_from_the_manifest_is_refused(agent_dir):
    rehash_size_only(agent_dir, "meta.json", 10)
    with pytest.raises(
        CheckpointError,
        match="meta.json is corrupt or truncated: .* bytes, where its manifest says 10",
    ):
        load_checkpoint(agent_dir)


# 4. and 7. Non-finite agents are never written nor loaded --------------------------------------


def test_a_diverging_run_never_writes_a_non_finite_best(tmp_path):
    config = {"env_id": "CartPole-v1", "learning_rate": 1e38, "eval_every": 1100,
              "checkpoint_every_episodes": None, "total_steps": 20000, "hidden_sizes": [16],
              "learning_starts": 100, "eval_episodes": 2}  # fmt: skip
    with pytest.raises(TrainingDiverged, match="non-finite") as raised:
        train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    best = tmp_path / "run" / "checkpoints" / "best"
    # the message points at checkpoints that exist, or says there are none
    assert ("no checkpoint had been saved yet" in str(raised.value)) != best.exists()
    if best.exists():
        arrays, _ = load_checkpoint(best)
        assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")
        load(best)


def test_an_agent_with_nan_parameters_is_refused(agent_dir):
    def poison(arrays):
        name = next(k for k in arrays if k.endswith("['kernel']"))
        arrays[name] = np.full_like(arrays[name], np.nan)

    edit_arrays(agent_dir, poison)
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        load(agent_dir)


# 6. Tampered meta.json fields ----------------------------------------------------------------


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("info",), [1, 2], "info: Input should be a valid dictionary"),
        (("n_actions",), 0, "n_actions: Input should be greater than or equal to 1"),
        (("obs_dim",), -1, "obs_dim: Input should be greater than or equal to 1"),
        (("obs_dim",), 4.0, "obs_dim: Input should be a valid integer"),
        (("kind",), "os.system", "kind: Input should be"),
        (("config", "hidden_sizes"), [16, 16], "expected float32"),
        (("config", "buffer_size"), "1e12", "buffer_size='1e12' must be an integer"),
        (("schema_version",), 2, "schema_version: Input should be 1"),
        (("obs_shape",), [3, 3], r"obs_shape \[3, 3\] does not hold obs_dim=4 values"),
        (("obs_shape",), [4, 1, 1, 1, 1], "obs_shape: List should have at most 4 items"),
        (("obs_shape",), [2, 2], "no encoder for observations of shape"),
        (("obs_dtype",), "object", "obs_dtype: Input should be 'uint8'"),
    ],
)
def test_a_tampered_meta_field_is_one_checkpoint_error(agent_dir, path, value, message):
    edit_meta(agent_dir, lambda m: set_path(m, path, value))
    with pytest.raises(CheckpointError, match=message):
        load(agent_dir)


def test_deeply_nested_json_is_refused(agent_dir):
    replace_member(agent_dir, "meta.json", b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(agent_dir)
    (agent_dir / "manifest.json").write_bytes(b'{"files": ' * 2000 + b"1" + b"}" * 2000)
    with pytest.raises(CheckpointError):
        load_checkpoint(agent_dir)


def test_an_agent_whose_env_has_other_spaces_is_refused_at_evaluation(agent_dir):
    edit_meta(agent_dir, lambda m: set_path(m, ("config", "env_id"), "Acrobot-v1"))
    from deepq.api import evaluate

    with pytest.raises(
        CheckpointError,
        match=r"of shape \(4,\) and 2 actions, but Acrobot-v1 has numeric ones of shape \(6,\) and 3",
    ):
        evaluate(load(agent_dir), episodes=1)


# 6. and 7. Tampered resume state --------------------------------------------------------------


def test_resume_state_edits_are_refused_before_training(resumable):
    cases = [
        (("envs", "base_seeds"), [], "base_seeds: List should have at least 1 item"),
        (("progress", "env_steps"), "400", "progress.env_steps: Input should be a valid integer"),
        (("progress", "env_steps"), 400.0, "progress.env_steps: Input should be a valid integer"),
        (("progress", "solved_at"), "yes", "progress.solved_at: Input should be"),
        (("config", "num_envs"), 3, "seeds for other than the 3 envs"),
        (("rng", "bit_generator"), "MT19937", "rng.bit_generator: Input should be 'PCG64'"),
        # a NaN best is never beaten: the resumed run could keep no better agent
        (("progress", "best_eval_mean"), float("nan"), "best_eval_mean: Input should be a finite"),
        # {state: 0, inc: 0} draws 0 forever: numpy's sampling then loops in C, deaf to Ctrl-C
        (("rng", "state", "inc"), 0, "rng.state: Value error, the PCG64 increment must be odd"),
        (("progress", "eval_history"), [{"a": 1}], "eval_history.0.env_steps: Field required"),
        (("progress", "eval_history", 0, "eval_episodes"), 7, "one return and one length per"),
        (("progress", "recent_returns"), [1e308] * 3, "recent_returns.0: Input should be less"),
        (("progress", "env_steps"), 10**9, "exceeds the config's total_steps 400"),
        (("progress", "episodes"), 10**6, "counts beyond the run's env steps"),
    ]
    original = (latest(resumable) / "meta.json").read_bytes()
    for path, value, message in cases:
        replace_member(latest(resumable), "meta.json", original)
        edit_meta(latest(resumable), lambda m, p=path, v=value: set_path(m, p, v))
        with pytest.raises(CheckpointError, match=message):
            resume(resumable, show_progress=False, tensorboard=False)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("envs/episode_actions", lambda a: a + 7, "actions outside"),
        ("replay/position", lambda a: a.astype(np.float64), "position must be one int64"),
        ("replay/actions", lambda a: a + 5, "replay actions lie outside"),
        ("replay/rewards", lambda a: a * np.inf, "replay rewards must be finite"),
        ("replay/obs", lambda a: a * np.nan, "replay observations must be finite"),
        ("replay/discounts", lambda a: a + 1, "replay discounts must lie in [0, 1]"),
        ("replay/position", lambda a: np.asarray(a - 1), "does not fit capacity"),
    ],
)
def test_resume_array_edits_are_refused(resumable, name, value, message):
    edit_arrays(latest(resumable), lambda arrays: arrays.__setitem__(name, value(arrays[name])))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        resume(resumable, show_progress=False, tensorboard=False)


def test_an_array_the_replay_does_not_know_is_refused_not_ignored(resumable):
    edit_arrays(latest(resumable), lambda a: a.__setitem__("replay/evil", np.zeros(3)))
    with pytest.raises(CheckpointError, match="unknown array replay/evil"):
        resume(resumable, show_progress=False, tensorboard=False)


def test_a_meta_json_of_millions_of_small_values_is_refused_before_it_is_parsed(agent_dir):
    """22M empty dicts in 63 MB took 5 GB and 4 minutes; values are counted first."""
    text = (agent_dir / "meta.json").read_text()
    replace_member(
        agent_dir,
        "meta.json",
        text.replace('"info": {', '"info": {"x": [' + "{}," * 2_000_000 + "{}],", 1).encode(),
    )
    with pytest.raises(CheckpointError, match="holds more than the 1,000,000 values"):
        load_checkpoint(agent_dir)


def test_an_agent_for_other_observations_than_its_envs_is_refused(agent_dir, tmp_path):
    """A network scales uint8 observations by 1/255: a CartPole agent marked uint8 (greedy
    237 -> 9), or a frames agent of a uint8 env that is not, would act on what it never saw."""
    from deepq.api import evaluate

    edit_meta(agent_dir, lambda m: m.__setitem__("obs_dtype", "uint8"))
    with pytest.raises(CheckpointError, match="takes uint8 pixel observations of shape"):
        evaluate(load(agent_dir), episodes=1)
    config = DQNConfig(env_id="deepq-test/BrightSide-v0", hidden_sizes=(8,))
    params = init_params(config, (8, 8, 1), 2, "float32")
    save_agent(tmp_path / "frames", Agent(config, params, 64, 2, {}, (8, 8, 1), "float32"))
    with pytest.raises(CheckpointError, match="takes numeric observations .* has uint8 pixel"):
        evaluate(load(tmp_path / "frames"), episodes=1)


@pytest.mark.parametrize("damage", ["missing", "directory"])
def test_a_missing_or_replaced_progress_csv_is_one_error(resumable, damage):
    (resumable / "progress.csv").unlink()
    if damage == "directory":
        (resumable / "progress.csv").mkdir()
    with pytest.raises(DeepQError, match="progress.csv"):
        resume(resumable, show_progress=False, tensorboard=False)


def test_a_tb_that_is_a_file_is_one_error(resumable):
    shutil.rmtree(resumable / "tb", ignore_errors=True)
    (resumable / "tb").write_text("not a directory")
    with pytest.raises(DeepQError, match="cannot write .*tb"):
        resume(resumable, show_progress=False, tensorboard=True)


def test_unfinished_saves_are_removed_on_resume(resumable):
    leftover = resumable / "checkpoints" / ".latest.tmp-99999"
    shutil.copytree(latest(resumable), leftover)
    resume(resumable, show_progress=False, tensorboard=False)
    assert not leftover.exists()


# 8. Verification: every listed file, every hash, one schema version ------------------------


def test_a_manifest_without_an_entry_is_refused(agent_dir):
    def unlist(manifest):
        del manifest["files"]["meta.json"]

    edit_json(agent_dir, "manifest.json", unlist)
    with pytest.raises(CheckpointError, match="does not list meta.json"):
        load_checkpoint(agent_dir)


def test_a_manifest_listing_another_file_is_refused(agent_dir):
    edit_json(agent_dir, "manifest.json",
              lambda m: set_path(m, ("files", "extra.bin"), m["files"]["meta.json"]))  # fmt: skip
    with pytest.raises(CheckpointError, match="files.extra.bin"):
        load_checkpoint(agent_dir)


def test_meta_json_edited_without_rehashing_is_refused(agent_dir):
    text = (
        (agent_dir / "meta.json")
        .read_text()
        .replace('"hidden_sizes": [\n   8', '"hidden_sizes": [\n   9')
    )
    assert text != (agent_dir / "meta.json").read_text()
    (agent_dir / "meta.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"meta.json is corrupt \(sha256"):
        load_checkpoint(agent_dir)


def test_another_schema_version_is_refused(agent_dir):
    edit_json(agent_dir, "manifest.json", lambda m: set_path(m, ("schema_version",), 2))
    with pytest.raises(CheckpointError, match="has checkpoint schema 2; this deepq reads schema 1"):
        load_checkpoint(agent_dir)


def test_rehash_helper_round_trips(agent_dir):
    """The tampering helper itself: a re-hash of an unchanged file keeps it loadable."""
    rehash(agent_dir, "meta.json")
    assert isinstance(load(agent_dir).config, DQNConfig)
    assert Path(agent_dir).is_dir()


def test_saving_an_agent_with_non_finite_parameters_is_refused_and_writes_nothing(tmp_path):
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    params = init_params(config, 4, 2)
    poisoned = jax.tree_util.tree_map(lambda leaf: leaf * np.inf, params)
    with pytest.raises(TrainingDiverged, match="non-finite .* was not written"):
        save_agent(tmp_path / "best", Agent(config, poisoned, 4, 2, {"env_steps": 7}))
    assert not (tmp_path / "best").exists()


def test_a_resumed_run_never_writes_through_a_planted_symlink(resumable, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (resumable / "progress.csv").unlink()
    (resumable / "progress.csv").symlink_to(victim)
    with pytest.raises(CheckpointError, match="progress.csv is a symlink"):
        resume(resumable, show_progress=False, tensorboard=False)
    assert victim.read_text() == "precious\n"
    (resumable / "progress.csv").unlink()  # and at any depth: a kept copy's file, say
    deep = next((resumable / "checkpoints").glob("step-*")) / "meta.json"
    deep.unlink()
    deep.symlink_to(victim)
    with pytest.raises(CheckpointError, match=f"{deep} is a symlink"):
        resume(resumable, show_progress=False, tensorboard=False)


def test_outputs_are_never_written_through_a_symlink(finished_run, tmp_path, capsys):
    from deepq.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / "history.png").unlink(missing_ok=True)
    (run_dir / "history.png").symlink_to(victim)
    assert main(["plot", str(run_dir)]) == 1
    assert "history.png: it is a symlink" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    # temporary files are new files under new names: none planted beside an output is used
    (run_dir / "history.png").unlink()
    for planted in (".report.html.tmp", ".history.png.tmp", ".summary.json.tmp"):
        (run_dir / planted).symlink_to(victim)
    assert main(["report", str(run_dir)]) == 0, capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    assert (run_dir / "report.html").stat().st_size > 10_000
    planted_only = [".history.png.tmp", ".report.html.tmp", ".summary.json.tmp"]
    assert sorted(p.name for p in run_dir.glob(".*")) == planted_only  # no temporary left


RAISING_PLUGIN = """
import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class Raising(CartPoleEnv):
    def step(self, action):
        if getattr(self, "steps", 0) >= 5:
            raise RuntimeError("boom\\nsecond line")
        self.steps = getattr(self, "steps", 0) + 1
        return super().step(action)


gym.register("deepq-test/Raising-v0", entry_point=Raising, max_episode_steps=100)
"""


@pytest.mark.parametrize(
    ("module", "source", "code", "message"),
    [
        ("deepq_raising_env", RAISING_PLUGIN, 1,
         "deepq-test/Raising-v0 raised RuntimeError in step(): boom"),
        ("deepq_broken_plugin", "raise RuntimeError('half-written plugin')", 2,
         "--env-module deepq_broken_plugin: importing it raised RuntimeError: half-written plugin"),
        ("", None, 2, "--env-module '' must name a module to import"),
        ("/tmp/envs.py", None, 2, "--env-module '/tmp/envs.py' must name a module to import"),
    ],
)  # fmt: skip
def test_a_plugin_or_env_that_raises_is_one_line(tmp_path, monkeypatch, capsys, module, source,
                                                 code, message):  # fmt: skip
    from deepq.cli import main

    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
    args = ["train", "--env-module", module, "--env", "deepq-test/Raising-v0", "--run-dir",
            str(tmp_path / "run"), "--no-progress", "--no-report", "--set", "total_steps=50"]  # fmt: skip
    assert main(args) == code
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
