"""The sparse autoencoder module: one small nn.Module and its typed config.

Orientation (shared with checkpoint io and the analysis layer): W_enc (d_in, n_units),
b_enc (n_units,), W_dec (n_units, d_in), b_dec (d_in,). Codes are unit activations:
codes = act((x - b_dec) @ W_enc + b_enc), reconstruction = codes @ W_dec + b_dec.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from sae_widgets.sae.sparse_ops import (
    SparseCodes,
    batch_topk_units,
    decode_sparse,
    gathered_preacts,
    jumprelu,
    preacts_topk,
    step_count,
)

ACTIVATIONS = ("relu", "topk", "batchtopk", "jumprelu")


@dataclass
class SAEConfig:
    """Architecture of a SparseAutoencoder (training hyperparameters live in TrainConfig)."""

    d_in: int
    """Dimension of the input vectors."""
    n_units: int
    """Number of units (latents, dictionary atoms)."""
    activation: str = "topk"
    """One of "relu", "topk", "batchtopk", "jumprelu"."""
    k: int | None = None
    """Active units per sample for topk, average for batchtopk; jumprelu: the L0 its
    thresholds start at (training only); relu: unused."""
    bandwidth: float = 0.05
    """JumpReLU straight-through kernel width, in training space (E||x|| = sqrt(d_in))."""
    init_threshold: float = 0.1
    """JumpReLU threshold of a new module; training re-initialises it from data (see k)."""

    def __post_init__(self) -> None:
        for name in ("d_in", "n_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.activation in ("topk", "batchtopk"):
            k: Any = self.k  # may arrive as np.int64 or 16.0 from a parameter search
            integral = isinstance(k, int | np.integer) or (isinstance(k, float) and k.is_integer())
            if isinstance(k, bool) or not integral or not 1 <= k <= self.n_units:
                raise ValueError(
                    f"k must be an integer in [1, n_units={self.n_units}] for "
                    f"activation={self.activation!r}, got {k!r}"
                )
            self.k = int(k)
        if self.bandwidth <= 0 or self.init_threshold <= 0:
            raise ValueError("bandwidth and init_threshold must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the config."""
        return asdict(self)


class ForwardOutput(NamedTuple):
    """What `SparseAutoencoder.forward` returns."""

    reconstruction: Tensor
    """(B, d_in) decoded input."""
    codes: Tensor
    """(B, n_units) dense unit activations."""
    fvu: Tensor
    """Fraction of variance unexplained over this batch (differentiable)."""
    sparsity: Tensor
    """Sparsity penalty / batch variance: norm-weighted L1 (relu), d_in x L0 (jumprelu)."""
    aux_fvu: Tensor
    """AuxK loss: how well dead units reconstruct the residual (0 when none are dead)."""
    l0: Tensor
    """Mean number of active units per sample (no gradient)."""


class TrainOutput(NamedTuple):
    """Like ForwardOutput, but codes stay sparse for topk/batchtopk (used by the trainer)."""

    reconstruction: Tensor
    codes: SparseCodes | Tensor
    fvu: Tensor
    sparsity: Tensor
    aux_fvu: Tensor
    l0: Tensor
    batch_threshold: Tensor | None
    """batchtopk only: the smallest activation kept in this batch."""


def _fvu(x_BD: Tensor, x_hat_BD: Tensor) -> tuple[Tensor, Tensor]:
    """(fvu, total variance) of a batch; the variance is guarded for one-sample batches."""
    total_var = (x_BD - x_BD.mean(0)).pow(2).sum()
    total_var = torch.clamp(total_var, min=1e-8 * x_BD.pow(2).sum().detach() + 1e-30)
    return (x_hat_BD - x_BD).pow(2).sum() / total_var, total_var


