"""Metrics researchers trust (reached as `sae_widgets.metrics`).

Reconstruction: fvu, mse. Sparsity: l0, firing_frequencies, dead_fraction. Against ground
truth directions: mmcs, mcc, uniqueness. `evaluate` streams over large data in chunks.

Arrays may be numpy, torch or (for codes) scipy.sparse; results are python floats or numpy.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from sae_widgets.frames import numeric_frame
from sae_widgets.tensor_checks import check_dense, check_has_values

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
        check_has_values(a, name)
        check_dense(a, name)
        a = a.detach().cpu()
        a = (a.double() if a.is_floating_point() else a).numpy()  # bfloat16 has no numpy dtype
    if hasattr(a, "X") and not isinstance(a, np.ndarray):  # a Dataset
        a = a.X
    expected = f"{name} must be a 2-D array of real numbers; got {type(a).__name__}"
    try:
        raw = numeric_frame(a, np.asarray(a))  # pandas' nullable dtypes: float64, NA as NaN
        if raw.dtype.kind == "c":  # float64 would drop the imaginary part with a warning
            raise TypeError(f"{name} must hold real numbers; got dtype {raw.dtype}")
        if raw.dtype.kind not in "fiubO":  # strings, dates: not numbers
            raise TypeError(f"{expected} of dtype {raw.dtype}")
        if raw.dtype.kind == "O" and any(v is None for v in raw.flat):  # numpy reads None as NaN
            raise TypeError(expected)
        out = raw.astype(np.float64)  # objects too: Python ints past int64, or None (refused)
    except (ValueError, OverflowError):
        raise TypeError(expected) from None
    except TypeError as err:
        if str(err).startswith(name):
            raise
        raise TypeError(expected) from None
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {out.shape}")
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _pair(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    x, x_hat = _numpy(X, "X"), _numpy(X_hat, "X_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"X and X_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.shape[0] == 0:
        raise ValueError("X is empty")
    if x.shape[1] == 0:  # numpy's "zero-size array to reduction" otherwise
        raise ValueError(f"X has no features: expected (n_samples, d >= 1); got shape {x.shape}")
    return x, x_hat


# Outside these magnitudes a square can overflow float64 (max ~1.8e308) or underflow to 0.
_SQUARE_SAFE = (1e-140, 1e140)


def _scaled(x: np.ndarray, x_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(x / s, x_hat / s, s): huge or tiny values brought near 1 so that their squares stay
    finite and nonzero (s = 1 for ordinary data, which is left untouched)."""
    scale = float(max(np.abs(x).max(), np.abs(x_hat).max()))
    if scale == 0.0 or _SQUARE_SAFE[0] <= scale <= _SQUARE_SAFE[1]:
        return x, x_hat, 1.0
    return x / scale, x_hat / scale, scale


def fvu(X: Any, X_hat: Any) -> float:
    """Fraction of variance unexplained: sum||x - x_hat||^2 / sum||x - mean(x)||^2.

    NaN when X has no variance to explain (a single sample, or identical rows)."""
    x, x_hat, _ = _scaled(*_pair(X, X_hat))  # a ratio: the same at any scale
    total = float(((x - x.mean(0)) ** 2).sum())
    return float(((x - x_hat) ** 2).sum()) / total if total > 0 else float("nan")


def mse(X: Any, X_hat: Any) -> float:
    """Mean squared error per element."""
    x, x_hat, scale = _scaled(*_pair(X, X_hat))
    value = float(((x - x_hat) ** 2).mean()) * scale * scale
    if not math.isfinite(value):
        raise ValueError(
            f"mse overflows float64: X and X_hat hold values as large as {scale:.3g}; rescale both"
        )
    return value


