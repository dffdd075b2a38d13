"""Checkpoints: round trip, verification, atomic replacement, agents."""

import hashlib
import json
import os
import re
import shutil
import tracemalloc

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save as safetensors_save

from deepq.api import load
from deepq.dqn.agent import Agent, init_params, load_agent_checkpoint, save_agent
from deepq.dqn.config import DQNConfig
from deepq.errors import CheckpointError
from deepq.run.checkpoint import (
    arrays_to_pytree,
    is_complete,
    load_checkpoint,
    parse_safetensors,
    pytree_to_arrays,
    save_checkpoint,
)
from deepq.run.files import UnreadableFile, read_regular_file

ARRAYS = {
    "a": np.arange(6, dtype=np.float32).reshape(2, 3),
    "flags": np.array([True, False]),
    "frames": np.full((2, 2), 255, np.uint8),
    "position": np.array(7, dtype=np.int64),
}


def meta(**info):
    """The smallest meta.json the schema accepts, with ``info`` to tell checkpoints apart."""
    return {"kind": "q-table-agent", "deepq_version": "test", "config": {}, "info": info}


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path):
    save_checkpoint(tmp_path / "ckpt", ARRAYS, meta(note="hi"))
    assert is_complete(tmp_path / "ckpt")
    arrays, loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded["info"]["note"] == "hi" and loaded["schema_version"] == 1
    for name, value in ARRAYS.items():
        assert (arrays[name].shape, arrays[name].dtype) == (value.shape, value.dtype), name
        np.testing.assert_array_equal(arrays[name], value)


def test_replacing_a_checkpoint_leaves_no_temporaries(tmp_path):
    save_checkpoint(tmp_path / "latest", ARRAYS, meta(version=1))
    save_checkpoint(tmp_path / "latest", ARRAYS, meta(version=2))
    assert load_checkpoint(tmp_path / "latest")[1]["info"]["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_a_flipped_byte_is_reported_as_corruption(tmp_path):
    save_checkpoint(tmp_path / "c", ARRAYS, meta())
    path = tmp_path / "c" / "arrays.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"arrays.safetensors is corrupt \(sha256"):
        load_checkpoint(tmp_path / "c")


def test_a_missing_file_or_marker_is_reported(tmp_path):
    save_checkpoint(tmp_path / "c", ARRAYS, meta())
    os.remove(tmp_path / "c" / "meta.json")
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        load_checkpoint(tmp_path / "c")
    save_checkpoint(tmp_path / "d", ARRAYS, meta())
    os.remove(tmp_path / "d" / "COMPLETE")
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "d")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing")


def test_a_crash_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "latest", ARRAYS, meta(version=1))
    # What a crash right after `rename(latest, .latest.old-PID)` leaves behind:
    os.rename(tmp_path / "latest", tmp_path / ".latest.old-123")
    assert load_checkpoint(tmp_path / "latest")[1]["info"]["version"] == 1


def test_pytrees_are_rebuilt_from_a_template_and_checked(tmp_path):
    tree = {"w": jnp.ones((2, 3)), "b": (jnp.zeros(3), jnp.array(4, jnp.int32))}
    arrays = pytree_to_arrays("p", tree)
    restored = arrays_to_pytree("p", tree, arrays, "test")
    np.testing.assert_array_equal(restored["b"][1], 4)
    wrong_shape = {**arrays, "p['w']": np.ones((3, 2), np.float32)}
    with pytest.raises(
        CheckpointError, match=r"array p\['w'\] is float32\[3, 2\], expected float32\[2, 3\]"
    ):
        arrays_to_pytree("p", tree, wrong_shape, "test")
    with pytest.raises(CheckpointError, match="is missing"):
        arrays_to_pytree("p", tree, {k: v for k, v in arrays.items() if k != "p['w']"}, "test")
    with pytest.raises(CheckpointError, match="unexpected array p\\['extra'\\]"):
        arrays_to_pytree("p", tree, {**arrays, "p['extra']": np.ones(1)}, "test")


def make_agent(**config_values):
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,), **config_values)
    return Agent(config, init_params(config, 4, 2), 4, 2, {"env_steps": 5})


def test_agent_round_trip_gives_identical_greedy_actions(tmp_path):
    agent = make_agent(dueling=True)
    save_agent(tmp_path / "best", agent)
    loaded = load(tmp_path / "best")
    obs = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
    np.testing.assert_allclose(loaded.q_values(obs), agent.q_values(obs))
    assert loaded.config == agent.config and loaded.info["env_steps"] == 5


def test_agent_whose_arrays_do_not_match_its_config_is_refused(tmp_path):
    save_agent(tmp_path / "a", make_agent())
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    meta["config"]["hidden_sizes"] = [16]
    other = tmp_path / "b"
    arrays, _ = load_checkpoint(tmp_path / "a")
    meta.pop("schema_version")
    save_checkpoint(other, arrays, meta)  # a consistent manifest over mismatched content
    with pytest.raises(CheckpointError, match="expected float32"):
        load_agent_checkpoint(other)


