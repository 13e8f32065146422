"""`SAELensCache`: a SAELens activation cache (a Hugging Face `datasets` folder) read as a
Dataset, memory-mapped, with pyarrow (the optional extra ``sae_widgets[saelens]``).

SAELens' ``CacheActivationsRunner`` saves its cache with ``datasets.Dataset.save_to_disk``::

    cache/
      dataset_info.json        # "features": {hook_name: Array2D(shape=(context, d_in)), ...}
      state.json               # "_data_files": [{"filename": "data-00000-of-00002.arrow"}, ...]
      data-00000-of-00002.arrow, ...   # Arrow IPC *stream* files, several record batches each

Each example is one sequence: the hook's column holds a (context, d_in) array per row
(``datasets``' Array2D extension type over list<list<float>>), and ``token_ids`` (when
present) the sequence's token ids. Here every token is one row: X is (sequences x context,
d_in), read zero-copy from the memory-mapped files through the same `ShardedArray` an
`ActivationStore` uses (one shard per record batch), so SAE.fit, transform and the Explorer
stream it without loading it. `datasets` itself is not needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data.dataset import Dataset
from sae_widgets.data.sharded import ShardedArray
from sae_widgets.data.store_files import StoreError
from sae_widgets.paths import as_path

__all__ = ["SAELensCache"]

_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.ipc
    except ImportError:
        raise ImportError(
            f"reading the SAELens activation cache {str(path)!r} needs pyarrow: "
            f"pip install 'sae_widgets[saelens]'"
        ) from None
    return pa


class _BatchRows(ShardedArray):
    """A ShardedArray whose shards are numpy views of Arrow record batches (no .npy files)."""

    def __init__(self, blocks: list[np.ndarray], stored_dtype: Any) -> None:
        d = blocks[0].shape[1]
        super().__init__([Path(f"batch_{i}") for i in range(len(blocks))],
                         [len(b) for b in blocks], d, stored_dtype)  # fmt: skip
        self._blocks = blocks

    def shard(self, i: int) -> np.ndarray:
        return self._blocks[i]


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads((path / name).read_text())
    except (OSError, ValueError) as err:
        raise StoreError(
            f"path: {str(path)!r} is not a SAELens activation cache (a datasets folder saved "
            f"with save_to_disk): {name} cannot be read ({err})"
        ) from None
    if not isinstance(value, dict):
        raise StoreError(f"path: {str(path)!r}: {name} holds no JSON object")
    return value


def _array2d_columns(features: dict[str, Any]) -> dict[str, tuple[int, int, str]]:
    """Columns declared as datasets' Array2D: name -> (context, d_in, dtype)."""
    found = {}
    for name, feature in features.items():
        if isinstance(feature, dict) and feature.get("_type") == "Array2D":
            shape, dtype = feature.get("shape"), feature.get("dtype")
            if (
                isinstance(shape, list)
                and len(shape) == 2
                and all(isinstance(s, int) for s in shape)
            ):
                found[name] = (int(shape[0]), int(shape[1]), str(dtype))
    return found


def _flat_values(column: Any, lengths: tuple[int, ...], where: str) -> np.ndarray:
    """The numbers of a nested list column whose lists at each level hold exactly `lengths`
    items (a (context, d) array per row, say), flattened zero-copy; else a StoreError."""
    import pyarrow as pa  # present: SAELensCache checked it before reading any file
    import pyarrow.compute as pc

    if isinstance(column.type, pa.BaseExtensionType):
        column = column.storage  # datasets registered its Array2D type in this process
    for expected in lengths:
        if not pa.types.is_list(column.type) and not pa.types.is_fixed_size_list(column.type):
            raise StoreError(f"path: {where} holds {column.type}, not lists of {expected}")
        counts = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if column.null_count or not np.all(counts == expected):
            raise StoreError(f"path: {where} holds a row that is not {expected} values long")
        column = column.flatten()
    try:
        values: np.ndarray = column.to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, TypeError, ValueError) as err:
        raise StoreError(f"path: {where} does not hold plain numbers ({err})") from None
    return values


