"""The files of an activation store: format constants, checksummed `.npy` writes, and the
manifest check that decides whether a folder is a complete store.

Every file of a store (row shards, per-row field shards, the documents of a token store) is
written through `save_npy`, which returns its blake2b checksum; the manifest lists each file
with its checksum and is written last, so a folder without a manifest was never finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DTYPES",
    "FACTOR",
    "FORMAT",
    "MANIFEST",
    "VERIFY",
    "VERSION",
    "StoreError",
    "checksum",
    "read_manifest",
    "save_npy",
]

FORMAT = "sae_widgets.activation_store"
VERSION = 1
MANIFEST = "manifest.json"
DTYPES = ("float32", "float16")
VERIFY = ("lazy", "open", "never")
FACTOR = "factor:"  # field-name prefix of a dataset's factors
_HASH_BLOCK = 16 * 2**20


class StoreError(ValueError):
    """A folder that is not a complete, intact activation store."""


def checksum(path: Path) -> str:
    """blake2b (20 bytes, hex) of a file's content."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _HashingFile:
    """A write-only file that hashes what passes through (np.save writes in blocks)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.digest = hashlib.blake2b(digest_size=20)

    def write(self, data: Any) -> int:
        self.digest.update(data)
        written: int = self.f.write(data)
        return written


def save_npy(path: Path, array: np.ndarray) -> str:
    """Write `array` as .npy (synced to disk) and return its file's checksum."""
    with open(path, "wb") as f:
        hashing = _HashingFile(f)
        np.lib.format.write_array(hashing, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return hashing.digest.hexdigest()


def check_file(folder: Path, entry: Any, verified: set[str] | None = None) -> Path:
    """The path of manifest entry `entry` ({"file", "blake2b"}) in `folder`, its checksum
    checked (once per name when `verified` is given); a mismatch is a StoreError."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise StoreError(f"path: the manifest of {str(folder)!r} has a malformed file entry")
    name = entry["file"]
    if verified is not None and name in verified:
        return folder / name
    actual = checksum(folder / name)
    if actual != entry.get("blake2b"):
        raise StoreError(
            f"path: {name} of {str(folder)!r} is corrupt (blake2b {actual[:12]}..., the "
            f"manifest says {str(entry.get('blake2b'))[:12]}...)"
        )
    if verified is not None:
        verified.add(name)
    return folder / name


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at `path`, after checking that every file it lists exists."""
    if not path.is_dir():
        partial = (
            sorted(path.parent.glob(f".{path.name}.partial-*")) if path.parent.is_dir() else []
        )
        hint = (
            f" (an interrupted write left {partial[0].name}; delete it and write again)"
            if partial
            else ""
        )
        raise StoreError(f"path: no activation store at {str(path)!r}{hint}")
    file = path / MANIFEST
    if not file.is_file():
        raise StoreError(
            f"path: {str(path)!r} has no {MANIFEST}: not a complete activation store (a write "
            "that was interrupted never gets one); write it again"
        )
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"path: {file} cannot be read as JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"path: {file} is not an activation store manifest")
    if manifest.get("version") != VERSION:
        raise StoreError(f"path: store version {manifest.get('version')!r}; expected {VERSION}")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not shards:
        raise StoreError(f"path: {file} lists no shards")
    problem = _malformed(manifest)
    if problem:  # a hand-edited or foreign file: not KeyError 'd' or int('x') later
        raise StoreError(f"path: {file} is malformed: {problem}")
    if sum(int(s["rows"]) for s in shards) != manifest.get("n_samples"):
        raise StoreError(f"path: {file}: the shards' rows do not add up to n_samples")
    names = [name for shard in shards for name in _shard_files(shard)]
    names += [entry["file"] for entry in manifest.get("files", {}).values()]
    for name in names:
        if not (path / name).is_file():
            raise StoreError(f"path: file {name} of {str(path)!r} is missing")
    return manifest


def _count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _file_name(value: Any) -> bool:
    """A file name relative to the store's folder, inside it (no '..', not absolute)."""
    if not isinstance(value, str) or not value:
        return False
    path = Path(value)
    return not path.is_absolute() and ".." not in path.parts


def _file_entries(value: Any) -> bool:
    """A mapping of names to {"file": name, ...} entries."""
    return isinstance(value, dict) and all(
        isinstance(e, dict) and _file_name(e.get("file")) for e in value.values()
    )


def _numeric_dtype(value: Any) -> bool:
    try:
        return isinstance(value, str) and np.dtype(value).kind in "biuf"
    except TypeError:
        return False


def _malformed(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the structure of a manifest, or None: each field an
    ActivationStore reads must have the type and range the writer gives it."""
    d, n, dtype = manifest.get("d"), manifest.get("n_samples"), manifest.get("dtype")
    if not _count(d, 1):
        return f"'d' must be a positive integer; got {d!r}"
    if not _count(n, 1):
        return f"'n_samples' must be a positive integer; got {n!r}"
    if dtype not in DTYPES:
        return f"'dtype' must be one of {DTYPES}; got {dtype!r}"
    fields = manifest.get("fields")
    if not isinstance(fields, dict) or not all(map(_numeric_dtype, fields.values())):
        return f"'fields' must map names to numeric dtypes; got {fields!r:.80}"
    if not _file_entries(manifest.get("files", {})):
        return "'files' must map names to {'file': relative name} entries"
    for shard in manifest["shards"]:
        if not (
            isinstance(shard, dict)
            and _file_name(shard.get("file"))
            and _count(shard.get("rows"), 0)
            and _file_entries(shard.get("fields", {}))
        ):
            return f"each shard must be {{'file': name, 'rows': count, ...}}; got {shard!r:.80}"
        missing = sorted(set(fields) - set(shard.get("fields", {})))
        if missing:  # read as shard["fields"][name]: a raw KeyError
            return f"field {missing[0]!r} of 'fields' has no file in shard {shard['file']!r}"
    names = manifest.get("label_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(name, str) for name in names)
    ):
        return f"'label_names' must be a list of strings; got {names!r:.80}"
    return None


def _shard_files(shard: dict[str, Any]) -> list[str]:
    return [shard["file"], *(f["file"] for f in shard.get("fields", {}).values())]