def _active(codes: Any) -> tuple[Any, int]:
    """(boolean-ish matrix of active entries, n_samples) for numpy, torch or scipy codes."""
    if sp.issparse(codes):
        active = sp.csr_matrix(codes, copy=True)
        if active.dtype.kind not in "fiub":
            raise TypeError(f"codes must hold real numbers; got dtype {active.dtype}")
        if not np.isfinite(active.data).all():  # as dense codes: NaN is not "active"
            raise ValueError("codes contains NaN or infinite values")
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
    frequencies = firing_frequencies(codes)
    if frequencies.size == 0:
        raise ValueError("codes has no units (0 columns): no fraction of them is dead")
    return float((frequencies == 0).mean())


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


def _true_features_of(given: Any) -> Any:
    """A Dataset's ground-truth directions (`ds.true_features`), not its samples `ds.X`;
    anything else as it is."""
    if isinstance(given, np.ndarray) or torch.is_tensor(given) or not hasattr(given, "X"):
        return given
    true = getattr(given, "true_features", None)
    if true is None:
        raise ValueError(
            f"true_features: the {type(given).__name__} given has no true_features (its X "
            "are samples, not ground-truth directions); pass an (n_features, d) array"
        )
    return true


def _abs_cosines(sae_or_decoder: Any, true_features: Any) -> np.ndarray:
    """(n_true, n_units) |cosine| between ground-truth directions and decoder rows."""
    units = _decoder_rows(sae_or_decoder)
    true = _numpy(_true_features_of(true_features), "true_features")
    if true.shape[0] == 0 or units.shape[0] == 0:
        raise ValueError(
            f"true_features and the decoder need at least one row each, got {true.shape[0]} "
            f"true features and {units.shape[0]} units"
        )
    if units.shape[1] != true.shape[1]:
        raise ValueError(
            f"true_features have dimension {true.shape[1]}, decoder rows {units.shape[1]}"
        )
    true, zero = _directions(true)
    if zero.any():  # a zero vector has no direction to match
        raise ValueError(
            f"true_features must be nonzero directions; row {int(np.argmax(zero))} is all zeros"
        )
    units, _ = _directions(units)  # a dead unit's zero row matches nothing
    return np.minimum(np.abs(true @ units.T), 1.0)  # rounding made parallel rows 1 + 2e-16


def _directions(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit-norm rows, which rows are zero): each row is divided by its largest |value|
    first, so rows of 1e200 or 1e-200 (whose squares overflow or underflow float64) keep
    their direction."""
    peak = np.abs(rows).max(axis=1, keepdims=True)
    zero = peak[:, 0] == 0
    scaled = rows / np.where(zero[:, None], 1.0, peak)
    return scaled / np.maximum(np.linalg.norm(scaled, axis=1, keepdims=True), 1.0), zero


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

    `threshold` is a |cosine| in (0, 1]: above 1 no unit could match, and at 0 or below every
    unit would, a dead unit's zero row included.
    """
    if isinstance(threshold, bool | np.bool_) or not isinstance(threshold, numbers.Real):
        raise TypeError(
            f"threshold must be a |cosine| in (0, 1] (e.g. 0.9); got {type(threshold).__name__}"
        )
    if not (math.isfinite(threshold) and 0.0 < threshold <= 1.0):
        raise ValueError(f"threshold must be a |cosine| in (0, 1] (e.g. 0.9); got {threshold!r}")
    cos = _abs_cosines(sae_or_decoder_matrix, true_features)
    best_true = cos.argmax(axis=0)
    matched = cos.max(axis=0) >= threshold
    if not matched.any():
        return float("nan")
    return float(np.unique(best_true[matched]).size / matched.sum())