class SAELensCache(Dataset):
    """A SAELens activation cache opened as a (memory-mapped, read-only) Dataset of token rows.

    path: the folder SAELens' CacheActivationsRunner wrote (``datasets``' save_to_disk layout).
    hook_name: which hook's activations to read; None: the only Array2D column there is.

    Attributes: X ((sequences x context, d_in) rows, streamed), ``hook_name``,
    ``context_size``, ``fields`` (``token_id`` when the cache has token_ids, ``sequence`` and
    ``position``: which example and which position of it each row is), and the same per-row
    arrays as attributes of those names.
    """

    def __init__(self, path: str | os.PathLike[str], hook_name: str | None = None) -> None:
        self.path = as_path(path, "path")
        if hook_name is not None and not isinstance(hook_name, str):
            raise TypeError(f"hook_name must be None or a str; got {type(hook_name).__name__}")
        if not self.path.is_dir():
            raise StoreError(f"path: {str(self.path)!r} is not a folder")
        pa = _pyarrow(self.path)
        info = _read_json(self.path, "dataset_info.json")
        state = _read_json(self.path, "state.json")
        columns = _array2d_columns(info.get("features") or {})
        if hook_name is None:
            if len(columns) != 1:
                raise StoreError(
                    f"path: {str(self.path)!r} has {len(columns)} Array2D activation columns "
                    f"({', '.join(columns) or 'none'}); a SAELens cache has one (or pass hook_name)"
                )
            hook_name = next(iter(columns))
        if hook_name not in columns:
            raise ValueError(
                f"hook_name must be one of the cache's activation columns "
                f"({', '.join(columns) or 'none'}); got {hook_name!r}"
            )
        context, d, dtype = columns[hook_name]
        if dtype not in _DTYPES:
            raise StoreError(f"path: {str(self.path)!r}: {hook_name} has dtype {dtype}; "
                             f"readable: {', '.join(_DTYPES)}")  # fmt: skip
        files = state.get("_data_files")
        if not isinstance(files, list) or not files:
            raise StoreError(f"path: {str(self.path)!r}: state.json lists no _data_files")
        blocks, token_ids = [], []
        for entry in files:
            name = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(name, str) or Path(name).name != name:
                raise StoreError(f"path: {str(self.path)!r}: state.json names a bad file {entry!r}")
            where = f"{str(self.path / name)!r}"
            try:
                table = pa.ipc.open_stream(pa.memory_map(str(self.path / name))).read_all()
            except (OSError, pa.ArrowInvalid) as err:
                raise StoreError(f"path: {where} is not an Arrow stream file ({err})") from None
            if hook_name not in table.column_names:
                raise StoreError(f"path: {where} has no column {hook_name!r}")
            for chunk in table.column(hook_name).chunks:
                values = _flat_values(chunk, (context, d), where)
                if values.dtype != _DTYPES[dtype]:
                    raise StoreError(
                        f"path: {where}: {hook_name} holds {values.dtype}, not {dtype}"
                    )
                if len(chunk):
                    blocks.append(values.reshape(len(chunk) * context, d))
            if "token_ids" in table.column_names:
                for chunk in table.column("token_ids").chunks:
                    token_ids.append(_flat_values(chunk, (context,), where).astype(np.int64))
        if not blocks:
            raise StoreError(f"path: {str(self.path)!r} holds no activations")
        self.hook_name, self.context_size = hook_name, context
        self.X: np.ndarray = _BatchRows(blocks, _DTYPES[dtype])  # type: ignore[assignment]
        n = self.X.shape[0]
        rows = np.arange(n, dtype=np.int64)
        self.fields: dict[str, np.ndarray] = {
            "sequence": rows // context,
            "position": rows % context,
        }
        if token_ids:
            self.fields["token_id"] = np.concatenate(token_ids)
            if len(self.fields["token_id"]) != n:
                raise StoreError(
                    f"path: {str(self.path)!r}: token_ids and {hook_name} differ in length"
                )
        for field, values in self.fields.items():
            setattr(self, field, values)
        self.labels = self.label_names = self.images = self.factors = None
        self.true_features = self.true_codes = None
        self.attributes = {}
        self.tokens = None
        self.name = self.path.name

    def __repr__(self) -> str:
        n, d = self.X.shape
        return (
            f"SAELensCache({str(self.path)!r}, hook_name={self.hook_name!r}, n={n}, d={d}, "
            f"context_size={self.context_size})"
        )
