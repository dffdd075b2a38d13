"""Checkpoints: arrays in safetensors, everything else in JSON. No pickle anywhere.

A checkpoint is a directory::

    arrays.safetensors   every array (parameters, optimiser state, replay, ...), by name
    meta.json            config, env facts, counters, RNG states, schema version
    manifest.json        sha256 and size of the two files above
    COMPLETE             written last: a directory without it is never trusted

Writing is atomic: everything goes to a hidden temporary sibling, is flushed to disk and only
then renamed into place, so a crash at any moment leaves the previous checkpoint loadable.
Loading verifies the marker, the manifest, each file's size and hash, meta.json against its
schema, and (in :func:`arrays_to_pytree`) every shape and dtype against a template built from
code, so a file can never choose what objects get built. What a checkpoint may contain and what
loading it can and cannot do: docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from safetensors.numpy import save as safetensors_save

from deepq.errors import CheckpointError, DeepQError, TrainingDiverged
from deepq.run.files import (
    RunWriteError,
    UnreadableFile,
    memory_bytes,
    parse_json,
    read_regular_file,
)
from deepq.run.schema import (
    ARRAYS_FILE,
    META_FILE,
    SCHEMA_VERSION,
    Manifest,
    meta_model,
    validated,
)

MANIFEST_FILE = "manifest.json"
COMPLETE_FILE = "COMPLETE"
MAX_MANIFEST_BYTES = 64 << 10
MAX_META_BYTES = 16 << 20  # a run of 1,000 evaluations of 100 episodes writes ~3 MB

Config = TypeVar("Config")


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointWriteError(CheckpointError, RunWriteError):
    """A checkpoint could not be written; the previous one at that place is intact."""


def save_checkpoint(
    directory: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> Path:
    """Atomically write (or replace) the checkpoint at ``directory``.

    Any failure to write (a full disk, say) leaves the previous checkpoint as it was and raises
    CheckpointError.
    """
    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    try:
        return _save_checkpoint(directory, tmp, arrays, meta)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(
            f"could not write checkpoint {directory} ({exc.strerror or exc}); the previous one is intact"
        ) from None


def _save_checkpoint(
    directory: Path, tmp: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> Path:
    directory.parent.mkdir(parents=True, exist_ok=True)
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    # np.asarray(order="C"), not np.ascontiguousarray: the latter turns 0-d arrays into shape (1,)
    array_bytes = safetensors_save({k: np.asarray(v, order="C") for k, v in arrays.items()})
    meta_bytes = json.dumps({"schema_version": SCHEMA_VERSION, **meta}, indent=1).encode()
    _write_file(tmp / ARRAYS_FILE, array_bytes)
    _write_file(tmp / META_FILE, meta_bytes)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in ((ARRAYS_FILE, array_bytes), (META_FILE, meta_bytes))
        },
    }
    _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
    _write_file(tmp / COMPLETE_FILE, b"")
    _fsync_dir(tmp)
    if directory.exists():
        os.rename(
            directory, old
        )  # between these renames only `old` exists; load() falls back to it
    os.rename(tmp, directory)
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def keep_copy(checkpoint: str | Path, copy: str | Path, keep: int) -> None:
    """Keep ``checkpoint`` also as ``copy`` (hard links, so no bytes are written twice), then
    delete the oldest copies with the same name prefix beyond the newest ``keep`` (0: keep all)."""
    checkpoint, copy = Path(checkpoint), Path(copy)
    tmp = copy.parent / f".{copy.name}.tmp-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(checkpoint, tmp, copy_function=_link_or_copy)
        if copy.exists():
            shutil.rmtree(copy)
        os.rename(tmp, copy)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(
            f"could not keep a copy of {checkpoint} as {copy} ({exc.strerror or exc})"
        ) from None
    if keep == 0:
        return
    prefix = copy.name.rstrip("0123456789")
    copies = sorted(p for p in copy.parent.iterdir() if p.is_dir() and p.name.startswith(prefix))
    for stale in copies[: max(0, len(copies) - keep)]:
        shutil.rmtree(stale, ignore_errors=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def remove_unfinished_saves(checkpoints: Path) -> None:
    """Delete the ``.NAME.tmp-PID`` directories of saves that never finished (a process killed
    mid-save). They are never read; ``.NAME.old-PID`` copies are kept: one may be the only
    complete copy of a checkpoint whose swap was interrupted."""
    if checkpoints.is_dir():
        for leftover in checkpoints.glob(".*.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def is_complete(directory: str | Path) -> bool:
    return (Path(directory) / COMPLETE_FILE).is_file()


def checkpoint_exists(directory: str | Path) -> bool:
    """Whether ``directory`` or a copy left by a save interrupted mid-swap is there to load."""
    directory = Path(directory)
    return directory.exists() or any(directory.parent.glob(f".{directory.name}.old-*"))


def _readable_location(directory: Path) -> Path:
    """``directory`` if complete, else a complete copy left by a save interrupted mid-swap."""
    if is_complete(directory):
        return directory
    for candidate in sorted(directory.parent.glob(f".{directory.name}.old-*")):
        if is_complete(candidate):
            return candidate
    if directory.exists():
        raise CheckpointError(f"checkpoint {directory} is incomplete (no {COMPLETE_FILE} marker)")
    raise CheckpointError(f"no checkpoint at {directory}")


ArraysBound = Callable[[dict[str, Any]], int]  # a checkpoint's meta -> the arrays' largest size


def load_checkpoint(
    directory: str | Path, arrays_bound: ArraysBound | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a verified checkpoint, or CheckpointError naming what is wrong.

    Each file is read only if it is a regular file inside the directory (no symlink, FIFO or
    device) whose size is the manifest's and below a bound, once, in bounded chunks hashed as
    they arrive; its sha256 must be the manifest's. meta.json is read first and must match the
    schema of its ``kind`` (:mod:`deepq.run.schema`); then ``arrays_bound(meta)``, what the
    config implies the arrays can take (the parameters, a replay of its capacity, ...), bounds
    the arrays file, below half this machine's memory in any case.
    """
    directory = _readable_location(Path(directory))
    try:
        manifest_data = parse_json(
            read_regular_file(directory / MANIFEST_FILE, MAX_MANIFEST_BYTES),
            directory / MANIFEST_FILE,
        )
    except UnreadableFile as exc:
        raise CheckpointError(str(exc)) from None
    version = manifest_data.get("schema_version") if isinstance(manifest_data, dict) else None
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{directory} has checkpoint schema {version!r}; this deepq reads schema {SCHEMA_VERSION}"
        )
    manifest = validated(Manifest, manifest_data, str(directory / MANIFEST_FILE))
    for name in (META_FILE, ARRAYS_FILE):
        if name not in manifest.files:
            raise CheckpointError(f"{directory / MANIFEST_FILE} does not list {name}")
    source = str(directory / META_FILE)
    try:
        meta = parse_json(_read_listed(directory, META_FILE, manifest, MAX_META_BYTES), source)
    except UnreadableFile as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{directory / META_FILE} must hold a JSON object")
    meta = validated(meta_model(meta.get("kind")), meta, source).model_dump()
    bound = max_array_file_bytes()
    if arrays_bound is not None:
        bound = min(bound, arrays_bound(meta))
    try:
        data = _read_listed(directory, ARRAYS_FILE, manifest, bound)
    except UnreadableFile as exc:
        raise CheckpointError(str(exc)) from None
    return parse_safetensors(data, str(directory / ARRAYS_FILE)), meta


