"""Checkpoints: arrays in safetensors, everything else in JSON. No pickle anywhere.

A checkpoint is a directory::

    arrays.safetensors   every array (parameters, optimiser state, replay, ...), by name
    meta.json            config, env facts, counters, RNG states, schema version
    manifest.json        sha256 and size of the two files above
    COMPLETE             written last: a directory without it is never trusted

Writing is atomic: everything goes to a hidden temporary sibling, is flushed to disk and only
then renamed into place, so a crash at any moment leaves the previous checkpoint loadable.
Loading verifies the marker, the manifest, and (in :func:`arrays_to_pytree`) every shape and
dtype against a template built from code, so a file can never choose what objects get built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from deepq.errors import CheckpointError

SCHEMA_VERSION = 1
ARRAYS_FILE = "arrays.safetensors"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
COMPLETE_FILE = "COMPLETE"


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
        raise CheckpointError(
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
    delete the oldest copies with the same name prefix beyond the newest ``keep``."""
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
        raise CheckpointError(
            f"could not keep a copy of {checkpoint} as {copy} ({exc.strerror or exc})"
        ) from None
    prefix = copy.name.rstrip("0123456789")
    copies = sorted(p for p in copy.parent.iterdir() if p.is_dir() and p.name.startswith(prefix))
    for stale in copies[: max(0, len(copies) - keep)]:
        shutil.rmtree(stale, ignore_errors=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


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


def load_checkpoint(directory: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a verified checkpoint, or CheckpointError naming what is wrong."""
    directory = _readable_location(Path(directory))
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        expected_files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{directory / MANIFEST_FILE} is missing or corrupt ({exc})"
        ) from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{directory} has checkpoint schema {manifest.get('schema_version')!r}; "
            f"this deepq reads schema {SCHEMA_VERSION}"
        )
    contents: dict[str, bytes] = {}
    for name in (ARRAYS_FILE, META_FILE):
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError:
            raise CheckpointError(f"{path} is missing") from None
        entry = expected_files.get(name) if isinstance(expected_files, dict) else None
        if not isinstance(entry, dict) or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise CheckpointError(f"{path} is corrupt (sha256 does not match {MANIFEST_FILE})")
        contents[name] = data
    try:
        arrays = safetensors_load(contents[ARRAYS_FILE])
        meta = json.loads(contents[META_FILE])
    except Exception as exc:  # noqa: BLE001 - any parse failure of a verified file is corruption
        raise CheckpointError(f"{directory} cannot be parsed ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{directory / META_FILE} must hold a JSON object")
    return arrays, meta


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


def save_network_agent(directory: str | Path, kind: str, agent: Any) -> None:
    """Save an agent whose parameters are a pytree (DQN, REINFORCE): ``params`` as arrays, and
    meta.json with ``kind``, the config and the env facts its loader rebuilds the network from."""
    from deepq.version import __version__

    meta = {
        "kind": kind,
        "deepq_version": __version__,
        "config": agent.config.to_dict(),
        "obs_dim": agent.obs_dim,
        "n_actions": agent.n_actions,
        "info": agent.info,
    }
    save_checkpoint(directory, pytree_to_arrays("params", agent.params), meta)
