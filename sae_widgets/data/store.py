"""`ActivationStore`: activations on disk, in fixed-size `.npy` shards plus a JSON manifest.

Layout of a store folder::

    acts/
      manifest.json            # written last: shape, dtype, model, layer, fields, shards
      shard_00000.npy          # (shard_size, d) rows, memory-mappable
      shard_00000.f0.npy       # per-row metadata field 0 of that shard (labels, doc ids, ...)
      ...

Writing (`StoreWriter`, used by `collect_activations(..., out=...)`) holds at most one shard
in memory, whatever the total size. Everything goes into a staging folder next to the target;
the manifest is written last and the folder is renamed into place, so a crash leaves either
no store or a whole one: a folder without a manifest is refused with a `StoreError`. Each
file's blake2b checksum is in the manifest and checked when the shard is first read
(`verify="lazy"`), for all shards on open (`verify="open"`), or not at all (`"never"`).

A store is a `Dataset`: `X` is a `ShardedArray` (read-only, memory-mapped, float32 reads), and
labels, label_names and factors come back from the metadata; other per-row fields (token
positions, document ids...) are in `store.fields` and set as attributes of the same name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data._arrays import _check_finite, _to_numpy
from sae_widgets.data.dataset import Dataset
from sae_widgets.data.sharded import ShardedArray

__all__ = ["ActivationStore", "StoreError", "StoreWriter", "row_fields"]

FORMAT = "sae_widgets.activation_store"
VERSION = 1
MANIFEST = "manifest.json"
DTYPES = ("float32", "float16")
VERIFY = ("lazy", "open", "never")
SHARD_BYTES = 64 * 2**20  # default shard: about 64 MiB of rows
_FACTOR = "factor:"
_HASH_BLOCK = 16 * 2**20


class StoreError(ValueError):
    """A folder that is not a complete, intact activation store."""


def _blake2b(path: Path) -> str:
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


def _save(path: Path, array: np.ndarray) -> str:
    """Write `array` as .npy and return its file's checksum."""
    with open(path, "wb") as f:
        hashing = _HashingFile(f)
        np.lib.format.write_array(hashing, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return hashing.digest.hexdigest()


def row_fields(data: Dataset) -> dict[str, np.ndarray]:
    """Per-row metadata of a Dataset worth keeping in a store: labels, factors (as
    "factor:<name>"), the token rows of language-model activations (token_doc, token_pos,
    token_id) and any other 1-D integer array attribute with one entry per sample."""
    n = len(data)
    fields: dict[str, np.ndarray] = {}
    if data.labels is not None:
        fields["labels"] = data.labels
    for name, values in (data.factors or {}).items():
        fields[_FACTOR + name] = values
    tokens = getattr(data, "tokens", None)
    if tokens is not None:  # language-model rows: document, position and token id of each
        for name in ("doc", "pos", "token_id"):
            fields[f"token_{name}" if name != "token_id" else name] = getattr(tokens, name)
    for name, value in vars(data).items():
        if name.startswith("_") or name in fields or name in ("X", "labels"):
            continue
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape[0] == n:
            if np.issubdtype(value.dtype, np.integer):
                fields[name] = value
    return fields


class StoreWriter:
    """Append rows (and per-row fields) to a new store; `close()` publishes it atomically.

    Use as a context manager: an exception inside removes the staging folder, and the target
    is never touched until the manifest of a complete store is in place.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        d: int,
        *,
        shard_size: int | None = None,
        dtype: str = "float32",
        info: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
            raise TypeError(f"out must be a folder path (str or Path); got {type(path).__name__}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        self.dtype = np.dtype(dtype)
        if shard_size is None:
            shard_size = max(1, SHARD_BYTES // (int(d) * self.dtype.itemsize))
        if isinstance(shard_size, bool) or not isinstance(shard_size, int | np.integer):
            raise TypeError(f"shard_size must be an int; got {type(shard_size).__name__}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1; got {shard_size}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            if not self.path.is_dir() or any(self.path.iterdir()):
                raise ValueError(
                    f"out: {str(self.path)!r} already exists; choose a new folder or pass "
                    "overwrite=True"
                )
        self.d, self.shard_size = int(d), int(shard_size)
        self.info = dict(info or {})
        self.overwrite = overwrite
        self.staging = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir(parents=True)
        self._buffer = np.empty((self.shard_size, self.d), dtype=self.dtype)
        self._field_buffers: dict[str, np.ndarray] = {}
        self._fill = 0
        self._shards: list[dict[str, Any]] = []
        self._field_dtypes: dict[str, str] = {}
        self.n_samples = 0
        self._closed = False

    def append(self, X: Any, fields: Mapping[str, Any] | None = None) -> None:
        """Add rows `X` (m, d) and, for each field, its (m,) values for those rows."""
        if self._closed:
            raise ValueError("the store writer is closed")
        rows = np.asarray(_to_numpy(X, "X"), dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"X must have shape (m, {self.d}); got {rows.shape}")
        _check_finite(rows, "X")
        given = {name: _to_numpy(v, f"fields[{name!r}]") for name, v in (fields or {}).items()}
        if self.n_samples == 0 and not self._field_dtypes:
            for name, values in given.items():
                self._start_field(name, values)
        if set(given) != set(self._field_dtypes):
            raise ValueError(
                f"fields must name the same fields on every append: {sorted(self._field_dtypes)};"
                f" got {sorted(given)}"
            )
        for name, values in given.items():
            if values.shape != (rows.shape[0],):
                raise ValueError(
                    f"fields[{name!r}] must have one value per row ({rows.shape[0]}); "
                    f"got shape {values.shape}"
                )
        pos = 0
        while pos < rows.shape[0]:
            take = min(self.shard_size - self._fill, rows.shape[0] - pos)
            self._buffer[self._fill : self._fill + take] = rows[pos : pos + take]
            for name, values in given.items():
                self._field_buffers[name][self._fill : self._fill + take] = values[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.shard_size:
                self._flush()
        self.n_samples += rows.shape[0]

    def _start_field(self, name: str, values: np.ndarray) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"field names must be non-empty strings; got {name!r}")
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
            raise TypeError(f"fields[{name!r}] must hold numbers; got dtype {values.dtype}")
        dtype = np.dtype(np.int64) if np.issubdtype(values.dtype, np.integer) else values.dtype
        self._field_dtypes[name] = dtype.str
        self._field_buffers[name] = np.empty(self.shard_size, dtype=dtype)

    def _flush(self) -> None:
        if self._fill == 0:
            return
        index = len(self._shards)
        stem = f"shard_{index:05d}"
        entry: dict[str, Any] = {"file": f"{stem}.npy", "rows": self._fill, "fields": {}}
        entry["blake2b"] = _save(self.staging / entry["file"], self._buffer[: self._fill])
        for j, name in enumerate(self._field_dtypes):
            file = f"{stem}.f{j}.npy"
            digest = _save(self.staging / file, self._field_buffers[name][: self._fill])
            entry["fields"][name] = {"file": file, "blake2b": digest}
        self._shards.append(entry)
        self._fill = 0

    def close(self) -> Path:
        """Write the last shard and the manifest, then rename the store into place."""
        if self._closed:
            return self.path
        if self.n_samples == 0:
            self.abort()
            raise ValueError("no rows were written: a store needs at least one sample")
        self._flush()
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "n_samples": self.n_samples,
            "d": self.d,
            "dtype": self.dtype.name,
            "shard_size": self.shard_size,
            "fields": self._field_dtypes,
            **{k: v for k, v in self.info.items() if k not in ("shards",)},
            "shards": self._shards,
        }
        tmp = self.staging / (MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.staging / MANIFEST)
        old = None
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.path, old)
        os.replace(self.staging, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (the target folder is left as it was)."""
        self._closed = True
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _read_manifest(path: Path) -> dict[str, Any]:
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
    if sum(int(s["rows"]) for s in shards) != manifest.get("n_samples"):
        raise StoreError(f"path: {file}: the shards' rows do not add up to n_samples")
    for shard in shards:
        files = [shard["file"], *(f["file"] for f in shard.get("fields", {}).values())]
        for name in files:
            if not (path / name).is_file():
                raise StoreError(f"path: shard file {name} of {str(path)!r} is missing")
    return manifest


class ActivationStore(Dataset):
    """An activation store on disk, opened as a (memory-mapped, read-only) Dataset.

    path: the folder written by `collect_activations(..., out=path)` or a `StoreWriter`.
    verify: when to check the shards' blake2b checksums: "lazy" (each shard when first
        read), "open" (all now) or "never". A mismatch raises a `StoreError`.
    """

    def __init__(self, path: str | os.PathLike[str], verify: str = "lazy") -> None:
        if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a folder path (str or Path); got {type(path).__name__}")
        if not isinstance(verify, str) or verify not in VERIFY:
            raise ValueError(f"verify must be one of {VERIFY}; got {verify!r}")
        self.path = Path(path)
        self.manifest = manifest = _read_manifest(self.path)
        self.verify = verify
        shards = manifest["shards"]
        self._verified: set[str] = set()
        self.X: np.ndarray = ShardedArray(  # type: ignore[assignment]  # a read-only ndarray
            [self.path / s["file"] for s in shards],
            [int(s["rows"]) for s in shards],
            int(manifest["d"]),
            stored_dtype=manifest["dtype"],
            on_open=None if verify == "never" else self._verify_shard,
        )
        self.fields: dict[str, np.ndarray] = {
            name: self._read_field(name, np.dtype(dt)) for name, dt in manifest["fields"].items()
        }
        labels = self.fields.get("labels")
        self.labels = None if labels is None else labels.astype(np.int64)
        self.label_names = manifest.get("label_names")
        factors = {k[len(_FACTOR) :]: v for k, v in self.fields.items() if k.startswith(_FACTOR)}
        self.factors = factors or None
        self.images = None
        self.true_features = None
        self.true_codes = None
        self.attributes = {}
        self.tokens = None  # the per-row token_doc / token_pos / token_id fields are below
        self.name = str(manifest.get("name", "") or self.path.name)
        for name, values in self.fields.items():
            if re.fullmatch(r"[A-Za-z_]\w*", name) and not hasattr(self, name):
                setattr(self, name, values)
        if verify == "open":
            for i in range(len(shards)):
                self._verify_shard(i)

    @property
    def model(self) -> str | None:
        """Which model the activations came from (as written), or None."""
        return self.manifest.get("model")

    @property
    def layer(self) -> str | None:
        """Which layer of the model, or None."""
        return self.manifest.get("layer")

    @property
    def shard_rows(self) -> np.ndarray:
        """(n_shards,) rows in each shard."""
        return np.asarray([int(s["rows"]) for s in self.manifest["shards"]], dtype=np.int64)

    def _check_file(self, file: str, expected: str) -> None:
        if file in self._verified:
            return
        actual = _blake2b(self.path / file)
        if actual != expected:
            raise StoreError(
                f"path: {file} of {str(self.path)!r} is corrupt (blake2b {actual[:12]}..., "
                f"the manifest says {expected[:12]}...)"
            )
        self._verified.add(file)

    def _verify_shard(self, i: int) -> None:
        shard = self.manifest["shards"][i]
        self._check_file(shard["file"], shard["blake2b"])
        for field in shard.get("fields", {}).values():
            self._check_file(field["file"], field["blake2b"])

    def _read_field(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        parts = []
        for shard in self.manifest["shards"]:
            entry = shard["fields"][name]
            if self.verify != "never":
                self._check_file(entry["file"], entry["blake2b"])
            part = np.load(self.path / entry["file"], allow_pickle=False)
            if part.shape != (int(shard["rows"]),) or part.dtype != dtype:
                raise StoreError(f"path: field file {entry['file']} has the wrong shape or dtype")
            parts.append(part)
        return np.concatenate(parts)

    def __repr__(self) -> str:
        n, d = self.X.shape
        fields = ", ".join(self.fields) or "none"
        return (
            f"ActivationStore({str(self.path)!r}, n={n}, d={d}, "
            f"shards={len(self.manifest['shards'])}, dtype={self.manifest['dtype']}, "
            f"fields=[{fields}])"
        )


def write_store(
    transform: Any,
    data: Dataset,
    out: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
    chunk_size: int = 8192,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> ActivationStore:
    """Stream `transform(rows)` over `data.X` in chunks into a new store at `out` (with the
    dataset's per-row fields) and open it. Memory: one chunk plus one shard."""
    fields = row_fields(data)
    info = {"label_names": data.label_names, "name": data.name, **(info or {})}
    writer: StoreWriter | None = None
    try:
        for lo in range(0, len(data), chunk_size):
            hi = min(lo + chunk_size, len(data))
            acts = np.asarray(transform(np.asarray(data.X[lo:hi], dtype=np.float32)))
            if writer is None:
                writer = StoreWriter(
                    out, acts.shape[1], shard_size=shard_size, info=info, overwrite=overwrite
                )
            writer.append(acts, {name: values[lo:hi] for name, values in fields.items()})
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    assert writer is not None  # a Dataset is never empty
    return ActivationStore(writer.close())