def _read_listed(directory: Path, name: str, manifest: Manifest, bound: int) -> bytearray:
    entry = manifest.files[name]
    return read_regular_file(directory / name, bound, entry.bytes, sha256=entry.sha256)


# safetensors' dtype names -> numpy's: what deepq writes (and what its loaders can ever accept)
SAFETENSORS_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
    "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64,
}  # fmt: skip
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on its JSON header


def parse_safetensors(data: bytearray, source: str) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file's bytes, as views into ``data``: each tensor is read
    once, never copied (a resume's replay is most of the machine's memory).

    Parsed here rather than by ``safetensors.numpy.load``, which copies every tensor out of the
    bytes it is given (twice the file's size at once). The format is a u64 little-endian header
    length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, optionally
    "__metadata__"}, then the data, which the tensors must cover exactly, in order, without gap
    or overlap: each of these is checked, and any violation is one CheckpointError."""
    try:
        if len(data) < 8:
            raise ValueError("shorter than its 8-byte header length")
        header_bytes = int.from_bytes(data[:8], "little")
        if not 2 <= header_bytes <= min(MAX_HEADER_BYTES, len(data) - 8):
            raise ValueError(f"a header of {header_bytes} bytes")
        header = parse_json(bytes(data[8 : 8 + header_bytes]), source)
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        header.pop("__metadata__", None)
        start, arrays, spans = 8 + header_bytes, {}, []
        for name, entry in header.items():
            dtype, shape, (begin, end) = _tensor_entry(name, entry)
            count = math.prod(shape)
            if end - begin != count * dtype.itemsize:
                raise ValueError(f"tensor {name!r} spans {end - begin} bytes, not {shape} {dtype}")
            spans.append((begin, end, name))
            arrays[name] = (dtype, shape, count, begin)
        position = 0
        for begin, end, name in sorted(spans):
            if begin != position:
                raise ValueError(f"tensor {name!r} starts at byte {begin}, not {position}")
            position = end
        if start + position != len(data):
            raise ValueError(f"its tensors cover {position} of {len(data) - start} data bytes")
    except (ValueError, TypeError, UnreadableFile) as exc:
        raise CheckpointError(f"{source} cannot be parsed ({exc})") from None
    return {
        name: np.frombuffer(data, dtype, count, start + begin).reshape(shape)
        for name, (dtype, shape, count, begin) in arrays.items()
    }


def _tensor_entry(name: str, entry: Any) -> tuple[np.dtype, tuple[int, ...], tuple[int, int]]:
    """A header entry's dtype, shape and data offsets, each checked for type and range."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"tensor {name!r} is not described by dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {str(dtype)[:20]!r}")
    integers = (shape if isinstance(shape, list) else [None]) + (
        offsets if isinstance(offsets, list) and len(offsets) == 2 else [None]
    )
    if not all(type(n) is int and 0 <= n < 1 << 62 for n in integers) or len(shape) > 8:
        raise ValueError(f"tensor {name!r} has shape {str(shape)[:40]} at {str(offsets)[:40]}")
    if offsets[0] > offsets[1]:
        raise ValueError(f"tensor {name!r} ends before it starts")
    little_endian = np.dtype(SAFETENSORS_DTYPES[dtype]).newbyteorder("<")  # as safetensors stores
    return little_endian, tuple(shape), (offsets[0], offsets[1])


