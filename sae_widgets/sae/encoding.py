"""Encoding data in chunks: dense codes, or CSR codes that never hold the dense matrix."""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from sae_widgets.sae import bf16_preacts, lanes, sparse_kernels
from sae_widgets.sae.bf16_preacts import Refinement
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_operands, csr_entries

_T = TypeVar("_T")


LANE_ROWS = 1024
"""Rows a lane multiplies and then selects at once: their pre-activations (8-32 MB) are
still in cache when the top-k reads them. A whole 8,192-row chunk is not: measured on the
AMD machine (small shape, d=256, 2,048 units), chunk-at-once encoding ran at 0.53-0.57 of
the matmul's speed, two lanes of 2,048-row pieces at 0.77-0.81. On the Intel Xeon machine
(`benchmarks/encode_throughput.py --activations topk batchtopk --lane-rows-ab 2048`, the
same codes): encode_sparse at 0.90 / 0.86 of the roofline against 0.87 / 0.81 with 2,048-row
pieces on the large shape (d=512, 8,192 units, TopK / BatchTopK), 0.79 / 0.79 against
0.77 / 0.85 on the small one (noise of a few hundredths between runs)."""
MIN_LANE_ROWS = 128
"""Fewest rows that get a lane of their own (a smaller chunk runs on fewer threads)."""


class _Operands:
    """One lane's buffers, kept between chunks (fresh pages for every chunk cost a fault
    each): the augmented input rows (x - b_dec | 1 | 0...) and the pre-activations."""

    def __init__(self, W_aug: Tensor, b_dec: Tensor) -> None:
        self.W_aug, self.b_dec = W_aug, b_dec
        self.buffer: Tensor | None = None
        self.x_aug: Tensor | None = None
        self.halves: tuple[Tensor, Tensor] | None = None

    def approx_preacts(
        self, rows: Tensor, product: bf16_preacts.Product
    ) -> tuple[Tensor, Refinement]:
        """`preacts` through the bfloat16 product (sae/bf16_preacts.py), in bfloat16, and
        what makes a selection from them exact."""
        n = len(rows)
        x_aug = self._inputs(rows)
        if self.halves is None or self.halves[0].shape[0] < n:
            half = product.W
            self.halves = (
                half.new_empty(n, self.W_aug.shape[0]),
                half.new_empty(n, self.W_aug.shape[1]),
            )
        approx = self.halves[1][:n]
        return approx, product.into(x_aug, self.halves[0][:n], approx)

    def _out(self, n: int) -> Tensor:
        """This lane's buffer for n rows of pre-activations."""
        if self.buffer is None or self.buffer.shape[0] < n:  # huge pages: few faults
            self.buffer = fresh_output((n, self.W_aug.shape[1]), self.W_aug)
        return self.buffer[:n]

    def _inputs(self, rows: Tensor) -> Tensor:
        """(x - b_dec | 1 | 0...) of `rows`, in this lane's buffer."""
        n, d = len(rows), self.b_dec.shape[0]
        if self.x_aug is None or self.x_aug.shape[0] < n:
            self.x_aug = self.W_aug.new_zeros(n, self.W_aug.shape[0])
            self.x_aug[:, d] = 1
        x_aug = self.x_aug[:n]
        torch.sub(rows, self.b_dec, out=x_aug[:, :d])
        return x_aug

    def preacts(self, rows: Tensor, out: Tensor | None = None) -> Tensor:
        """(B, n_units) pre-activations of `rows` (one matmul with the bias as an extra
        input column), into `out` or this lane's buffer. torch's BLAS, not the choice of
        sae/cpu_gemm.py: codes must not depend on the chunk size, and numpy's OpenBLAS
        rounds a row differently by its position in the call (measured: the rows of a
        256-row call shifted by one row change their last bits; MKL's, from 4 rows on, do
        not)."""
        out = self._out(len(rows)) if out is None else out
        return torch.mm(self._inputs(rows), self.W_aug, out=out)