def test_run_directory_resolves_to_best_then_final_then_latest(tmp_path):
    run = tmp_path / "run"
    save_agent(run / "checkpoints" / "latest", make_agent())
    assert load(run).info["env_steps"] == 5
    save_agent(run / "checkpoints" / "best", make_agent())
    shutil.rmtree(run / "checkpoints" / "latest")
    assert load(run).config.hidden_sizes == (8,)


@pytest.mark.parametrize(("keep", "kept_steps"), [(2, [300, 400]), (0, [100, 200, 300, 400])])
def test_keep_copy_keeps_the_newest_k_and_shares_bytes(tmp_path, keep, kept_steps):
    from deepq.run.checkpoint import keep_copy

    for step in (100, 200, 300, 400):
        save_checkpoint(tmp_path / "latest", ARRAYS, meta(step=step))
        keep_copy(tmp_path / "latest", tmp_path / f"step-{step:012d}", keep=keep)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step-"))
    assert kept == [f"step-{step:012d}" for step in kept_steps]  # keep=0: every copy
    assert load_checkpoint(tmp_path / "step-000000000300")[1]["info"]["step"] == 300
    latest_file = tmp_path / "latest" / "arrays.safetensors"
    assert (
        os.stat(latest_file).st_ino
        == os.stat(tmp_path / "step-000000000400" / "arrays.safetensors").st_ino
    )


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    import errno

    import deepq.run.checkpoint as checkpoint

    save_checkpoint(tmp_path / "latest", ARRAYS, meta(version=1))

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_file", disk_full)
    with pytest.raises(
        CheckpointError, match=r"No space left on device\); the previous one is intact"
    ):
        save_checkpoint(tmp_path / "latest", ARRAYS, meta(version=2))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "latest")[1]["info"]["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


WRITER = """
import sys
import numpy as np
from deepq.run.checkpoint import save_checkpoint
big = {"x": np.random.default_rng(0).standard_normal(3_000_000).astype(np.float32)}
version = 0
while True:
    version += 1
    meta = {"kind": "q-table-agent", "deepq_version": "test", "config": {}}
    save_checkpoint(sys.argv[1], big, {**meta, "info": {"version": version}})
    print(version, flush=True)
"""


def test_a_writer_killed_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "latest"
    rng = np.random.default_rng(0)
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        writer.stdout.readline()  # at least one complete checkpoint exists
        time.sleep(rng.uniform(0.0, 0.3))  # then die somewhere inside a later save
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        arrays, loaded = load_checkpoint(target)
        assert loaded["info"]["version"] >= 1 and arrays["x"].shape == (3_000_000,)


# The arrays file: read once, parsed without copies, its layout checked -----------------------


def test_the_arrays_are_views_into_the_one_buffer_their_file_was_read_into():
    data = bytearray(safetensors_save({**ARRAYS, "empty": np.zeros((0, 3), np.float64)}))
    arrays = parse_safetensors(data, "arrays.safetensors")
    for name, expected in {**ARRAYS, "empty": np.zeros((0, 3), np.float64)}.items():
        np.testing.assert_array_equal(arrays[name], expected)
        assert arrays[name].dtype == expected.dtype and arrays[name].shape == expected.shape
        assert not arrays[name].flags.owndata  # a view, no copy


def test_a_file_is_read_into_one_buffer_of_its_size(tmp_path):
    """Read whole then joined, a 2.5 GB replay peaked at 5.5 GB; read into one buffer, hashed
    as it arrives, it peaks at its size."""
    path = tmp_path / "big"
    path.write_bytes(os.urandom(1 << 20) * 24)  # 24 MB
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tracemalloc.start()
    data = read_regular_file(path, 1 << 30, 24 << 20, sha256=digest)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data) == 24 << 20 and peak < 26 << 20
    with pytest.raises(UnreadableFile, match=r"is corrupt \(sha256"):
        read_regular_file(path, 1 << 30, 24 << 20, sha256="0" * 64)


def header(entries, data_bytes):
    text = json.dumps(entries).encode()
    return len(text).to_bytes(8, "little") + text + bytes(data_bytes)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01", "shorter than its 8-byte header length"),
        ((1 << 40).to_bytes(8, "little") + b"{}", "a header of 1099511627776 bytes"),
        (header([1], 0), "its header is not a JSON object"),
        (header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12),
         "starts at byte 4, not 8"),  # overlapping
        (header({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8),
         "starts at byte 4, not 0"),  # a gap
        (header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 16),
         "cover 8 of 16 data bytes"),  # bytes after the last tensor
        (header({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8),
         "spans 8 bytes, not (3,) float32"),
        (header({"a": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}, 8), "dtype 'O'"),
        (header({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, 4), "shape [-1]"),
        (header({"a": {"dtype": "F32", "shape": [2**70], "data_offsets": [0, 4]}}, 4), "shape"),
        (header({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, 8), "ends before"),
        (header({"a": {"dtype": "F32", "shape": [1]}}, 4), "dtype, shape and data_offsets"),
    ],
)  # fmt: skip
def test_a_malformed_arrays_file_is_one_checkpoint_error(data, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        parse_safetensors(bytearray(data), "arrays.safetensors")