def max_array_file_bytes() -> int:
    """Half this machine's memory: a larger arrays file could not be loaded (parsing copies it)."""
    return memory_bytes() // 2


# ----------------------------------------------------------------------------------------------
# Pytrees <-> named arrays. The structure always comes from a template built by code.
# ----------------------------------------------------------------------------------------------


def pytree_to_arrays(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    """Name every leaf ``prefix`` + its key path, e.g. ``params['params']['hidden_0']['kernel']``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def arrays_to_pytree(prefix: str, template: Any, arrays: dict[str, np.ndarray], source: str) -> Any:
    """Fill ``template``'s structure from ``arrays``; every name, shape and dtype must match.

    ``template`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves (from ``jax.eval_shape``).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [prefix + jax.tree_util.keystr(path) for path, _ in leaves]
    extra = sorted(
        k for k in arrays if k.startswith((prefix + "[", prefix + ".")) and k not in set(names)
    )
    if extra:
        raise CheckpointError(f"{source}: unexpected array {extra[0]}")
    restored = []
    for name, (_, leaf) in zip(names, leaves, strict=True):
        if name not in arrays:
            raise CheckpointError(f"{source}: array {name} is missing")
        value, shape, dtype = arrays[name], tuple(leaf.shape), np.dtype(leaf.dtype)
        if value.shape != shape or value.dtype != dtype:
            raise CheckpointError(
                f"{source}: array {name} is {value.dtype}{list(value.shape)}, expected {dtype}{list(shape)}"
            )
        restored.append(jax.numpy.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def checkpoint_config(from_dict: Callable[[dict[str, Any]], Config], meta: dict[str, Any],
                      source: str) -> Config:  # fmt: skip
    """The config in a checkpoint's meta.json, validated by its config class; any violation (a
    value out of bounds, an env id naming a module) is a CheckpointError."""
    try:
        return from_dict(meta["config"])
    except DeepQError as exc:
        raise CheckpointError(f"{source}: meta.json holds an invalid config ({exc})") from None


def saved_checkpoints_note(checkpoints: Path) -> str:
    """Where the run's finite checkpoints are, for a divergence message, or that there are none
    (every save checks finiteness, so whatever is there is finite)."""
    names = [name for name in ("latest", "best") if checkpoint_exists(checkpoints / name)]
    if not names:
        return "no checkpoint had been saved yet"
    return f"its last finite checkpoints are {' and '.join(str(checkpoints / n) for n in names)}"


def first_non_finite(arrays: dict[str, np.ndarray]) -> str | None:
    """The name of the first floating-point array holding a NaN or an infinity, if any."""
    for name, value in arrays.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            return name
    return None


def require_finite(arrays: dict[str, np.ndarray], source: str) -> None:
    """A checkpoint's parameters must be finite: a NaN agent is never loaded."""
    name = first_non_finite(arrays)
    if name is not None:
        raise CheckpointError(f"{source}: array {name} holds NaN or infinite values")


def save_network_agent(directory: str | Path, kind: str, agent: Any) -> None:
    """Save an agent whose parameters are a pytree (DQN, REINFORCE): ``params`` as arrays, and
    meta.json with ``kind``, the config and the env facts its loader rebuilds the network from.
    Non-finite parameters are refused (TrainingDiverged): a saved agent is always usable."""
    from deepq.version import __version__

    arrays = pytree_to_arrays("params", agent.params)
    if first_non_finite(arrays) is not None:
        raise TrainingDiverged(
            f"the parameters became non-finite by env step {agent.info.get('env_steps', '?')} "
            f"(try a lower learning_rate); {directory} was not written"
        )

    meta = {
        "kind": kind,
        "deepq_version": __version__,
        "config": agent.config.to_dict(),
        "obs_dim": agent.obs_dim,
        "n_actions": agent.n_actions,
        "info": agent.info,
        **observation_facts(getattr(agent, "obs_shape", None), getattr(agent, "obs_dtype", None)),
    }
    save_checkpoint(directory, arrays, meta)


def observation_facts(shape: Any, dtype: Any) -> dict[str, Any]:
    """What a checkpoint's meta says of the observations beyond ``obs_dim``: ``obs_shape`` for
    frames, ``obs_dtype`` for uint8 ones (the network scales them by 1/255). Float vectors, as
    every earlier deepq wrote them, need neither."""
    facts: dict[str, Any] = {}
    if shape is not None and len(shape) > 1:
        facts["obs_shape"] = [int(n) for n in shape]
    if dtype is not None and np.dtype(dtype) == np.uint8:
        facts["obs_dtype"] = "uint8"
    return facts
