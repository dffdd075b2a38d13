"""Tampering with real checkpoints as an attacker who controls every file would: edit a member,
then re-hash the manifest so that the edit passes the integrity check and reaches the loader."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save


def rehash(directory: Path, name: str) -> None:
    """Make manifest.json list ``name`` with its current hash and size."""
    data = (directory / name).read_bytes()
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest))


def replace_member(directory: Path, name: str, data: bytes) -> None:
    """Replace a member's bytes; the manifest is re-hashed unless it is the manifest itself."""
    (directory / name).write_bytes(data)
    if name != "manifest.json":
        rehash(directory, name)


def edit_json(directory: Path, name: str, edit: Callable[[Any], Any]) -> None:
    """``edit`` changes the parsed JSON in place (or returns a replacement); then re-hash."""
    value = json.loads((directory / name).read_text())
    replaced = edit(value)
    text = json.dumps(value if replaced is None else replaced)
    replace_member(directory, name, text.encode())


def edit_meta(directory: Path, edit: Callable[[dict], Any]) -> None:
    edit_json(directory, "meta.json", edit)


def edit_arrays(directory: Path, edit: Callable[[dict[str, np.ndarray]], Any]) -> None:
    """``edit`` changes the dict of named arrays in place; then re-hash."""
    arrays = dict(safetensors_load((directory / "arrays.safetensors").read_bytes()))
    edit(arrays)
    replace_member(directory, "arrays.safetensors", safetensors_save(arrays))


def set_path(tree: Any, path: tuple, value: Any) -> None:
    """``tree[p0][p1]... = value``."""
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value
