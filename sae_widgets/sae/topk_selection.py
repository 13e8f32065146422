"""TopK's per-row selection in a training step, without the batch's pre-activations.

A step needs each row's k largest pre-activations, and AuxK the dead units' columns; the
rest of the (B, n_units) matrix (32-128 MiB) is never read again. On CPU each lane
(sae/lanes.py) multiplies its piece into its own cache-sized scratch, copies out the dead
units' columns (the same values as the whole matrix's) and selects the piece's top k, so
the matrix is not streamed to memory on every step. On the 2-core Intel Xeon machine
(`benchmarks/train_throughput.py --activations topk --whole-preacts-ab`, interleaved, the
same weights): 149,085 against 144,541 samples/s on the small shape (d=256, 2,048 units,
k=16), 25,947 against 24,851 on the large one (d=512, 8,192 units, k=32). Elsewhere (a
GPU, no numba) the whole matrix, as `sparse_ops.preacts_topk` computes it. On a CPU with
AMX and wide inputs the lanes multiply in bfloat16 and select exactly from the float32
recomputations near each row's cut-off (sae/bf16_preacts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor
from torch.profiler import record_function

from sae_widgets.sae import bf16_preacts, device_paths, lanes, scratch, sparse_kernels
from sae_widgets.sae.bf16_preacts import Refinement
from sae_widgets.sae.sparse_ops import affine_operands, preacts_topk
from sae_widgets.sae.sparse_ops_threads import matmul_threads

_T = TypeVar("_T")


class TopK(NamedTuple):
    """A batch's per-row top k (ragged layout, each row's units increasing on CPU)."""

    pre_BU: Tensor | None
    """All pre-activations, where computed whole (else None)."""
    dead_BU: Tensor | None
    """The pre-activations of `dead_units` (columns in their order), where asked for."""
    values: Tensor
    units: Tensor
    offsets: Tensor


def select(
    xc_BD: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    k: int,
    dead_units: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> TopK:
    """Each row's k largest of xc @ W_enc + b_enc (no gradients); `dead_units`' columns
    too. dtype: the matmul's where the torch ops run (see sparse_ops.encoder_matmul)."""
    if device_paths.cpu_kernels(xc_BD) and sparse_kernels.available(W_enc.detach()):
        found = _in_lanes(xc_BD, W_enc, b_enc, k, dead_units)
        if found is not None:
            return found
    pre_BU, values, units, offsets = preacts_topk(xc_BD, W_enc, b_enc, k, dtype=dtype)
    dead_BU = None if dead_units is None else pre_BU[:, dead_units]
    return TopK(pre_BU, dead_BU, values, units, offsets)


def _in_lanes(
    xc_BD: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, dead_units: Tensor | None
) -> TopK | None:
    """The lanes' selection; None where the kernel declined a piece (NaN: torch decides)."""
    n_rows = xc_BD.shape[0]
    found, dead_BU = in_scratch(
        xc_BD,
        W_enc,
        b_enc,
        dead_units,
        lambda rows, pre, refine: sparse_kernels.row_topk(pre, k, threads=1, refine=refine),
    )
    if found is None:
        return None
    values = torch.cat([part[0] for part in found]).view(-1)
    units = torch.cat([part[1] for part in found]).view(-1)
    offsets = torch.arange(0, n_rows * k, k)
    return TopK(None, dead_BU, values, units, offsets)