class _CompiledEncoder:
    """TopK or threshold-gated codes (relu, jumprelu, batchtopk at inference) on CPU with the
    compiled kernels (sae/sparse_kernels.py). In torch, the top-k, the scatter into dense
    codes and the CSR sort cost as much as the matmul, and a gate's temporaries (bias pass,
    mask, product, nonzero) 2.5-7x it. A chunk is cut into pieces of `LANE_ROWS`, each
    multiplied and then selected while in cache; with several torch threads, one lane per
    thread takes its share of the pieces, matmul and selection each on that one thread (the
    same bits as any other split: each row's products and selection do not depend on the
    others)."""

    def __init__(self, model: SparseAutoencoder) -> None:
        self.cut = model.inference_cut()  # a threshold gate; None: the per-sample top-k
        self.k = model.cfg.k or 0
        self.b_dec = model.b_dec.detach()
        _, self.W_aug = affine_operands(self.b_dec[None], model.W_enc, model.b_enc)
        self.lanes: list[_Operands] = []
        # a top-k, or BatchTopK's few above its cuts: bfloat16 products where they pay
        self.product = bf16_preacts.product_for(self.W_aug) if self.k else None

    @staticmethod
    def applies(model: SparseAutoencoder) -> bool:
        if not sparse_kernels.available(model.W_enc.detach()):
            return False
        return model.spec.per_sample_k or model.inference_cut() is not None

    def _pieces(self, n_rows: int) -> tuple[list[tuple[int, int]], int]:
        """A chunk of `n_rows` cut into (start, stop) pieces of about `LANE_ROWS` (at least
        one per lane where each gets `MIN_LANE_ROWS`), and the number of lanes."""
        n_pieces = max(1, -(-n_rows // LANE_ROWS), lanes.count(n_rows // MIN_LANE_ROWS))
        n_lanes = lanes.count(n_pieces)
        while len(self.lanes) < n_lanes:
            self.lanes.append(_Operands(self.W_aug, self.b_dec))
        bounds = [n_rows * i // n_pieces for i in range(n_pieces + 1)]
        return list(itertools.pairwise(bounds)), n_lanes

    def _run(
        self, n_rows: int, step: Callable[[_Operands, int, int], _T | None]
    ) -> list[_T] | None:
        """step(lane, start, stop) over every piece, each lane on one thread (sae/lanes.py);
        the results in row order, or None if a step was."""
        pieces, n_lanes = self._pieces(n_rows)
        return lanes.run(len(pieces), n_lanes, lambda lane, i: step(self.lanes[lane], *pieces[i]))

    def dense_into(self, chunk: Tensor, rows: Tensor, zeroed: bool = False) -> bool:
        """`rows` (len(chunk) x n_units, contiguous) become the chunk's TopK codes; False
        if the kernel declined (rows then undefined). zeroed: rows hold zeros (the bfloat16
        path then writes only the codes: a pass over the output less)."""
        dense = "onto_zeros" if zeroed else "dense"

        def step(lane: _Operands, start: int, stop: int) -> bool | None:
            piece = rows[start:stop]
            if self.product is not None:
                approx, refine = lane.approx_preacts(chunk[start:stop], self.product)
                if self.cut is not None:
                    gated = sparse_kernels.gate_rows(approx, self.cut, dense, refine, piece)
                    return None if gated is None else True
                refined = sparse_kernels.row_topk(approx, self.k, dense, 1, refine, piece)
                return None if refined is None else True
            lane.preacts(chunk[start:stop], out=piece)
            if self.cut is not None:
                found = sparse_kernels.gate_rows(piece, self.cut, "dense")
            else:
                found = sparse_kernels.row_topk(piece, self.k, "dense", 1)
            return None if found is None else True

        return self._run(len(chunk), step) is not None

    def csr_parts(self, chunk: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """(values, units, counts per row) of a chunk's codes, or None (use torch)."""

        def step(lane: _Operands, start: int, stop: int) -> tuple[Tensor, ...] | None:
            if self.product is not None:
                pre, refine = lane.approx_preacts(chunk[start:stop], self.product)
                if self.cut is not None:
                    return sparse_kernels.gate_rows(pre, self.cut, "csr", refine)
                return sparse_kernels.row_topk(pre, self.k, "csr", 1, refine)
            pre = lane.preacts(chunk[start:stop])
            if self.cut is not None:
                return sparse_kernels.gate_rows(pre, self.cut, "csr")
            return sparse_kernels.row_topk(pre, self.k, "csr", 1)

        parts = self._run(len(chunk), step)
        if parts is None:
            return None
        values = np.concatenate([p[0].numpy() for p in parts])
        units = np.concatenate([p[1].numpy() for p in parts])
        if self.cut is not None:  # the gate's parts are compact already
            counts = np.concatenate([p[2].numpy() for p in parts])
            return torch.from_numpy(values), torch.from_numpy(units), torch.from_numpy(counts)
        keep = units >= 0  # numpy: torch's masked ops wait on their threads under load
        return (
            torch.from_numpy(values[keep]),
            torch.from_numpy(units[keep]),
            torch.from_numpy(keep.sum(1)),
        )


HUGE_PAGE_BYTES = 1 << 22
"""Outputs from this size up are asked for in huge pages (`fresh_output`)."""


def fresh_output(shape: tuple[int, int], like: Tensor) -> Tensor:
    """An uninitialised tensor of `shape` (`like`'s dtype and device) to be written once.

    On a CPU with transparent huge pages (Linux, madvise): fresh anonymous memory asked for
    in 2 MiB pages. Every fresh 4 KiB page costs a fault on its first write: measured on the
    2-core project machine, matmuls filling a new 16,384 x 2,048 float32 output (128 MiB)
    took 32,768 faults and +73 ms on one thread over a warm buffer, against 575 faults and
    +14 ms in huge pages (the matmul itself runs 236 ms). The mapping is page-aligned; a
    numpy allocation may be 16 bytes off a cache line, which made the matmul 1.4x slower.
    On a virtual machine with free page reporting (the project's), memory freed a second or
    more before comes back from the host, 6x slower: a fresh 2 GB took 1.9-2.2 s to touch
    against 0.33-0.36 s right after a free (`benchmarks/encode_throughput.py` prints both).
    Faulting it all in first (MADV_POPULATE_WRITE, on one or two threads, or behind the
    encoding on a third) was no faster than the encoding threads' own faults (`/tmp/me/
    fair.py`, small TopK: 569-799 ms against 592 ms lazily), so the pages fault as written.
    """
    mapped = _huge_page_mapping(shape, like)
    return like.new_empty(shape) if mapped is None else mapped


def zero_output(shape: tuple[int, int], like: Tensor) -> Tensor:
    """`fresh_output` holding zeros: a fresh anonymous mapping is zero-filled by the OS as
    it faults in, so the dense TopK codes need only their k values a row written (at d=256,
    2,048 units, zeroing 512 MB of codes took 77 ms on one thread); elsewhere torch's
    zeros."""
    mapped = _huge_page_mapping(shape, like)
    return like.new_zeros(shape) if mapped is None else mapped


def _huge_page_mapping(shape: tuple[int, int], like: Tensor) -> Tensor | None:
    """A fresh private anonymous mapping of `shape`, in huge pages where the kernel gives
    them; None where it does not apply (small, not CPU, no numpy dtype) or was refused."""
    n_bytes = shape[0] * shape[1] * like.element_size()
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    dtype = _NUMPY_DTYPES.get(like.dtype)  # bfloat16 and others: numpy has no such array
    if like.device.type != "cpu" or advice is None or dtype is None or n_bytes < HUGE_PAGE_BYTES:
        return None
    try:  # private: a shared anonymous mapping is shmem, which takes no huge pages here
        memory = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError:  # refused by the kernel: torch's allocation decides (and reports)
        return None
    try:
        memory.madvise(advice)
    except OSError:  # huge pages switched off: plain pages, as torch's own allocation
        pass
    return torch.from_numpy(np.frombuffer(memory, dtype=dtype)).view(shape)


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


@torch.no_grad()
def encode_dense(model: SparseAutoencoder, chunks: Iterable[Tensor], n: int) -> Tensor:
    """(n, n_units) unit activations, filled chunk by chunk (torch.cat would hold 2 copies).
    TopK and threshold gates on CPU: each chunk's pre-activations are written where its
    codes go and turned into codes there, row by row (into fresh memory in huge pages, see
    `fresh_output`; where the bfloat16 product selects, zeros from the OS that the codes
    are written onto: `zero_output`)."""
    compiled = _CompiledEncoder(model) if _CompiledEncoder.applies(model) else None
    zeroed = compiled is not None and compiled.product is not None
    shape = (n, model.cfg.n_units)
    codes = zero_output(shape, model.W_enc) if zeroed else fresh_output(shape, model.W_enc)
    start = 0
    for chunk in chunks:
        rows = codes[start : start + len(chunk)]
        start += len(chunk)
        if compiled is not None and compiled.dense_into(chunk, rows, zeroed):
            continue
        rows.copy_(model.encode(chunk))
    return codes


@torch.no_grad()
def encode_csr(model: SparseAutoencoder, chunks: Iterable[Tensor]) -> sp.csr_matrix:
    """(n, n_units) float32 CSR codes.

    topk rows come straight from the per-row top-k (<= k entries per row, zeros dropped,
    column indices sorted; compiled on CPU, else torch.topk); threshold gates (relu,
    jumprelu, batchtopk) from the compiled gate on CPU; elsewhere the non-zeros of each dense
    chunk.
    """
    data_parts, index_parts, count_parts = [], [], []
    compiled = _CompiledEncoder(model) if _CompiledEncoder.applies(model) else None
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
