"""Pre-activations multiplied in bfloat16 for the CPU's top-k selections, made exact by
recomputing in float32 every value that the bfloat16 error could put among the winners.

A TopK step or encoding needs each row's k largest pre-activations, and the (B, n_units)
matmul that finds them is most of its work. Where the CPU multiplies bfloat16 much faster
than float32 (AMX: on the Intel Xeon machine 700-800 against 145-155 GFLOP/s on one
thread, 512 x 264 @ 264 x 2,048 and 512 x 520 @ 520 x 8,192), a lane
multiplies its piece in bfloat16, and each value's error is bounded: the inputs rounded to
bfloat16 (by |da| |w_j| + |a + da| |dw_j|, Cauchy-Schwarz, with the rounding changes da
and dw measured: `Product.slack`), float32 accumulation here and in the recomputation
(K 2^-24 |a| |w_j| each, K the inner size), the output rounded to bfloat16 (u |value|,
u = 2^-8), and flushed subnormals (an absolute term). Every value whose approximation
comes within twice that bound of the k-th largest is recomputed in float32 (xa . w_j,
vectorised, the same bits in any piece and on any thread) and the winners chosen among
those (sae/_numba_refine.py): the selection is the exact top k of the float32
recomputations whatever the bfloat16 rounding did, and the codes' values are float32.
Random rows have ~1.5 k such candidates (d=256, 2,048 units, k=16; ~2.3 k with the worst
case's 2u |a| |w_j| for the inputs' rounding). A run with these lanes and one without
select the same units but where two values lie within float32 rounding of each other
(2-25 of 2 million codes in `encode_throughput.py
--fp32-lanes-ab`), and their values differ by that rounding.

Used where the CPU has AMX and the inputs are wide enough (`pays`).
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from sae_widgets.sae import scratch, sparse_grads, sparse_kernels

U = 2.0**-8
"""bfloat16's unit roundoff (8 significant bits, rounding to nearest)."""
SUBNORMAL = 2.0**-126
"""Values below this may be flushed to zero by the bfloat16 units."""
MIN_WIDTH = 256
"""Narrowest (padded) input width multiplied in bfloat16 (`pays`): the narrowest measured
to gain (264, d=256); narrower rows are untried."""
SPLIT_PER_ENTRY = 32
"""Weights per entry of sparse_grads.run_split's count: the weights' transpose and norms
split between threads from 32 x 2 x PART_ENTRIES (~1M) weights up."""
FORCED: bool | None = None
"""True / False forces bfloat16 on / off (tests, benchmarks' A/B); None: `pays` decides."""


class Refinement(NamedTuple):
    """What makes a piece of approximate pre-activations exact (sparse_kernels' refine=)."""

    slack: np.ndarray
    """(rows,) float64: how far an approximate value may be from its float32
    recomputation, but for the output's rounding."""
    u_out: float
    """The output's relative rounding (u)."""
    xa: np.ndarray
    """(rows, K) float32: the piece's augmented inputs."""
    WT: np.ndarray
    """(n_units, K) float32: the augmented weights, a row per unit."""