def in_scratch(
    xc_BD: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    dead_units: Tensor | None,
    then: Callable[[slice, Tensor, Refinement | None], _T | None],
) -> tuple[list[_T] | None, Tensor | None]:
    """(then(rows, pre, refine) of each lane piece in row order, or None where one
    declined; the dead units' pre-activations, where asked for): the pieces of
    xc @ W_enc + b_enc in the lanes' scratch (sae/lanes.py), the dead columns copied out of
    each before `then`. Where bfloat16 pays (sae/bf16_preacts.py), `pre` is its bfloat16
    product and `refine` what makes a selection from it exact (the dead columns are
    multiplied apart, in float32); else `pre` is float32's and `refine` None."""
    n_rows, n_units = xc_BD.shape[0], W_enc.shape[1]
    with torch.no_grad():
        xa_BD, Wa_DU = affine_operands(xc_BD, W_enc, b_enc)
        dead_BU = None
        if dead_units is not None:
            dead_BU = scratch.buffer("dead preacts", (n_rows, dead_units.numel()), xa_BD)
        with matmul_threads():  # all threads, as one lane each
            n_lanes = lanes.count(-(-n_rows // lanes.PIECE_ROWS))
            product = bf16_preacts.product_for(Wa_DU)
            if product is not None:
                rows = bf16_piece_rows(n_rows, n_lanes)
                n_lanes = lanes.count(-(-n_rows // rows))
                return _bf16_pieces(xa_BD, Wa_DU, product, rows, n_lanes, dead_units, dead_BU, then)
            pieces = [
                scratch.buffer(f"lane {lane} preacts", (lanes.PIECE_ROWS, n_units), xa_BD)
                for lane in range(n_lanes)
            ]

            def on_piece(rows: slice, pre: Tensor) -> _T | None:
                if dead_BU is not None and dead_units is not None:
                    torch.index_select(pre, 1, dead_units, out=dead_BU[rows])
                return then(rows, pre, None)

            return lanes.multiply_in_scratch(xa_BD, Wa_DU, pieces, on_piece), dead_BU


def bf16_piece_rows(n_rows: int, n_lanes: int) -> int:
    """Rows of a bfloat16 lane's piece: twice the float32 lanes' where every lane still gets
    a piece (its bfloat16 pre-activations are half the size, and a piece's own costs, its
    Python calls and a pass over the units in the recomputation, are paid half as often).
    Against the float32 lanes' 512 rows, in one process on a loaded machine
    (`benchmarks/train_throughput.py --piece-rows-ab 1024`, the same weights): 41,197
    against 38,691 samples/s on the small TopK shape, 10,885 against 9,751 on the large."""
    wide = 2 * lanes.PIECE_ROWS
    return wide if n_rows >= wide * n_lanes else lanes.PIECE_ROWS


def _bf16_pieces(
    xa_BD: Tensor,
    Wa_DU: Tensor,
    product: bf16_preacts.Product,
    piece_rows: int,
    n_lanes: int,
    dead_units: Tensor | None,
    dead_BU: Tensor | None,
    then: Callable[[slice, Tensor, Refinement | None], _T | None],
) -> tuple[list[_T] | None, Tensor | None]:
    """`in_scratch`'s lanes with the bfloat16 product: `pre` is the piece's bfloat16
    pre-activations (the lane's scratch)."""
    n_rows, width = xa_BD.shape
    n_units = Wa_DU.shape[1]
    bounds = [slice(lo, min(n_rows, lo + piece_rows)) for lo in range(0, n_rows, piece_rows)]
    half = product.W
    x16 = [scratch.buffer(f"lane {i} bf16 in", (piece_rows, width), half) for i in range(n_lanes)]
    o16 = [
        scratch.buffer(f"lane {i} bf16 out", (piece_rows, n_units), half) for i in range(n_lanes)
    ]
    W_dead = None if dead_units is None else Wa_DU[:, dead_units].contiguous()

    def work(lane: int, i: int) -> tuple[_T] | None:
        rows = bounds[i]
        n = rows.stop - rows.start
        pre = o16[lane][:n]
        refine = product.into(xa_BD[rows], x16[lane][:n], pre)
        if W_dead is not None and dead_BU is not None:
            torch.mm(xa_BD[rows], W_dead, out=dead_BU[rows])
        found = then(rows, pre, refine)
        return None if found is None else (found,)

    with record_function("sae::lanes"):  # named in torch.profiler breakdowns
        results = lanes.run(len(bounds), n_lanes, work)
    return (None if results is None else [r[0] for r in results]), dead_BU
