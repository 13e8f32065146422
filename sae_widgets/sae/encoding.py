"""Encoding data in chunks: dense codes, or CSR codes that never hold the dense matrix."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.sparse_ops import csr_entries


@torch.no_grad()
def encode_dense(model: SparseAutoencoder, chunks: Iterable[Tensor], n: int) -> Tensor:
    """(n, n_units) unit activations, filled chunk by chunk (torch.cat would hold 2 copies)."""
    codes: Tensor | None = None
    start = 0
    for chunk in chunks:
        part = model.encode(chunk)
        if codes is None:
            codes = part.new_empty(n, part.shape[1])
        codes[start : start + len(part)] = part
        start += len(part)
    assert codes is not None
    return codes


@torch.no_grad()
def encode_csr(model: SparseAutoencoder, chunks: Iterable[Tensor]) -> sp.csr_matrix:
    """(n, n_units) float32 CSR codes.

    topk rows come straight from torch.topk (<= k entries per row, zeros dropped, column
    indices sorted); other activations keep the non-zeros of each dense chunk.
    """
    data_parts, index_parts, count_parts = [], [], []
    for chunk in chunks:
        if model.spec.per_sample_k:
            data, units, counts = csr_entries(*model.encode_topk(chunk))
        else:
            codes = model.encode(chunk)
            keep = codes != 0
            data, units, counts = codes[keep], keep.nonzero()[:, 1], keep.sum(1)
        data_parts.append(data.cpu())
        index_parts.append(units.to(torch.int32).cpu())
        count_parts.append(counts.cpu())
    row_counts = torch.cat(count_parts).numpy()
    indptr = np.zeros(row_counts.size + 1, dtype=np.int64)
    np.cumsum(row_counts, out=indptr[1:])
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    if index_dtype == np.int32:
        indptr = indptr.astype(np.int32)
    matrix = sp.csr_matrix(
        (
            torch.cat(data_parts).numpy().astype(np.float32, copy=False),
            torch.cat(index_parts).numpy().astype(index_dtype, copy=False),
            indptr,
        ),
        shape=(row_counts.size, model.cfg.n_units),
    )
    matrix.has_sorted_indices = True
    return matrix