class Product:
    """A model's augmented weights (sparse_ops.affine_operands) for the bfloat16 lanes."""

    def __init__(self, Wa_DU: Tensor) -> None:
        from sae_widgets.sae._numba_bf16_bits import narrow_rows, weight_norms
        from sae_widgets.sae._numba_sparse_grads import transpose_into

        self.narrow = narrow_rows
        width, n_units = Wa_DU.shape
        W = Wa_DU.detach()
        self.W = W.to(torch.bfloat16)
        # built every training step: a compiled blocked transpose, and the norms from its
        # contiguous rows, split between the threads from ~1M weights (torch's transpose and
        # a float64 norm over the columns took 37 ms of a 240 ms step at d=512, 8,192 units;
        # these 14.0 ms on one thread, 10.8 split; at 264 x 2,048 1.23 against 1.42 split)
        self.WT = scratch.buffer("bf16 lanes WT", (n_units, width), W)
        src, WT = W.numpy(), self.WT.numpy()
        work = W.numel() // SPLIT_PER_ENTRY
        sparse_grads.run_split(width, work, lambda lo, hi: transpose_into(src, WT, lo, hi))
        parts: list[tuple[float, float]] = []
        sparse_grads.run_split(n_units, work, lambda lo, hi: parts.append(weight_norms(WT, lo, hi)))
        self.w_max = max(w for w, _ in parts)
        self.dw_max = max(dw for _, dw in parts)
        self.gamma = 1.01 * width * 2.0**-24  # float32 accumulation over `width` terms
        self.c_abs = 4 * SUBNORMAL
        self.root_width = math.sqrt(width)
        self.width = width

    def into(self, xa: Tensor, x16: Tensor, out16: Tensor) -> Refinement:
        """out16 = xa @ W in bfloat16 (xa rounded into the lane's x16), and what makes a
        selection from it exact. The rounding and the row norms in one compiled pass on
        the lane's thread (torch's cast and norm there took 10-17% of a large step's
        profile, between them)."""
        xs = xa.numpy()
        norms, moved = np.empty(xs.shape[0]), np.empty(xs.shape[0])
        self.narrow(xs, xs.view(np.uint32), sparse_kernels.bits(x16), norms, moved)
        torch.mm(x16, self.W, out=out16)
        return Refinement(self.slack(norms, moved), U, xs, self.WT.numpy())

    def slack(self, norms: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """Per row, how far a bfloat16 product (but for its output's rounding) may lie
        from the float32 recomputation: with a, w the float32 row and unit, a + da and
        w + dw their bfloat16 roundings, (a + da).(w + dw) - a.w = da.w + (a + da).dw
        exactly, so |da| |w| + |a + da| |dw| bounds it (Cauchy-Schwarz) with the norms
        measured: the rounding moves a typical row by ~0.4 u of its norm, not the u a
        worst case allows; then both float32 accumulations and flushed subnormals. NaN
        (a NaN or inf input) becomes inf: every value a candidate, or the row declined."""
        w, dw = self.w_max, self.dw_max
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 -> NaN -> inf below
            rounded = norms + moved  # >= |a + da|
            rounding = 1.01 * (moved * w + rounded * dw)
            accumulation = self.gamma * (rounded * (w + dw) + norms * w)
            tiny = self.c_abs * (self.root_width * (rounded + w + dw) + self.width)
            slack = rounding + accumulation + tiny
        return np.where(slack < np.inf, slack, np.inf)


def product_for(Wa_DU: Tensor) -> Product | None:
    """A Product where the bfloat16 lanes apply and pay (float32 CPU weights, the compiled
    kernels, `pays`); None: multiply in float32."""
    if Wa_DU.dtype != torch.float32 or not sparse_kernels.available(Wa_DU.detach()):
        return None
    return Product(Wa_DU) if pays(Wa_DU.shape[0]) else None


def pays(width: int) -> bool:
    """Whether the lanes multiply weights of `width` inputs (d + 1, padded) in bfloat16:
    where the CPU has AMX tiles and the rows are wide enough (forced by `FORCED`).

    Decided by the hardware and the shape, not timed: a timing on the loaded AMX machine
    chose float32 for a shape in two benchmark runs, and the choice decides the last bits
    of a run's results. With AMX a lane's bfloat16 product ran 3-5x faster than float32's
    (the figures above), but the selection's cost per row (its scan, its recomputed
    candidates) does not shrink with it, and the product's share of a lane grows with the
    width: measured on the AMX machine (`benchmarks/train_throughput.py --fp32-lanes-ab`,
    `benchmarks/encode_throughput.py --fp32-lanes-ab`), at d=512 (8,192 units, k=32) TopK
    training ran 17,526 against 15,148 samples/s and encode_sparse 39,479 against 23,692;
    at d=256 (2,048 units, k=16) 85,599 against 89,139 and 146,061 against 146,477 (no
    gain) until the selection's bound used the measured rounding and its scan the bits
    (stop 26): then 42,193 against 29,072 (TopK) and 39,092 against 24,704 (BatchTopK),
    on a loaded machine. Without AMX (AVX512-BF16 alone doubles float32's peak, AVX2
    machines emulate it) the recomputation would take what the product saves."""
    if FORCED is not None:
        return FORCED
    return width >= MIN_WIDTH and has_amx()


@cache
def has_amx() -> bool:
    """Whether this CPU has AMX tiles, as torch reports it (False where it cannot say)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # a torch build without the probe's backend: assume none
        return False
