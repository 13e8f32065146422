"""`StoreWriter`: append rows to a new activation store, holding at most one shard in memory,
and publish it atomically.

Everything goes into a staging folder next to the target (``.NAME.partial-XXXX``); `close()`
writes the last shard, then the manifest (listing every file with its blake2b checksum), then
renames the folder into place. A crash or an exception leaves either no store or a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data._arrays import _as_float32, _to_numpy
from sae_widgets.data.checks import check_int, check_memory
from sae_widgets.data.dataset import Dataset
from sae_widgets.data.store_files import (
    DTYPES,
    FACTOR,
    FORMAT,
    MANIFEST,
    VERSION,
    checksum,
    save_npy,
)
from sae_widgets.label_codes import check_label_names, encode_labels
from sae_widgets.paths import WRITER_SPARE, as_path, check_name_lengths, check_not_working_folder

__all__ = ["SHARD_BYTES", "StoreWriter", "row_fields"]

SHARD_BYTES = 64 * 2**20  # default shard: about 64 MiB of rows
_MANIFEST_KEYS = (
    "format",
    "version",
    "n_samples",
    "d",
    "dtype",
    "shard_size",
    "fields",
    "files",
    "shards",
)


def row_fields(data: Dataset) -> dict[str, np.ndarray]:
    """Per-row metadata of a Dataset worth keeping in a store: labels, factors (as
    "factor:<name>"), the token rows of language-model activations (token_doc, token_pos,
    token_id) and any other 1-D integer array attribute with one entry per sample."""
    n = len(data)
    fields: dict[str, np.ndarray] = {}
    if data.labels is not None:
        fields["labels"] = data.labels
    for name, values in (data.factors or {}).items():
        fields[FACTOR + name] = values
    tokens = getattr(data, "tokens", None)
    if tokens is not None:  # language-model rows: document, position and token id of each
        fields.update(token_doc=tokens.doc, token_pos=tokens.pos, token_id=tokens.token_id)
    for name, value in vars(data).items():
        if name.startswith("_") or name in fields or name in ("X", "labels"):
            continue
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape[0] == n:
            if np.issubdtype(value.dtype, np.integer):
                fields[name] = value
    return fields


def _check_target(path: Path, overwrite: bool) -> None:
    """Refuse a target the store may not replace, before anything is written: an existing
    file or non-empty folder (unless `overwrite`, and then only a complete store: a user's
    other folder is never deleted), or the working folder or one above it (which cannot be
    renamed aside)."""
    check_not_working_folder(path, "out")
    if not path.exists():
        return
    if not path.is_dir() or any(path.iterdir()):
        if not overwrite:
            raise ValueError(
                f"out: {str(path)!r} already exists; choose a new folder or pass overwrite=True"
            )
        if not (path.is_dir() and (path / MANIFEST).is_file()):
            what = "a folder that is not" if path.is_dir() else "a file, not"
            raise ValueError(
                f"out: {str(path)!r} is {what} an activation store; overwrite=True replaces "
                "only a store, so nothing was changed: choose a new folder"
            )


def _check_fits(name: str, values: np.ndarray, stored: np.dtype[Any]) -> None:
    """Refuse field values the stored dtype would change silently: unsigned integers past
    int64 wrapped to negatives, finite floats past a narrower float's range became inf."""
    if not values.size:
        return
    if stored.kind == "i" and values.dtype.kind == "u":
        top = int(values.max())
        if top > np.iinfo(stored).max:
            raise ValueError(
                f"fields[{name!r}] holds {top}, beyond what its {stored} values store "
                f"(<= {np.iinfo(stored).max})"
            )
    elif stored.kind == "f" and values.dtype.kind == "f" and values.dtype != stored:
        finite = values[np.isfinite(values)]
        big = float(np.abs(finite).max()) if finite.size else 0.0
        if big > float(np.finfo(stored).max):
            raise ValueError(
                f"fields[{name!r}] holds {big:.4g}, beyond what its {stored} values store "
                f"(|x| <= {float(np.finfo(stored).max):.4g}); the first append sets the dtype"
            )


