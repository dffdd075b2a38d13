"""Nothing trusted blindly: hostile checkpoint files, non-finite envs and losses, unsafe code."""

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from deepq.api import load
from deepq.dqn.agent import Agent, init_params, save_agent
from deepq.dqn.config import DQNConfig
from deepq.dqn.loop import train
from deepq.errors import CheckpointError, TrainingDiverged
from deepq.run.checkpoint import load_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "deepq"


class Payload:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def make_checkpoint(tmp_path):
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    save_agent(tmp_path / "ckpt", Agent(config, init_params(config, 4, 2), 4, 2, {}))
    return tmp_path / "ckpt"


def rewrite(directory, name, data):
    """Replace a member and fix the manifest up, as an attacker controlling every file would."""
    (directory / name).write_bytes(data)
    if name == "manifest.json":
        return
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("member", ["arrays.safetensors", "meta.json", "manifest.json"])
def test_a_pickle_payload_in_any_member_is_refused_and_never_runs(tmp_path, member):
    directory = make_checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    rewrite(directory, member, pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError):
        load(directory)
    assert not marker.exists()


def test_unexpected_json_keys_are_refused(tmp_path):
    directory = make_checkpoint(tmp_path)
    meta = json.loads((directory / "meta.json").read_text())
    meta["config"]["__class__"] = "os.system"
    rewrite(directory, "meta.json", json.dumps(meta).encode())
    with pytest.raises(CheckpointError, match="unknown config key '__class__'"):
        load(directory)


def test_an_array_file_declaring_object_dtype_is_refused(tmp_path):
    directory = make_checkpoint(tmp_path)
    header = json.dumps({"x": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}).encode()
    data = len(header).to_bytes(8, "little") + header + b"\0" * 8
    rewrite(directory, "arrays.safetensors", data)
    with pytest.raises(CheckpointError, match="cannot be parsed"):
        load_checkpoint(directory)


def test_a_truncated_file_is_a_corruption_error(tmp_path):
    directory = make_checkpoint(tmp_path)
    path = directory / "arrays.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt"):
        load(directory)


def test_the_source_has_no_pickle_eval_or_exec():
    serialisers = r"(c?pickle|cloudpickle|dill|marshal|joblib|shelve)"
    forbidden = re.compile(
        rf"\b(import|from)\s+{serialisers}\b|\b{serialisers}\.\w+\(|\beval\(|\bexec\("
        r"|allow_pickle\s*=\s*True|\btorch\.load\("
    )
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


def test_a_non_finite_reward_stops_training_at_that_step(tmp_path):
    config = {
        "env_id": "deepq-test/NaNReward-v0",
        "total_steps": 100,
        "batch_size": 4,
        "learning_starts": 4,
    }
    with pytest.raises(
        TrainingDiverged, match="deepq-test/NaNReward-v0 returned a non-finite reward at env step 2"
    ):
        train(config, tmp_path / "run", show_progress=False, tensorboard=False)


def test_an_exploding_learning_rate_is_caught_and_no_non_finite_checkpoint_is_written(tmp_path):
    config = {
        "env_id": "CartPole-v1",
        "total_steps": 20000,
        "learning_rate": 1e12,
        "hidden_sizes": [16],
        "batch_size": 32,
        "learning_starts": 100,
        "train_every": 1,
        "eval_every": None,
        "checkpoint_every_episodes": 1,
    }
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    latest = tmp_path / "run" / "checkpoints" / "latest"
    if latest.exists():  # whatever was written is finite
        arrays, _ = load_checkpoint(latest)
        assert all(np.isfinite(v).all() for k, v in arrays.items() if v.dtype.kind == "f")