class ReconstructionStats:
    """Streaming fvu, mse, l0 and dead_fraction over chunks of (x, codes, x_hat).

    FVU is exact over everything seen: squared errors, per-feature sums and sums of squares
    are accumulated in float64 (about a shift, the first chunk's mean, to avoid cancellation).
    """

    def __init__(self, d: int, n_units: int, device: torch.device | str = "cpu") -> None:
        self.n = 0
        self.d = d
        self.sq_err = 0.0
        self.active = 0.0
        self.shift: torch.Tensor | None = None
        self.sum_D = torch.zeros(d, dtype=torch.float64, device=device)
        self.sumsq_D = torch.zeros(d, dtype=torch.float64, device=device)
        self.fired = torch.zeros(n_units, dtype=torch.bool, device=device)

    def update(self, x: torch.Tensor, codes: torch.Tensor, x_hat: torch.Tensor) -> None:
        if x.shape[0] == 0:
            return
        self.n += x.shape[0]
        self.sq_err += float((x - x_hat).double().pow(2).sum())
        nonzero = codes != 0
        self.active += float(nonzero.sum())
        self.fired |= nonzero.any(dim=0).to(self.fired.device)
        if self.shift is None:
            self.shift = x.double().mean(0).to(self.sum_D.device)
        centred = x.double().to(self.sum_D.device) - self.shift
        self.sum_D += centred.sum(0)
        self.sumsq_D += centred.pow(2).sum(0)

    def result(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("X is empty")
        total_var = float((self.sumsq_D - self.sum_D.pow(2) / self.n).sum())
        return {
            "fvu": self.sq_err / total_var if total_var > 0 else float("nan"),
            "mse": self.sq_err / (self.n * self.d),
            "l0": self.active / self.n,
            "dead_fraction": float((~self.fired).float().mean()),
        }


def evaluate(
    sae: Any,
    X: Any,
    chunk_size: int = 8192,
    *,
    model: Any = None,
    layer: Any = None,
    **splice_options: Any,
) -> dict[str, float]:
    """fvu, mse, l0 and dead_fraction of `sae` (SAE or SparseAutoencoder) on X, in chunks.

    FVU is exact over all of X (accumulated in float64).

    With `model` and `layer`, X is the model's data instead (a classifier's inputs with
    labels: one per sample, or one per position, shape (n, T), for a model that returns
    logits (batch, T, n_classes); or a language model's texts/token ids, or the token
    Dataset collected from it; a language model's (batch, tokens, vocab) logits scored
    against one label per sample are a ValueError)
    and the SAE was trained on `layer`'s output: the reconstruction figures are measured on
    that layer's outputs over X, and the spliced-model figures are added: ce_* and
    accuracy_* original / spliced / zero_ablated / mean_ablated, loss_recovered (zero
    ablation, as SAELens and SAEBench report it),
    loss_recovered_mean_ablation, kl_spliced, kl_zero_ablated, kl_div_score. See
    `sae_widgets.sae.splice_metrics.spliced_metrics` for `splice_options` (labels, input_fn,
    tokenizer, task, batch_size, max_length, skip_first).
    """
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.inputs import check_chunk_size
    from sae_widgets.sae.inputs import data_of as _data_of
    from sae_widgets.sae.model import SparseAutoencoder

    if isinstance(sae, SparseAutoencoder):
        was_training = sae.training
        est = SAE.from_module(sae)  # puts the module in eval mode: give the user theirs back
        sae.train(was_training)
    elif isinstance(sae, SAE):
        est = sae
    else:
        raise TypeError(f"sae must be an SAE or SparseAutoencoder, got {type(sae)}")
    module = est._check_fitted()
    chunk_size = check_chunk_size(chunk_size)  # the same rule as SAE.transform
    if (model is None) != (layer is None):
        raise ValueError("model and layer go together: pass both (spliced figures) or neither")
    if model is not None:
        from sae_widgets.sae.splice_metrics import spliced_metrics

        stats = ReconstructionStats(module.cfg.d_in, module.cfg.n_units, module.W_dec.device)
        spliced = spliced_metrics(est, X, model, layer, on_rows=stats.update, **splice_options)
        return {**stats.result(), **spliced}
    elif splice_options:
        raise TypeError(f"{sorted(splice_options)} apply only with model= and layer=")
    rows = est._rows(_data_of(X))  # a tensor on the model's device, or a store on disk
    stats = ReconstructionStats(rows.shape[1], module.cfg.n_units, module.W_dec.device)
    with torch.no_grad():
        for chunk in est._split(rows, chunk_size):
            codes = module.encode(chunk)
            stats.update(chunk, codes, module.decode(codes))
    return stats.result()