class SparseAutoencoder(nn.Module):
    """A one-layer sparse autoencoder with a configurable activation."""

    log_threshold: nn.Parameter  # jumprelu only
    batch_threshold: Tensor  # batchtopk only (a buffer)

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        d, n = cfg.d_in, cfg.n_units
        self.W_enc = nn.Parameter(torch.empty(d, n))
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.W_dec = nn.Parameter(torch.empty(n, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if cfg.activation == "jumprelu":
            self.log_threshold = nn.Parameter(torch.full((n,), math.log(cfg.init_threshold)))
        if cfg.activation == "batchtopk":
            # estimated during training; 0 until then (plain ReLU at inference)
            self.register_buffer("batch_threshold", torch.zeros(n))
        self.reset_parameters(generator)

    # ----------------------------------------------------------------- parameters
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder rows; the encoder starts as the decoder's transpose.

        relu/jumprelu start with about half the units active, so their encoder starts 10x
        smaller: a full-size one makes the first reconstruction ~10x the input.
        """
        with torch.no_grad():
            W_dec = torch.randn(self.cfg.n_units, self.cfg.d_in, generator=generator)
            W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.W_dec.copy_(W_dec)
            dense = self.cfg.activation in ("relu", "jumprelu")
            self.W_enc.copy_(W_dec.t() * (0.1 if dense else 1.0))
            self.b_enc.zero_()
            self.b_dec.zero_()

    @property
    def threshold(self) -> Tensor | None:
        """(n_units,) inference threshold for jumprelu/batchtopk, else None."""
        if self.cfg.activation == "jumprelu":
            return self.log_threshold.exp()
        if self.cfg.activation == "batchtopk":
            return self.batch_threshold
        return None

    @classmethod
    def from_weights(
        cls,
        cfg: SAEConfig,
        W_enc: Any,
        b_enc: Any,
        W_dec: Any,
        b_dec: Any,
        threshold: Any = None,
    ) -> SparseAutoencoder:
        """Build a module from user-space weights (numpy or torch), orientation as above."""
        model = cls(cfg)
        shapes = {
            "W_enc": (cfg.d_in, cfg.n_units),
            "b_enc": (cfg.n_units,),
            "W_dec": (cfg.n_units, cfg.d_in),
            "b_dec": (cfg.d_in,),
        }
        given = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
        with torch.no_grad():
            for name, value in given.items():
                tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
                if tuple(tensor.shape) != shapes[name]:
                    raise ValueError(
                        f"{name} must have shape {shapes[name]}, got {tuple(tensor.shape)}"
                    )
                getattr(model, name).copy_(tensor.float())
            if cfg.activation in ("jumprelu", "batchtopk"):
                if threshold is None:
                    if cfg.activation == "jumprelu":
                        raise ValueError("threshold is required for activation='jumprelu'")
                    threshold = torch.zeros(cfg.n_units)
                t = torch.as_tensor(
                    np.asarray(threshold) if not torch.is_tensor(threshold) else threshold
                ).float()
                t = t.expand(cfg.n_units) if t.ndim == 0 else t
                if tuple(t.shape) != (cfg.n_units,):
                    raise ValueError(f"threshold must have shape ({cfg.n_units},), got {t.shape}")
                if cfg.activation == "jumprelu":
                    model.log_threshold.copy_(t.clamp_min(1e-12).log())
                else:
                    model.batch_threshold.copy_(t)
        return model

    def weights(self) -> dict[str, Tensor]:
        """User-space weights (detached copies): W_enc, b_enc, W_dec, b_dec[, threshold]."""
        out = {
            "W_enc": self.W_enc.detach().clone(),
            "b_enc": self.b_enc.detach().clone(),
            "W_dec": self.W_dec.detach().clone(),
            "b_dec": self.b_dec.detach().clone(),
        }
        threshold = self.threshold
        if threshold is not None:
            out["threshold"] = threshold.detach().clone()
        return out

    @torch.no_grad()
    def rescale_inputs_(self, factor: float) -> None:
        """Make the module act on inputs multiplied by `factor` (codes scale with it too).

        Training runs on x * s; folding the scale back is rescale_inputs_(1 / s).
        """
        self.b_enc.mul_(factor)
        self.b_dec.mul_(factor)
        if self.cfg.activation == "jumprelu":
            self.log_threshold.add_(math.log(factor))
        elif self.cfg.activation == "batchtopk":
            self.batch_threshold.mul_(factor)

    @torch.no_grad()
    def fold_decoder_norms_(self) -> None:
        """Give decoder rows unit norm without changing the codes' contribution: each unit's
        encoder column, bias and threshold take its norm (exact except for TopK ranking)."""
        norms = self.W_dec.norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms)
        self.b_enc.mul_(norms)
        if self.cfg.activation == "jumprelu":
            self.log_threshold.add_(norms.log())
        elif self.cfg.activation == "batchtopk":
            self.batch_threshold.mul_(norms)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale decoder rows to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Drop the gradient component along each decoder row (keeps rows on the sphere)."""
        grad = self.W_dec.grad
        if grad is None:
            return
        W = self.W_dec
        parallel = (grad * W).sum(dim=1, keepdim=True) / W.pow(2).sum(1, keepdim=True).clamp_min(
            1e-12
        )
        grad.sub_(parallel * W)

    # ----------------------------------------------------------------- inference
    def preacts(self, x_BD: Tensor) -> Tensor:
        """(B, n_units) pre-activations (x - b_dec) @ W_enc + b_enc."""
        return torch.addmm(self.b_enc, x_BD - self.b_dec, self.W_enc)

    def encode(self, x_BD: Tensor) -> Tensor:
        """(B, n_units) dense inference-time codes (batchtopk uses its threshold)."""
        pre_BU = self.preacts(x_BD)
        act = self.cfg.activation
        if act == "relu":
            return torch.relu(pre_BU)
        if act == "topk":
            values_BK, units_BK = self.encode_topk(x_BD, pre_BU)
            return torch.zeros_like(pre_BU).scatter_(1, units_BK, values_BK)
        threshold = self.threshold
        assert threshold is not None
        keep = (pre_BU > threshold) & (pre_BU > 0)
        return pre_BU * keep

    def encode_topk(self, x_BD: Tensor, pre_BU: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """topk only: (values (B, k), units (B, k)); values are ReLU'd, so some may be 0."""
        if self.cfg.activation != "topk":
            raise ValueError(f"encode_topk needs activation='topk', not {self.cfg.activation!r}")
        if pre_BU is None:
            pre_BU = self.preacts(x_BD)
        assert self.cfg.k is not None
        values_BK, units_BK = pre_BU.topk(self.cfg.k, dim=1, sorted=False)
        return torch.relu(values_BK), units_BK

    def decode(self, codes_BU: Tensor) -> Tensor:
        """(B, d_in) reconstruction from dense codes."""
        return torch.addmm(self.b_dec, codes_BU, self.W_dec)

    def forward(self, x_BD: Tensor, dead_mask: Tensor | None = None) -> ForwardOutput:
        """Reconstruction, dense codes and loss terms (batchtopk selects per batch in training)."""
        out = self.forward_train(x_BD, dead_mask)
        codes = out.codes
        if isinstance(codes, SparseCodes):
            codes = codes.to_dense(self.cfg.n_units)
        return ForwardOutput(out.reconstruction, codes, out.fvu, out.sparsity, out.aux_fvu, out.l0)

    # ----------------------------------------------------------------- training
    def forward_train(
        self, x_BD: Tensor, dead_mask: Tensor | None = None, k_aux: int | None = None
    ) -> TrainOutput:
        """Training forward: topk/batchtopk stay sparse after the encoder matmul."""
        if self.cfg.activation in ("relu", "jumprelu"):
            return self._forward_dense(x_BD)
        return self._forward_sparse(x_BD, dead_mask, k_aux)

    def _forward_dense(self, x_BD: Tensor) -> TrainOutput:
        pre_BU = self.preacts(x_BD)
        if self.cfg.activation == "relu":
            codes_BU = torch.relu(pre_BU)
            penalty = (codes_BU * self.W_dec.norm(dim=1)).sum()
        else:
            threshold = self.log_threshold.exp()
            bandwidth = self.cfg.bandwidth
            codes_BU = jumprelu(pre_BU, threshold, bandwidth)
            # scaled by d_in: l0_coeff is then the share of a sample's variance (~d_in in
            # training space) that a unit must explain to be worth firing
            penalty = step_count(pre_BU, threshold, bandwidth).sum() * self.cfg.d_in
        x_hat_BD = self.decode(codes_BU)
        fvu, total_var = _fvu(x_BD, x_hat_BD)
        l0 = (codes_BU != 0).sum(dim=1).float().mean().detach()
        zero = fvu.new_zeros(())
        return TrainOutput(x_hat_BD, codes_BU, fvu, penalty / total_var, zero, l0, None)

    def _forward_sparse(
        self, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        assert self.cfg.k is not None
        n_rows = x_BD.shape[0]
        xc_BD = (x_BD - self.b_dec).detach()
        batch_threshold = None
        selected: Tensor | None = None  # pre-activation values at the selection, if known
        if self.cfg.activation == "topk":
            pre_BU, selected, units, offsets = preacts_topk(
                xc_BD, self.W_enc, self.b_enc, self.cfg.k
            )
        else:
            with torch.no_grad():
                pre_BU = torch.addmm(self.b_enc, xc_BD, self.W_enc)
                if self.training:
                    units, offsets, batch_threshold = batch_topk_units(pre_BU, self.cfg.k)
                else:  # batchtopk at inference: its JumpReLU threshold
                    keep = (pre_BU > self.batch_threshold) & (pre_BU > 0)
                    rows, units = keep.nonzero(as_tuple=True)
                    counts = torch.bincount(rows, minlength=n_rows)
                    offsets = torch.cumsum(counts, 0) - counts
        values = torch.relu(
            gathered_preacts(
                pre_BU, units, offsets, xc_BD, self.W_enc, self.b_enc, self.b_dec, selected
            )
        )
        codes = SparseCodes(units, offsets, values, n_rows)
        x_hat_BD = decode_sparse(codes, self.W_dec) + self.b_dec
        fvu, _ = _fvu(x_BD, x_hat_BD)
        l0 = (values > 0).sum().float().detach() / n_rows
        aux_fvu = fvu.new_zeros(())
        if dead_mask is not None and self.training and bool(dead_mask.any()):
            aux_fvu = self._aux_fvu(x_BD, xc_BD, x_hat_BD, pre_BU, dead_mask, k_aux)
        return TrainOutput(x_hat_BD, codes, fvu, fvu.new_zeros(()), aux_fvu, l0, batch_threshold)

    def _aux_fvu(
        self,
        x_BD: Tensor,
        xc_BD: Tensor,
        x_hat_BD: Tensor,
        pre_BU: Tensor,
        dead_mask: Tensor,
        k_aux: int | None,
    ) -> Tensor:
        """AuxK: the top k_aux dead units of each sample reconstruct the main residual."""
        dead_units = dead_mask.nonzero().squeeze(1)
        k_aux = min(k_aux or self.cfg.d_in // 2, dead_units.numel())
        selected, units_BK = pre_BU[:, dead_units].topk(k_aux, dim=1, sorted=False)
        units = dead_units[units_BK.reshape(-1)]
        offsets = torch.arange(0, x_BD.shape[0] * k_aux, k_aux, device=x_BD.device)
        values = torch.relu(
            gathered_preacts(
                pre_BU,
                units,
                offsets,
                xc_BD,
                self.W_enc,
                self.b_enc,
                self.b_dec,
                selected.reshape(-1),
            )
        )
        residual_BD = (x_BD - x_hat_BD).detach()
        e_hat_BD = decode_sparse(SparseCodes(units, offsets, values, x_BD.shape[0]), self.W_dec)
        aux, _ = _fvu(residual_BD, e_hat_BD)
        return aux