class StoreWriter:
    """Append rows (and per-row fields) to a new store; `close()` publishes it atomically.

    Use as a context manager: an exception inside removes the staging folder, and the target
    is never touched until the manifest of a complete store is in place. `info` entries go
    into the manifest as they are (JSON values); `save_array` and `add_file` add whole-store
    files (checksummed like the shards).
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
        path = as_path(path, "out")
        check_name_lengths(path, "out", WRITER_SPARE)  # room for the staging folder's name
        d = check_int(d, "d", 1)  # before anything is created on disk
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        self.dtype = np.dtype(dtype)
        if shard_size is None:
            shard_size = max(1, SHARD_BYTES // (int(d) * self.dtype.itemsize))
        if isinstance(shard_size, bool) or not isinstance(shard_size, int | np.integer):
            raise TypeError(f"shard_size must be an int; got {type(shard_size).__name__}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1; got {shard_size}")
        check_memory(int(shard_size) * d * self.dtype.itemsize, "StoreWriter(d, shard_size)")
        if os.fspath(path) in ("", "."):
            raise ValueError(f"out must name a new folder for the store; got {path!r}")
        self.path = Path(path)
        _check_target(self.path, overwrite)
        self.d, self.shard_size = int(d), int(shard_size)
        if info is not None and not isinstance(info, Mapping):
            raise TypeError(f"info must be a dict of JSON values; got {type(info).__name__}")
        self.info = dict(info or {})
        reserved = sorted(set(self.info) & set(_MANIFEST_KEYS))
        if reserved:  # it replaced the manifest's own entry: a store no reader could open
            raise ValueError(
                f"info must not name what the manifest itself records {_MANIFEST_KEYS}; "
                f"got {reserved[0]!r}"
            )
        if self.info.get("label_names") is not None:  # a list of distinct names, as a Dataset's
            self.info["label_names"] = check_label_names(self.info["label_names"])
        try:  # refused now, not when close() writes the manifest (the rows would be lost)
            json.dumps(self.info)
        except (TypeError, ValueError) as err:
            raise TypeError(f"info must hold JSON values only; {err}") from None
        self.overwrite = overwrite
        self.staging = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            self.staging.mkdir(parents=True)
        except OSError as err:  # e.g. a file where a parent folder should be
            raise ValueError(
                f"out: cannot create a folder beside {str(self.path)!r} ({err.strerror})"
            ) from None
        self._buffer = np.empty((self.shard_size, self.d), dtype=self.dtype)
        self._field_buffers: dict[str, np.ndarray] = {}
        self._fill = 0
        self._shards: list[dict[str, Any]] = []
        self._field_dtypes: dict[str, str] = {}
        self._files: dict[str, dict[str, str]] = {}
        self.n_samples = 0
        self._closed = False

    def append(self, X: Any, fields: Mapping[str, Any] | None = None) -> None:
        """Add rows `X` (m, d) and, for each field, its (m,) values for those rows."""
        if self._closed:
            raise ValueError("the store writer is closed")
        array = _to_numpy(X, "X")
        if array.dtype.kind not in "biuf":  # complex: float32 kept the real part silently
            raise TypeError(f"X must hold numbers, real ones; got dtype {array.dtype}")
        if array.ndim != 2 or array.shape[1] != self.d:
            raise ValueError(f"X must have shape (m, {self.d}); got {array.shape}")
        rows = _as_float32(array, "X")  # NaN, inf and values past float32's range refused
        limit = float(np.finfo(self.dtype).max)
        if self.dtype != np.float32 and rows.size and float(np.abs(rows).max()) > limit:
            raise ValueError(  # the cast would store inf, and training would fail on it later
                f"X holds {float(np.abs(rows).max()):.4g}, beyond what dtype={self.dtype.name!r} "
                f"stores (|x| <= {limit:.4g}); use dtype='float32'"
            )
        if fields is not None and not isinstance(fields, Mapping):
            raise TypeError(f"fields must be a dict name -> (m,) values; got {fields!r:.80}")
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
            stored = self._field_buffers[name].dtype
            # later appends too: a float into an int field was truncated, an int into a bool
            # field became True, objects reached a raw OverflowError (complex, text, objects
            # and dates cast to no stored real kind)
            if not np.can_cast(values.dtype, stored, casting="same_kind"):
                raise TypeError(
                    f"fields[{name!r}] must hold real numbers of the kind its first append "
                    f"stored ({stored}); got dtype {values.dtype}"
                )
            if values.shape != (rows.shape[0],):
                raise ValueError(
                    f"fields[{name!r}] must have one value per row ({rows.shape[0]}); "
                    f"got shape {values.shape}"
                )
            _check_fits(name, values, stored)
        if "labels" in given:  # class indices a store's label_names name, as in a Dataset
            encode_labels(given["labels"], rows.shape[0], self.info.get("label_names"))
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

    def save_array(self, role: str, array: np.ndarray) -> None:
        """Write a whole-store array (e.g. a token store's documents) as ``<role>.npy``."""
        file = f"{role}.npy"
        self._files[role] = {"file": file, "blake2b": save_npy(self.staging / file, array)}

    def add_file(self, role: str, relative: str) -> None:
        """List a file already written under `staging` (checksummed now) as `role`."""
        inside = isinstance(relative, str) and not Path(relative).is_absolute()
        if not inside or ".." in Path(relative).parts or not (self.staging / relative).is_file():
            raise ValueError(
                f"relative must name a file written inside the store's staging folder "
                f"{str(self.staging)!r}; got {relative!r}"
            )
        self._files[role] = {"file": relative, "blake2b": checksum(self.staging / relative)}

    def _start_field(self, name: str, values: np.ndarray) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"field names must be non-empty strings; got {name!r}")
        if values.dtype.kind not in "biuf":  # a complex field made a store no reader opens
            raise TypeError(
                f"fields[{name!r}] must hold numbers, real ones; got dtype {values.dtype}"
            )
        if name == "labels" and values.dtype.kind not in "biu":  # read back as int64: 1.7 -> 1
            raise TypeError(
                f"fields['labels'] must hold integer class ids; got dtype {values.dtype}"
            )
        dtype = np.dtype(np.int64) if np.issubdtype(values.dtype, np.integer) else values.dtype
        self._field_dtypes[name] = dtype.str
        self._field_buffers[name] = np.empty(self.shard_size, dtype=dtype)

    def _flush(self) -> None:
        if self._fill == 0:
            return
        index = len(self._shards)
        stem = f"shard_{index:05d}"
        entry: dict[str, Any] = {"file": f"{stem}.npy", "rows": self._fill, "fields": {}}
        entry["blake2b"] = save_npy(self.staging / entry["file"], self._buffer[: self._fill])
        for j, name in enumerate(self._field_dtypes):
            file = f"{stem}.f{j}.npy"
            digest = save_npy(self.staging / file, self._field_buffers[name][: self._fill])
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
            **self.info,
            "files": self._files,
            "shards": self._shards,
        }
        tmp = self.staging / (MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.staging / MANIFEST)
        old = None
        if not self.overwrite:  # rename refuses a non-empty folder or a file: no race
            try:
                os.rename(self.staging, self.path)
            except OSError:
                self.abort()
                raise ValueError(
                    f"out: {str(self.path)!r} was created while this store was written (by "
                    "another writer?); it was left as it is and this store was not kept: "
                    "write it again to a new folder, or with overwrite=True"
                ) from None
            self._closed = True
            return self.path
        if self.path.exists():
            try:  # only a store is replaced: not a folder of the user's put there meanwhile
                _check_target(self.path, overwrite=True)
            except ValueError:
                self.abort()
                raise
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
