"""Encoding data in chunks: dense codes, or CSR codes that never hold the dense matrix."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from sae_widgets.sae import sparse_kernels
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_operands, csr_entries


class _CompiledTopK:
    """TopK on CPU with the compiled kernels (sae/sparse_kernels.py): per chunk one matmul
    with the bias as an extra input column (no bias pass), then one pass per row; plain
    torch.topk, the scatter into dense codes and the CSR sort cost as much as the matmul."""

    def __init__(self, model: SparseAutoencoder) -> None:
        assert model.cfg.k is not None
        self.k = model.cfg.k
        self.b_dec = model.b_dec.detach()
        _, self.W_aug = affine_operands(self.b_dec[None], model.W_enc, model.b_enc)
        self.buffer: Tensor | None = None
        self.x_aug: Tensor | None = None

    @staticmethod
    def applies(model: SparseAutoencoder) -> bool:
        return model.spec.per_sample_k and sparse_kernels.available(model.W_enc.detach())

    def preacts(self, chunk: Tensor, out: Tensor | None = None) -> Tensor:
        """(B, n_units) pre-activations of a chunk, into `out` or a buffer kept between
        chunks (fresh pages for every chunk cost a fault each)."""
        if out is None:
            if self.buffer is None or self.buffer.shape[0] < len(chunk):
                self.buffer = self.W_aug.new_empty(len(chunk), self.W_aug.shape[1])
            out = self.buffer[: len(chunk)]
        n, d = len(chunk), self.b_dec.shape[0]
        if self.x_aug is None or self.x_aug.shape[0] < n:
            self.x_aug = self.W_aug.new_zeros(n, self.W_aug.shape[0])  # (x - b_dec | 1 | 0...)
            self.x_aug[:, d] = 1
        x_aug = self.x_aug[:n]
        torch.sub(chunk, self.b_dec, out=x_aug[:, :d])
        return torch.mm(x_aug, self.W_aug, out=out)

    def csr_parts(self, chunk: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """(values, units, counts per row) of a chunk's codes, or None (use torch)."""
        parts = sparse_kernels.row_topk(self.preacts(chunk), self.k, mode="csr")
        if parts is None:
            return None
        values, units = parts[0].numpy(), parts[1].numpy()
        keep = units >= 0  # numpy: torch's masked ops wait on their threads under load
        return (
            torch.from_numpy(values[keep]),
            torch.from_numpy(units[keep]),
            torch.from_numpy(keep.sum(1)),
        )


@torch.no_grad()
def encode_dense(model: SparseAutoencoder, chunks: Iterable[Tensor], n: int) -> Tensor:
    """(n, n_units) unit activations, filled chunk by chunk (torch.cat would hold 2 copies).
    TopK on CPU: each chunk's pre-activations are written where its codes go and turned
    into codes there, row by row."""
    codes = model.W_enc.new_empty(n, model.cfg.n_units)
    compiled = _CompiledTopK(model) if _CompiledTopK.applies(model) else None
    start = 0
    for chunk in chunks:
        rows = codes[start : start + len(chunk)]
        start += len(chunk)
        if compiled is not None:
            compiled.preacts(chunk, out=rows)
            if sparse_kernels.row_topk(rows, compiled.k, mode="dense") is not None:
                continue
        rows.copy_(model.encode(chunk))
    return codes


@torch.no_grad()
def encode_csr(model: SparseAutoencoder, chunks: Iterable[Tensor]) -> sp.csr_matrix:
    """(n, n_units) float32 CSR codes.

    topk rows come straight from the per-row top-k (<= k entries per row, zeros dropped,
    column indices sorted; compiled on CPU, else torch.topk); other activations keep the
    non-zeros of each dense chunk.
    """
    data_parts, index_parts, count_parts = [], [], []
    compiled = _CompiledTopK(model) if _CompiledTopK.applies(model) else None
    for chunk in chunks:
        parts = compiled.csr_parts(chunk) if compiled is not None else None
        if parts is not None:
            data, units, counts = parts
        elif model.spec.per_sample_k:
            data, units, counts = csr_entries(*model.encode_topk(chunk))
        else:
            codes = model.encode(chunk)
            keep = codes != 0
            data, units, counts = codes[keep], keep.nonzero()[:, 1], keep.sum(1)
        data_parts.append(data.float().cpu().numpy())
        index_parts.append(units.cpu().numpy().astype(np.int32, copy=False))
        count_parts.append(counts.cpu().numpy())
    # numpy from here: torch's concatenations wait on their threads on a loaded machine
    row_counts = np.concatenate(count_parts)
    indptr = np.zeros(row_counts.size + 1, dtype=np.int64)
    np.cumsum(row_counts, out=indptr[1:])
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    if index_dtype == np.int32:
        indptr = indptr.astype(np.int32)
    matrix = sp.csr_matrix(
        (
            np.concatenate(data_parts).astype(np.float32, copy=False),
            np.concatenate(index_parts).astype(index_dtype, copy=False),
            indptr,
        ),
        shape=(row_counts.size, model.cfg.n_units),
    )
    matrix.has_sorted_indices = True
    return matrix
