"""BatchTopK's selection in a training step: the values above a cut-off guessed from the
previous step, collected in the lanes (sae/lanes.py) while each piece is in cache.

`sparse_kernels.batch_topk` needs the batch's whole (B, n_units) pre-activations (32-128
MiB), read back from memory twice: for a sample that guesses a cut-off, and to collect the
values above it. Here the guess comes first: the value that ranked `MARGIN` * k * B among
the previous step's collected values (of the same model). Each lane multiplies its piece
into its own cache-sized scratch, copies out the dead units' columns (AuxK) and collects
the piece's values above the guess; the selection among the collected values is exact
whatever the guess, so the result has the same bits as `batch_topk`'s (with float32 lane
products; with bfloat16 ones, sae/bf16_preacts.py, the collected values are the float32
recomputations of those near the guess). A guess that kept
too few or too many values (the distribution moved) runs the whole-matrix path instead,
which guesses afresh from a sample. On the 2-core Intel Xeon machine
(`benchmarks/train_throughput.py --whole-preacts-ab`, interleaved, the same weights):
124,808 against 114,510 samples/s on the small shape (d=256, 2,048 units, k=16), 26,748
against 22,813 on the large one (d=512, 8,192 units, k=32).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
from torch import Tensor

from sae_widgets.sae import device_paths, distributed, sparse_kernels, topk_selection
from sae_widgets.sae.bf16_preacts import Refinement

MARGIN = sparse_kernels.MARGIN
"""The next guess keeps about this many times k * B values."""
PIECE_SLACK = 2.0
"""A piece's buffers hold this many times its share of the batch's cap (rows differ)."""
Found = tuple[Tensor, Tensor, Tensor, Tensor]
"""(units, offsets, cut-off, values), as `sparse_kernels.batch_topk` returns them."""

_guesses: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
"""Per model (held weakly): the cut-off guess for its next training step."""


def applies(xc_BD: Tensor, W_enc: Tensor, n_keep: int) -> bool:
    """Whether the lanes' selection applies: the CPU kernels on float32/64 inputs of one
    dtype, one process (a data-parallel step selects over the global batch), a proper
    subset of the batch's values kept."""
    return (
        not distributed.is_global()
        and device_paths.cpu_kernels(xc_BD)
        and sparse_kernels.available(W_enc.detach())
        and xc_BD.dtype == W_enc.dtype
        and 0 < n_keep < xc_BD.shape[0] * W_enc.shape[1]
    )


def select(
    owner: Any,
    xc_BD: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    n_keep: int,
    dead_units: Tensor | None,
) -> tuple[Found, Tensor | None] | None:
    """The batch's n_keep largest of xc @ W_enc + b_enc and `dead_units`' columns, for
    `owner`'s step; None where the guess missed or none is known yet (the caller runs the
    whole-matrix path and then `remember`s a guess from it)."""
    guess = _guesses.get(owner)
    if guess is None:
        return None
    n_rows, n_units = xc_BD.shape[0], W_enc.shape[1]
    total_cap = sparse_kernels.collect_cap(n_keep)

    def collect(
        rows: slice, pre: Tensor, refine: Refinement | None
    ) -> tuple[np.ndarray, np.ndarray, int] | None:
        n = rows.stop - rows.start  # the piece's share of the batch's cap
        cap = min(math.ceil(PIECE_SLACK * total_cap * n / n_rows) + 64, n * n_units)
        return sparse_kernels.collect_piece(pre, guess, cap, rows.start, refine)

    parts, dead_BU = topk_selection.in_scratch(xc_BD, W_enc, b_enc, dead_units, collect)
    if parts is None:
        return None  # NaN: the whole-matrix path decides
    counts = [count for _, _, count in parts]
    too_many = any(count > len(part_values) for part_values, _, count in parts)
    if not n_keep <= sum(counts) <= total_cap or too_many:
        return None
    values = np.concatenate([part_values[:n] for part_values, _, n in parts])
    flat = np.concatenate([part_flat[:n] for _, part_flat, n in parts])
    found = sparse_kernels.select_collected(values, flat, n_keep, n_rows, n_units)
    _guesses[owner] = _next_guess(values, n_keep, guess)
    return found, dead_BU


def remember(owner: Any, pre_BU: Tensor, n_keep: int) -> None:
    """A guess for `owner`'s next step from a sample of this step's pre-activations."""
    guess = sparse_kernels.sample_guess(pre_BU.detach().numpy(), n_keep)
    if guess is None:
        _guesses.pop(owner, None)
    else:
        _guesses[owner] = float(guess)


def _next_guess(values: np.ndarray, n_keep: int, guess: float) -> float:
    """The value ranked MARGIN * n_keep among this step's collected values (all >= guess);
    where fewer were collected, that rank's value extrapolated below the guess (the values
    between the cut-off and the guess, spread evenly over their ranks)."""
    rank, count = math.ceil(MARGIN * n_keep), values.shape[0]
    if count >= rank:
        return float(np.partition(values, count - rank)[count - rank])
    # fewer: below the guess, extrapolated from the ranks of the cut-off and the guess
    cutoff = float(np.partition(values, count - n_keep)[count - n_keep])
    below_per_rank = (cutoff - float(guess)) / max(1, count - n_keep)
    return float(guess) - below_per_rank * (rank - count)
