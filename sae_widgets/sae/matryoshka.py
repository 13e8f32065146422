"""Matryoshka BatchTopK (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka
Sparse Autoencoders"; Nabeshima 2024): the forward pass of `matryoshka_batchtopk`.

Units are selected as in BatchTopK (the k * B largest pre-activations of a batch; a running
JumpReLU threshold at inference). The dictionary is read as nested prefixes
`prefix_sizes = (m_1 < m_2 < ... < n_units)`: the first m_i units alone must reconstruct
the input, so early units learn general directions and later ones refine them instead of
absorbing them. The loss is the sum of every prefix's FVU (the whole dictionary's is the
usual `fvu`, the inner ones come as `extra_loss`).

Cost: one encoder matmul and one gathered decode as BatchTopK; each prefix adds a (B, d_in)
add, as the groups of units between consecutive sizes are decoded separately (their sparse
entries partition the batch's entries) and summed cumulatively.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from sae_widgets.sae.forward import (
    TrainOutput,
    fvu_of,
    select_batch_topk,
    sparse_codes,
    sparse_output,
    threshold_gate,
)
from sae_widgets.sae.sparse_ops import SparseCodes, decode_sparse

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.sae.model import SparseAutoencoder


def prefix_decodes(
    codes: SparseCodes, W_dec: Tensor, b_dec: Tensor, sizes: tuple[int, ...]
) -> Iterator[Tensor]:
    """Yield the (B, d_in) reconstruction of each prefix of units, smallest first (the last
    is the whole dictionary's), from sparse codes; differentiable."""
    n_rows = codes.n_rows
    boundaries = torch.tensor(sizes[:-1], dtype=codes.units.dtype, device=codes.units.device)
    group = torch.bucketize(codes.units, boundaries, right=True)
    rows = codes.rows()
    x_hat_BD = b_dec.expand(n_rows, -1)
    for g in range(len(sizes)):
        keep = group == g
        counts = torch.bincount(rows[keep], minlength=n_rows)
        part = SparseCodes(
            codes.units[keep], torch.cumsum(counts, 0) - counts, codes.values[keep], n_rows
        )
        x_hat_BD = x_hat_BD + decode_sparse(part, W_dec)
        yield x_hat_BD


class MatryoshkaBatchTopKForward:
    """matryoshka_batchtopk: BatchTopK selection, a reconstruction loss for every prefix."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        return threshold_gate(model, pre_BU)

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        sizes = model.cfg.prefix_sizes
        assert sizes is not None
        step = sparse_codes(model, x_BD, select_batch_topk)
        decoded = list(prefix_decodes(step.codes, model.W_dec, model.b_dec, sizes))
        extra = None
        if len(decoded) > 1:  # the inner prefixes' FVU, over the batch variance computed once
            _, total_var = fvu_of(x_BD, decoded[-1])
            squared = [F.mse_loss(x_hat_BD, x_BD, reduction="sum") for x_hat_BD in decoded[:-1]]
            extra = torch.stack(squared).sum() / total_var
        return sparse_output(model, x_BD, step, decoded[-1], dead_mask, k_aux, extra)


MATRYOSHKA_BATCHTOPK = MatryoshkaBatchTopKForward()
