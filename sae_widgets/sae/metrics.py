"""Metrics researchers trust (reached as `sae_widgets.metrics`).

Reconstruction: fvu, mse. Sparsity: l0, firing_frequencies, dead_fraction. Against ground
truth directions: mmcs, mcc, uniqueness. `evaluate` streams over large data in chunks.

Arrays may be numpy, torch or (for codes) scipy.sparse; results are python floats or numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

__all__ = [
    "dead_fraction",
    "evaluate",
    "firing_frequencies",
    "fvu",
    "l0",
    "mcc",
    "mmcs",
    "mse",
    "uniqueness",
]


def _numpy(a: Any, name: str) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    if hasattr(a, "X") and not isinstance(a, np.ndarray):  # a Dataset
        a = a.X
    out = np.asarray(a, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {out.shape}")
    return out


def _pair(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    x, x_hat = _numpy(X, "X"), _numpy(X_hat, "X_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"X and X_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.shape[0] == 0:
        raise ValueError("X is empty")
    return x, x_hat


def fvu(X: Any, X_hat: Any) -> float:
    """Fraction of variance unexplained: sum||x - x_hat||^2 / sum||x - mean(x)||^2."""
    x, x_hat = _pair(X, X_hat)
    total = float(((x - x.mean(0)) ** 2).sum())
    return float(((x - x_hat) ** 2).sum()) / total if total > 0 else float("nan")


def mse(X: Any, X_hat: Any) -> float:
    """Mean squared error per element."""
    x, x_hat = _pair(X, X_hat)
    return float(((x - x_hat) ** 2).mean())


def _active(codes: Any) -> tuple[Any, int]:
    """(boolean-ish matrix of active entries, n_samples) for numpy, torch or scipy codes."""
    if sp.issparse(codes):
        active = sp.csr_matrix(codes, copy=True)
        active.eliminate_zeros()
        active.data = np.ones_like(active.data, dtype=np.float64)
        return active, active.shape[0]
    array = _numpy(codes, "codes")
    return array != 0, array.shape[0]


def l0(codes: Any) -> float:
    """Mean number of active units per sample."""
    active, n = _active(codes)
    if n == 0:
        raise ValueError("codes is empty")
    return float(active.sum()) / n


def firing_frequencies(codes: Any) -> np.ndarray:
    """(n_units,) fraction of samples on which each unit is active."""
    active, n = _active(codes)
    if n == 0:
        raise ValueError("codes is empty")
    return np.asarray(active.sum(axis=0), dtype=np.float64).ravel() / n


def dead_fraction(codes: Any) -> float:
    """Fraction of units that never fire on the given samples."""
    return float((firing_frequencies(codes) == 0).mean())


def _decoder_rows(sae_or_decoder: Any) -> np.ndarray:
    """(n_units, d) decoder directions of an SAE, a SparseAutoencoder or a matrix."""
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.model import SparseAutoencoder

    if isinstance(sae_or_decoder, SAE):
        rows = sae_or_decoder.components_
    elif isinstance(sae_or_decoder, SparseAutoencoder):
        rows = sae_or_decoder.W_dec.detach().cpu().numpy()
    else:
        rows = sae_or_decoder
    return _numpy(rows, "sae_or_decoder_matrix")


def _abs_cosines(sae_or_decoder: Any, true_features: Any) -> np.ndarray:
    """(n_true, n_units) |cosine| between ground-truth directions and decoder rows."""
    units = _decoder_rows(sae_or_decoder)
    true = _numpy(true_features, "true_features")
    if true.shape[0] == 0 or units.shape[0] == 0:
        raise ValueError(
            f"true_features and the decoder need at least one row each, got {true.shape[0]} "
            f"true features and {units.shape[0]} units"
        )
    if units.shape[1] != true.shape[1]:
        raise ValueError(
            f"true_features have dimension {true.shape[1]}, decoder rows {units.shape[1]}"
        )
    units = units / np.maximum(np.linalg.norm(units, axis=1, keepdims=True), 1e-12)
    true = true / np.maximum(np.linalg.norm(true, axis=1, keepdims=True), 1e-12)
    return np.abs(true @ units.T)


def mmcs(sae_or_decoder_matrix: Any, true_features: Any) -> float:
    """Mean over true features of the max |cosine| to any unit's decoder direction."""
    return float(_abs_cosines(sae_or_decoder_matrix, true_features).max(axis=1).mean())


def mcc(sae_or_decoder_matrix: Any, true_features: Any) -> float:
    """Mean |cosine| under the best one-to-one matching of true features to units.

    Uses scipy's linear_sum_assignment (Hungarian); averages over min(n_true, n_units) pairs.
    """
    cos = _abs_cosines(sae_or_decoder_matrix, true_features)
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def uniqueness(sae_or_decoder_matrix: Any, true_features: Any, threshold: float = 0.9) -> float:
    """Among units that match a true feature (|cosine| >= threshold), the fraction of
    distinct features they match: 1.0 means no feature is learned twice. NaN if none match.
    """
    cos = _abs_cosines(sae_or_decoder_matrix, true_features)
    best_true = cos.argmax(axis=0)
    matched = cos.max(axis=0) >= threshold
    if not matched.any():
        return float("nan")
    return float(np.unique(best_true[matched]).size / matched.sum())


def evaluate(sae: Any, X: Any, chunk_size: int = 8192) -> dict[str, float]:
    """fvu, mse, l0 and dead_fraction of `sae` (SAE or SparseAutoencoder) on X, in chunks.

    FVU is exact over all of X: squared errors, per-feature sums and sums of squares are
    accumulated in float64 (about a shift, the first chunk's mean, to avoid cancellation).
    """
    from sae_widgets.sae.estimator import SAE, _data_of
    from sae_widgets.sae.model import SparseAutoencoder

    if isinstance(sae, SparseAutoencoder):
        was_training = sae.training
        est = SAE.from_module(sae)  # puts the module in eval mode: give the user theirs back
        sae.train(was_training)
    elif isinstance(sae, SAE):
        est = sae
    else:
        raise TypeError(f"sae must be an SAE or SparseAutoencoder, got {type(sae)}")
    model = est._check_fitted()
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    X_t = est._input(_data_of(X))
    n, d = X_t.shape
    sq_err = 0.0
    active = 0.0
    shift: torch.Tensor | None = None
    sum_D = torch.zeros(d, dtype=torch.float64, device=X_t.device)
    sumsq_D = torch.zeros(d, dtype=torch.float64, device=X_t.device)
    fired = torch.zeros(model.cfg.n_units, dtype=torch.bool, device=X_t.device)
    with torch.no_grad():
        for chunk in X_t.split(chunk_size):
            codes = model.encode(chunk)
            x_hat = model.decode(codes)
            sq_err += float((chunk - x_hat).double().pow(2).sum())
            nonzero = codes != 0
            active += float(nonzero.sum())
            fired |= nonzero.any(dim=0)
            if shift is None:
                shift = chunk.double().mean(0)
            centred = chunk.double() - shift
            sum_D += centred.sum(0)
            sumsq_D += centred.pow(2).sum(0)
    total_var = float((sumsq_D - sum_D.pow(2) / n).sum())
    return {
        "fvu": sq_err / total_var if total_var > 0 else float("nan"),
        "mse": sq_err / (n * d),
        "l0": active / n,
        "dead_fraction": float((~fired).float().mean()),
    }
