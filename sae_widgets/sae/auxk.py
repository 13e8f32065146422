"""AuxK (Gao et al. 2024): the dead units' top k_aux pre-activations of each sample
reconstruct the main reconstruction's residual, so that dead units get a gradient."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sae_widgets.sae.fvu import fvu_of
from sae_widgets.sae.sparse_ops import SparseCodes, decode_sparse, gathered_preacts

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.sae.model import SparseAutoencoder


def aux_units(model: SparseAutoencoder, dead_mask: Tensor | None) -> Tensor | None:
    """The dead units AuxK trains in this step (None: no AuxK term)."""
    if dead_mask is None or not model.training or not bool(dead_mask.any()):
        return None
    return dead_mask.nonzero().squeeze(1)


def aux_fvu_of(
    model: SparseAutoencoder,
    x_BD: Tensor,
    xc_BD: Tensor,
    x_hat_BD: Tensor,
    dead_units: Tensor,
    dead_BU: Tensor,
    k_aux: int | None,
) -> Tensor:
    """AuxK: the top k_aux dead units of each sample (their pre-activations dead_BU)
    reconstruct the main residual."""
    k_aux = min(k_aux or model.cfg.d_in // 2, dead_units.numel())
    residual_BD = (x_BD - x_hat_BD).detach()
    if dead_units.numel() <= DENSE_FACTOR * k_aux:
        return _dense_aux(model, x_BD, residual_BD, dead_units, dead_BU, k_aux)
    if k_aux == dead_units.numel():  # every dead unit of every sample: no selection
        selected, units = dead_BU, dead_units.repeat(x_BD.shape[0])
    else:
        selected, units_BK = dead_BU.topk(k_aux, dim=1, sorted=False)
        units = dead_units[units_BK.reshape(-1)]
    offsets = torch.arange(0, x_BD.shape[0] * k_aux, k_aux, device=x_BD.device)
    values = torch.relu(
        gathered_preacts(
            None,
            units,
            offsets,
            xc_BD,
            model.W_enc,
            model.b_enc,
            model.b_dec,
            selected.reshape(-1),
        )
    )
    e_hat_BD = decode_sparse(SparseCodes(units, offsets, values, x_BD.shape[0]), model.W_dec)
    aux, _ = fvu_of(residual_BD, e_hat_BD)
    return aux


DENSE_FACTOR = 4
"""AuxK runs as dense matmuls over the dead units' columns while they are at most this many
times k_aux (the sparse path's gathers then cost more than the products). A TopK step with
AuxK against one without dead units, on the 2-core Intel Xeon machine
(`benchmarks/train_throughput.py --activations topk --profile-steps 16`, its AuxK line):
small shape (d=256, 2,048 units, k_aux 128) 1.28x dense against 1.29x sparse with 1% of
the units dead, 1.72x against 2.11x with 10%; large (d=512, 8,192 units, k_aux 256, 4
steps) 2.04x against 2.28x with 10% (3.2 x k_aux); the same aux FVU to 5 decimals."""


def _dense_aux(
    model: SparseAutoencoder,
    x_BD: Tensor,
    residual_BD: Tensor,
    dead_units: Tensor,
    dead_BU: Tensor,
    k_aux: int,
) -> Tensor:
    """AuxK with the dead units' codes as a dense (B, n_dead) matrix: their pre-activations
    recomputed (differentiable), all but each sample's top k_aux (by dead_BU) zeroed."""
    pre_BN = torch.addmm(model.b_enc[dead_units], x_BD - model.b_dec, model.W_enc[:, dead_units])
    codes_BN = torch.relu(pre_BN)
    if k_aux < dead_units.numel():
        keep = torch.zeros_like(dead_BU, dtype=torch.bool)
        keep.scatter_(1, dead_BU.topk(k_aux, dim=1, sorted=False).indices, True)
        codes_BN = codes_BN * keep
    aux, _ = fvu_of(residual_BD, codes_BN @ model.W_dec[dead_units])
    return aux
