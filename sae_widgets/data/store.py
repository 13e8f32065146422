"""`ActivationStore`: activations on disk, in fixed-size `.npy` shards plus a JSON manifest.

Layout of a store folder::

    acts/
      manifest.json            # written last: shape, dtype, model, layer, fields, files, shards
      shard_00000.npy          # (shard_size, d) rows, memory-mappable
      shard_00000.f0.npy       # per-row metadata field 0 of that shard (labels, doc ids, ...)
      ...
      documents.*.npy, tokenizer/   # a token store's documents (`store_tokens`)

Writing (`StoreWriter`, used by `collect_activations(..., out=...)`) holds at most one shard
in memory, whatever the total size, and publishes the folder atomically: a folder without a
manifest is refused with a `StoreError`. Each file's blake2b checksum is in the manifest and
checked when the file is first read (`verify="lazy"`), for everything on open (`"open"`), or
not at all (`"never"`).

A store is a `Dataset`: `X` is a `ShardedArray` (read-only, memory-mapped, float32 reads), and
labels, label_names and factors come back from the metadata; other per-row fields (token
positions, document ids...) are in `store.fields` and set as attributes of the same name. A
store collected from a language model gives back its `tokens` (`TokenRows` with the documents'
texts and the tokenizer), so the text views work on it as on the Dataset it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data.dataset import Dataset
from sae_widgets.data.sharded import ShardedArray
from sae_widgets.data.store_files import (
    FACTOR,
    VERIFY,
    StoreError,
    check_file,
    read_manifest,
)
from sae_widgets.data.store_tokens import read_token_rows, write_documents
from sae_widgets.data.store_writer import StoreWriter, row_fields
from sae_widgets.data.tokens import TokenRows
from sae_widgets.paths import as_path

__all__ = [
    "ActivationStore",
    "StoreError",
    "StoreWriter",
    "row_fields",
    "write_store",
    "write_token_store",
]

_UNREAD = object()


class ActivationStore(Dataset):
    """An activation store on disk, opened as a (memory-mapped, read-only) Dataset.

    path: the folder written by `collect_activations(..., out=path)` or a `StoreWriter`.
    verify: when to check the files' blake2b checksums: "lazy" (each file when first
        read), "open" (all now) or "never". A mismatch raises a `StoreError`.
    """

    def __init__(self, path: str | os.PathLike[str], verify: str = "lazy") -> None:
        path = as_path(path, "path")
        if not isinstance(verify, str) or verify not in VERIFY:
            raise ValueError(f"verify must be one of {VERIFY}; got {verify!r}")
        self.path = Path(path)
        self.manifest = manifest = read_manifest(self.path)
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
        factors = {k[len(FACTOR) :]: v for k, v in self.fields.items() if k.startswith(FACTOR)}
        self.factors = factors or None
        self.images = None
        self.true_features = None
        self.true_codes = None
        self.attributes = {}
        self._tokens: Any = _UNREAD  # read on first use: documents and tokenizer
        self.name = str(manifest.get("name", "") or self.path.name)
        for name, values in self.fields.items():
            taken = name in vars(self) or hasattr(type(self), name)
            if re.fullmatch(r"[A-Za-z_]\w*", name) and not taken:
                setattr(self, name, values)
        if verify == "open":
            for i in range(len(shards)):
                self._verify_shard(i)
            for entry in manifest.get("files", {}).values():
                check_file(self.path, entry, self._verified)

    @property
    def tokens(self) -> TokenRows | None:
        """Which token of which document each row is, for a store collected from a language
        model (read, with the documents and the tokenizer, on first use); else None."""
        if self._tokens is _UNREAD:
            verified = None if self.verify == "never" else self._verified
            self._tokens = read_token_rows(self.path, self.manifest, self.fields, verified)
        rows: TokenRows | None = self._tokens
        return rows

    @tokens.setter
    def tokens(self, value: TokenRows | None) -> None:
        self._tokens = value

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

    def _verify_shard(self, i: int) -> None:
        shard = self.manifest["shards"][i]
        check_file(self.path, shard, self._verified)
        for field in shard.get("fields", {}).values():
            check_file(self.path, field, self._verified)

    def _read_field(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        parts = []
        for shard in self.manifest["shards"]:
            entry = shard["fields"][name]
            if self.verify != "never":
                check_file(self.path, entry, self._verified)
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
    transform: Callable[[np.ndarray], Any],
    data: Dataset,
    out: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
    chunk_size: int = 8192,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> ActivationStore:
    """Stream `transform(rows)` over `data.X` in chunks into a new store at `out` (with the
    dataset's per-row fields, and its documents when it holds token rows) and open it.
    Memory: one chunk plus one shard."""
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
        assert writer is not None  # a Dataset is never empty
        tokens = getattr(data, "tokens", None)
        if tokens is not None:
            write_documents(writer, tokens.documents)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ActivationStore(writer.close())


def write_token_store(
    chunks: Generator[tuple[int, np.ndarray], None, None],
    out: str | os.PathLike[str],
    tokens: TokenRows,
    labels: np.ndarray | None,
    factors: Mapping[str, np.ndarray] | None,
    info: Mapping[str, Any],
    *,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> ActivationStore:
    """Write token activations, arriving as `chunks` of (first row, rows) in row order, into a
    new store at `out` with their per-row fields and documents, and open it. Memory: one chunk
    and one shard (plus the per-row fields, a few int64 per row)."""
    fields = {} if labels is None else {"labels": labels}
    fields.update({FACTOR + name: values for name, values in (factors or {}).items()})
    fields.update(token_doc=tokens.doc, token_pos=tokens.pos, token_id=tokens.token_id)
    writer: StoreWriter | None = None
    try:
        for lo, rows in chunks:
            if writer is None:
                writer = StoreWriter(
                    out, rows.shape[1], shard_size=shard_size, info=info, overwrite=overwrite
                )
            hi = lo + rows.shape[0]
            writer.append(rows, {name: values[lo:hi] for name, values in fields.items()})
        if writer is None:
            raise ValueError("data: no tokens left to collect")
        write_documents(writer, tokens.documents)
    except BaseException:
        chunks.close()  # removes the forward hook now, not when the generator is collected
        if writer is not None:
            writer.abort()
        raise
    return ActivationStore(writer.close())
