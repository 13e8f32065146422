"""Unit codes of a large dataset encoded chunk by chunk into memory-mapped files.

`encode_to_folder` streams `sae.encode_sparse` over row chunks and appends each chunk's CSR
entries to flat binary files, then builds the column-major (CSC) copy with one stable argsort
of the unit indices, written block by block. The resulting `CodeStore` reads its arrays from
numpy memory maps: the OS pages them in and out, so resident memory stays far below the codes'
size (at 10^6 samples x k=32, about 256 MB per view), and a second Explorer over the same data
can reopen them (`open_folder`) without encoding again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from sae_widgets.analysis.checks import check_positive_int
from sae_widgets.analysis.codes import CodeStore, SparseEncoder

__all__ = ["encode_to_folder", "open_folder"]

_FILES = ("csr_data", "csr_indices", "csr_indptr", "csc_data", "csc_indices", "csc_indptr")
_DTYPES: dict[str, np.dtype[Any]] = {
    "data": np.dtype(np.float32),
    "indices": np.dtype(np.int32),
    "indptr": np.dtype(np.int64),
}
_BLOCK = 1 << 22  # entries gathered per step while building the CSC copy


def _map(folder: Path, name: str, length: int, mode: Any = "r") -> np.ndarray:
    dtype = _DTYPES[name.split("_")[1]]
    if length == 0:
        return np.zeros(0, dtype=dtype)
    mapped: np.ndarray = np.memmap(folder / f"{name}.bin", dtype=dtype, mode=mode, shape=(length,))
    return mapped


def encode_to_folder(
    sae: SparseEncoder, X: Any, folder: str | os.PathLike[str], chunk_size: int = 65_536
) -> CodeStore:
    """Encode the rows of `X` (an array or a store's rows) into a memory-mapped CodeStore in
    `folder` (created if needed; its code files are replaced)."""
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if not isinstance(sae, SparseEncoder):
        raise TypeError(f"sae must provide encode_sparse(X, chunk_size); got {type(sae).__name__}")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    n = int(X.shape[0])
    indptr = np.zeros(n + 1, dtype=np.int64)
    n_units = 0
    with (
        open(path / "csr_data.bin", "wb") as data_file,
        open(path / "csr_indices.bin", "wb") as index_file,
    ):
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            block = sp.csr_matrix(sae.encode_sparse(X[lo:hi], chunk_size=min(chunk_size, 8192)))
            block.eliminate_zeros()
            block.sum_duplicates()
            n_units = int(block.shape[1])
            data_file.write(np.asarray(block.data, dtype=np.float32).tobytes())
            index_file.write(np.asarray(block.indices, dtype=np.int32).tobytes())
            indptr[lo + 1 : hi + 1] = indptr[lo] + block.indptr[1:]
    nnz = int(indptr[-1])
    np.asarray(indptr).tofile(path / "csr_indptr.bin")
    indices = _map(path, "csr_indices", nnz)
    data = _map(path, "csr_data", nnz)
    counts = np.bincount(indices, minlength=n_units).astype(np.int64)
    csc_indptr = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum(counts, out=csc_indptr[1:])
    csc_indptr.tofile(path / "csc_indptr.bin")
    order = np.argsort(indices, kind="stable")  # by unit, rows ascending within a unit
    rows_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    csc_data = _map(path, "csc_data", nnz, mode="w+")
    csc_indices = _map(path, "csc_indices", nnz, mode="w+")
    for lo in range(0, nnz, _BLOCK):
        part = order[lo : lo + _BLOCK]
        csc_data[lo : lo + len(part)] = data[part]
        csc_indices[lo : lo + len(part)] = rows_of[part]
    del order, rows_of
    for written in (csc_data, csc_indices):
        if isinstance(written, np.memmap):
            written.flush()
    (path / "codes.json").write_text(json.dumps({"n_samples": n, "n_units": n_units, "nnz": nnz}))
    return open_folder(path)


def open_folder(folder: str | os.PathLike[str]) -> CodeStore:
    """Reopen codes written by `encode_to_folder`, memory-mapped (read-only)."""
    path = Path(folder)
    try:
        meta = json.loads((path / "codes.json").read_text())
        n, n_units, nnz = int(meta["n_samples"]), int(meta["n_units"]), int(meta["nnz"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"folder: {str(path)!r} holds no encoded codes ({err})") from err
    index_type = np.int32 if nnz < np.iinfo(np.int32).max else np.int64
    csr_indptr = np.fromfile(path / "csr_indptr.bin", dtype=np.int64).astype(index_type)
    csc_indptr = np.fromfile(path / "csc_indptr.bin", dtype=np.int64).astype(index_type)
    if len(csr_indptr) != n + 1 or len(csc_indptr) != n_units + 1:
        raise ValueError(f"folder: {str(path)!r} has code files of the wrong length")
    csr = sp.csr_matrix(
        (_map(path, "csr_data", nnz), _map(path, "csr_indices", nnz), csr_indptr),
        shape=(n, n_units),
        copy=False,
    )
    csc = sp.csc_matrix(
        (_map(path, "csc_data", nnz), _map(path, "csc_indices", nnz), csc_indptr),
        shape=(n, n_units),
        copy=False,
    )
    csr.has_sorted_indices = csc.has_sorted_indices = True
    return CodeStore.from_canonical(csr, csc)
