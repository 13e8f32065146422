"""Matryoshka BatchTopK (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka
Sparse Autoencoders"; Nabeshima 2024): the forward pass of `matryoshka_batchtopk`.

Units are selected as in BatchTopK (the k * B largest pre-activations of a batch; a running
JumpReLU threshold at inference). The dictionary is read as nested prefixes
`prefix_sizes = (m_1 < m_2 < ... < n_units)`: the first m_i units alone must reconstruct
the input, so early units learn general directions and later ones refine them instead of
absorbing them. The loss is the sum of every prefix's FVU (the whole dictionary's is the
usual `fvu`, the inner ones come as `extra_loss`).

Cost: one encoder matmul and one gathered decode as BatchTopK (the entries re-bagged by
prefix group: one sort of the B * k entries), plus a cumulative sum and a squared error per
prefix over (B, d_in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from sae_widgets.sae.auxk import aux_units
from sae_widgets.sae.forward import (
    TrainOutput,
    fvu_of,
    select_batch_topk,
    sparse_codes,
    sparse_output,
    threshold_cut,
    threshold_gate,
)
from sae_widgets.sae.sparse_ops import SparseCodes, decode_sparse

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.sae.model import SparseAutoencoder


def prefix_decodes(
    codes: SparseCodes, W_dec: Tensor, b_dec: Tensor, sizes: tuple[int, ...]
) -> Tensor:
    """(p, B, d_in) reconstruction of each prefix of units, smallest first (the last is the
    whole dictionary's), from sparse codes; differentiable.

    One gathered decode: entries are re-bagged by (group, sample), the group being which
    consecutive sizes a unit falls between, so each bag sums one group's part of a sample;
    a cumulative sum over groups gives the prefixes.
    """
    n_rows, n_groups = codes.n_rows, len(sizes)
    boundaries = torch.tensor(sizes[:-1], dtype=codes.units.dtype, device=codes.units.device)
    group = torch.bucketize(codes.units, boundaries, right=True)
    key = group * n_rows + codes.rows()
    order = torch.sort(key, stable=True).indices
    counts = torch.bincount(key, minlength=n_groups * n_rows)
    bags = SparseCodes(
        codes.units[order], torch.cumsum(counts, 0) - counts, codes.values[order], n_rows * n_groups
    )
    parts = decode_sparse(bags, W_dec).view(n_groups, n_rows, -1)
    return parts.cumsum(0) + b_dec


class MatryoshkaBatchTopKForward:
    """matryoshka_batchtopk: BatchTopK selection, a reconstruction loss for every prefix."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        return threshold_gate(model, pre_BU)

    def gate(self, model: SparseAutoencoder) -> Tensor:
        return threshold_cut(model)

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        sizes = model.cfg.prefix_sizes
        assert sizes is not None
        dead_units = aux_units(model, dead_mask)  # their columns kept apart for AuxK
        step = sparse_codes(model, x_BD, lambda m, xc: select_batch_topk(m, xc, dead_units))
        decoded_PBD = prefix_decodes(step.codes, model.W_dec, model.b_dec, sizes)
        extra = None
        if len(sizes) > 1:  # the inner prefixes' FVU, over the batch variance computed once
            _, total_var = fvu_of(x_BD, decoded_PBD[-1])
            inner = F.mse_loss(decoded_PBD[:-1], x_BD.expand_as(decoded_PBD[:-1]), reduction="sum")
            extra = inner / total_var
        return sparse_output(model, x_BD, step, decoded_PBD[-1], dead_units, k_aux, extra)


MATRYOSHKA_BATCHTOPK = MatryoshkaBatchTopKForward()
