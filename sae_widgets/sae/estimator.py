"""`SAE`: a scikit-learn style estimator over SparseAutoencoder and the Trainer.

Conventions: __init__ stores parameters only; fit/partial_fit return self; fitted attributes
end in "_"; numpy in -> numpy out, torch in -> torch out on the input's device.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from torch import Tensor

from sae_widgets.sae import params as constraints
from sae_widgets.sae.batches import is_row_source
from sae_widgets.sae.interrupts import SigintGuard
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.training import Callback, TrainConfig, Trainer

# Inputs beyond this magnitude would overflow float32 in the encoder's matmul; smaller ones
# (1e20 too) train like any others, as fit folds an input scale into the weights.
MAX_ABS_INPUT = 1e30


def _real_array(X: Any, name: str) -> np.ndarray:
    """X as a C-contiguous float32 numpy array; strings, objects and complex are TypeErrors."""
    try:
        array = X if isinstance(X, np.ndarray) else np.asarray(X)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(
            f"{name} must be an (n_samples, n_features) numpy array, torch tensor or Dataset "
            f"of numbers; got {type(X).__name__} ({err})"
        ) from err
    if array.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.dtype.kind not in "fiub":
        raise TypeError(
            f"{name} must hold numbers (a float, integer or bool array); got dtype "
            f"{array.dtype} (convert strings or objects with np.asarray(..., dtype=float))"
        )
    _check_magnitude(array, name)
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_magnitude(array: Any, name: str) -> None:
    """ValueError for NaN, inf or values whose size float32 arithmetic cannot take."""
    if torch.is_tensor(array):
        if array.numel() == 0 or array.dtype == torch.bool:
            return
    elif array.size == 0 or array.dtype == np.bool_:
        return
    lo, hi = float(array.min()), float(array.max())  # min/max propagate NaN
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    peak = max(-lo, hi)
    if peak > MAX_ABS_INPUT:
        raise ValueError(
            f"{name} holds values as large as {peak:.3g}; at most {MAX_ABS_INPUT:.0e} in "
            f"magnitude is supported (float32 arithmetic would overflow): divide {name} by a "
            "constant first"
        )


def _data_of(X: Any) -> Any:
    """The array inside a Dataset (anything with an `.X` that is not itself an array)."""
    if not isinstance(X, np.ndarray | Tensor) and hasattr(X, "X"):
        return X.X
    return X


# What fit replaces; restored if fit fails before its first training step.
_FIT_STATE = (
    "model_",
    "n_features_in_",
    "history_",
    "n_steps_",
    "n_samples_seen_",
    "stop_reason_",
    "_trainer",
)


class SAE(BaseEstimator):
    """Sparse autoencoder estimator (scikit-learn conventions).

    Parameters (checked when `fit` / `partial_fit` run, and one by one by `set_params`,
    against `sae_widgets.sae.params.SAE_PARAMETERS`; a wrong type is a TypeError, a value
    out of range a ValueError naming the parameter, the value and what is expected)
    ----------
    n_units: number of units (latents), a positive integer.
    activation: a name in `sae_widgets.sae.registry.ACTIVATIONS`: "relu" (L1 weighted by
        decoder norms), "topk", "batchtopk" (a JumpReLU threshold at inference), "jumprelu"
        (learned thresholds, L0 penalty), "matryoshka_batchtopk" (BatchTopK whose nested
        prefixes of units each reconstruct; see prefix_sizes).
    k: active units per sample (topk), on average (batchtopk, matryoshka_batchtopk); for
        jumprelu the L0 its thresholds start at (None: 16); unused by relu. At most n_units.
    prefix_sizes: matryoshka_batchtopk only: increasing numbers of units whose prefixes are
        trained to reconstruct, e.g. (16, 64, 256); None: n_units/4**j down to 16 units.
    l1_coeff: relu sparsity weight; l0_coeff: jumprelu sparsity weight (finite, >= 0).
    epochs, batch_size: passes over the data and samples per step in fit; fit shrinks the
        batch to at most n / min_steps_per_epoch so small datasets still get enough steps.
    lr: Adam learning rate in (0, 1]; None picks one for the activation and n_units.
    seed: an integer in [0, 2**63): the same seed gives the same weights (on the same device
        and thread count); None draws a new seed at each fit (kept in `seed_`).
    device: a torch device that exists here ("cpu", "cuda", "cuda:1"); "meta" is refused.
    grad_clip: maximum gradient norm (finite, > 0); None or 0 disables clipping.
    warmup_steps (>= 0 or None), decay_fraction ([0, 1]), aux_coeff (>= 0), k_aux (>= 1 or
    None), dead_window, min_steps_per_epoch, log_every (>= 1 or None), shuffle (a bool),
    shuffle_buffer (>= 1 or None): see `sae_widgets.sae.training.TrainConfig`.

    X may also be an `ActivationStore` (or its `.X`): fit, partial_fit, transform and
    encode_sparse then stream it from disk in bounded memory; fit gives the same model as on
    the same rows in memory (same seed, same `shuffle_buffer`).

    fit(X, callbacks=None, progress=True) shows a progress bar; pass progress=False for
    none (partial_fit's default). Ctrl-C or a callback returning False ends training with
    a usable model.

    Fitted attributes
    -----------------
    model_: the trained `SparseAutoencoder` (weights in user space, eval mode).
    n_features_in_: input dimension d.
    components_: (n_units, d) decoder directions, numpy.
    history_: list of dicts, one per logged step (step, samples, loss, fvu, l0, aux_fvu,
        sparsity, dead_fraction, lr).
    n_steps_, n_samples_seen_: optimiser steps and training samples so far.
    stop_reason_: None, "callback" or "interrupted".
    seed_: the seed this fit used (`seed`, or the one drawn when seed is None).
    """

    def __init__(
        self,
        n_units: int = 256,
        activation: str = "topk",
        k: int | None = 16,
        l1_coeff: float = 1.0,
        l0_coeff: float = 0.004,
        epochs: int = 5,
        batch_size: int = 4096,
        lr: float | None = None,
        seed: int | None = 0,
        device: str | torch.device = "cpu",
        warmup_steps: int | None = None,
        decay_fraction: float = 0.5,
        grad_clip: float | None = 1.0,
        aux_coeff: float = 1 / 32,
        k_aux: int | None = None,
        dead_window: int = 65_536,
        min_steps_per_epoch: int = 32,
        shuffle: bool = True,
        log_every: int | None = None,
        prefix_sizes: tuple[int, ...] | None = None,
        shuffle_buffer: int | None = 2**17,
    ) -> None:
        self.n_units = n_units
        self.activation = activation
        self.k = k
        self.l1_coeff = l1_coeff
        self.l0_coeff = l0_coeff
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.warmup_steps = warmup_steps
        self.decay_fraction = decay_fraction
        self.grad_clip = grad_clip
        self.aux_coeff = aux_coeff
        self.k_aux = k_aux
        self.dead_window = dead_window
        self.min_steps_per_epoch = min_steps_per_epoch
        self.shuffle = shuffle
        self.log_every = log_every
        self.prefix_sizes = prefix_sizes
        self.shuffle_buffer = shuffle_buffer

    # ----------------------------------------------------------------- helpers
    def _check_params(self) -> None:
        """Every parameter against `sae_widgets.sae.params.SAE_PARAMETERS` (at fit time, as
        scikit-learn does: __init__ only stores)."""
        constraints.check_params(self.get_params())

    def set_params(self, **params: Any) -> SAE:
        """Set parameters (scikit-learn API); each value is checked on its own right away,
        the rules between parameters at the next fit."""
        for name, value in params.items():
            constraints.check_param(name, value)
        super().set_params(**params)
        return self

    def _torch_device(self) -> torch.device:
        return constraints.check_device("device", self.device)

    def _seed(self) -> int:
        """The seed of this fit: `seed`, or one drawn at random when seed is None."""
        return (
            int(self.seed) if self.seed is not None else secrets.randbelow(constraints.SEED_LIMIT)
        )

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            lr=self.lr,
            batch_size=self.batch_size,
            min_steps_per_epoch=self.min_steps_per_epoch,
            warmup_steps=self.warmup_steps,
            decay_fraction=self.decay_fraction,
            grad_clip=0.0 if self.grad_clip is None else float(self.grad_clip),
            aux_coeff=self.aux_coeff,
            k_aux=self.k_aux,
            dead_window=self.dead_window,
            l1_coeff=self.l1_coeff,
            l0_coeff=self.l0_coeff,
            log_every=self.log_every,
            shuffle=self.shuffle,
            shuffle_buffer=self.shuffle_buffer,
        )

    def _rows(self, X: Any, name: str = "X", fresh: bool = False) -> Any:
        """X as `_input` gives it, or a row source on disk (an ActivationStore's X), checked
        for shape but left where it is (its rows were checked finite when written)."""
        X = _data_of(X)
        if not is_row_source(X):
            return self._input(X, name, fresh)
        if len(X.shape) != 2 or min(X.shape) == 0:
            raise ValueError(f"{name} must be a non-empty 2-D store; got shape {tuple(X.shape)}")
        expected = None if fresh else getattr(self, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but the SAE was fitted on {expected}"
            )
        self._torch_device()  # a bad device string is a ValueError before any reading
        return X

    def _input(self, X: Any, name: str = "X", fresh: bool = False) -> Tensor:
        """X as a finite float32 (n, d) tensor on the model's device.

        fresh: for a new model (fit): any width, on the `device` parameter.
        """
        X = _data_of(X)
        if torch.is_tensor(X):
            if X.is_complex():  # any real dtype converts, as it does for numpy input
                raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
            tensor = X.detach()
        elif sp.issparse(X):
            raise TypeError(f"{name} must be a dense array, tensor or Dataset, not a sparse matrix")
        else:
            tensor = torch.from_numpy(_real_array(X, name))
        if tensor.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got shape {tuple(tensor.shape)}"
            )
        if tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
        _check_magnitude(tensor, name)
        if tensor.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got shape {tuple(tensor.shape)}"
            )
        if tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
        expected = None if fresh else getattr(self, "n_features_in_", None)
        if expected is not None and tensor.shape[1] != expected:
            raise ValueError(
                f"{name} has {tensor.shape[1]} features, but the SAE was fitted on {expected}"
            )
        fitted = hasattr(self, "model_") and not fresh
        device = self.model_.W_dec.device if fitted else self._torch_device()
        return tensor.to(device=device, dtype=torch.float32)

    def _check_fitted(self) -> SparseAutoencoder:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
                "'partial_fit' first."
            )
        model: SparseAutoencoder = self.model_
        return model

    @staticmethod
    def _callbacks(callbacks: Callback | Iterable[Callback] | None) -> list[Callback]:
        if callbacks is None:
            return []
        if callable(callbacks):
            return [callbacks]
        out = list(callbacks)
        for cb in out:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables, got {type(cb)}")
        return out

    def _new_model(self, d_in: int, seed: int) -> SparseAutoencoder:
        cfg = SAEConfig(
            d_in=d_in,
            n_units=self.n_units,
            activation=self.activation,
            k=self.k,
            prefix_sizes=None if self.prefix_sizes is None else tuple(self.prefix_sizes),
        )
        generator = torch.Generator().manual_seed(seed)
        return SparseAutoencoder(cfg, generator=generator).to(self._torch_device())

    def _start(self, d_in: int) -> None:
        """Fresh, untrained state (fit, or the first partial_fit)."""
        self.seed_ = self._seed()
        self.model_ = self._new_model(d_in, self.seed_)
        self.n_features_in_ = d_in
        self.history_: list[dict[str, float]] = []
        self.n_steps_ = 0
        self.n_samples_seen_ = 0
        self.stop_reason_: str | None = None
        self._trainer: Trainer | None = Trainer(
            self.model_, self._train_config(), self.seed_, fresh=True
        )

    def _session(
        self,
        X: Any,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        total_steps: int | None,
        callbacks: list[Callback],
        progress: bool,
    ) -> None:
        trainer = getattr(self, "_trainer", None)
        if trainer is None:  # wrapped or loaded module: continue training it
            trainer = Trainer(self.model_, self._train_config(), self.seed_, fresh=False)
            trainer.resume_counts(self.n_steps_, self.n_samples_seen_)
            self._trainer = trainer
        try:
            self.stop_reason_ = trainer.run(
                X,
                self.history_,
                epochs=epochs,
                batch_size=batch_size,
                shuffle=shuffle,
                total_steps=total_steps,
                callbacks=callbacks,
                progress=progress,
            )
        finally:
            self.n_steps_ = trainer.step
            self.n_samples_seen_ = trainer.samples_seen

    # ----------------------------------------------------------------- training
    def fit(
        self,
        X: Any,
        y: Any = None,
        callbacks: Callback | Iterable[Callback] | None = None,
        progress: bool = True,
    ) -> SAE:
        """Train a fresh SAE on X for `epochs` passes; returns self.

        callbacks receive each logged step's metrics dict (also appended to history_); one
        that returns False or raises StopTraining ends training cleanly, as does Ctrl-C.
        """
        with SigintGuard():  # a Ctrl-C from here on stops training, never fit itself
            self._check_params()
            constraints.check_param("progress", progress)
            callback_list = self._callbacks(callbacks)
            X_t = self._rows(X, fresh=True)  # before dropping the old fit: bad X keeps it
            previous = {key: self.__dict__.pop(key) for key in _FIT_STATE if key in self.__dict__}
            n, d = X_t.shape
            try:
                self._start(d)
                batch = max(1, min(self.batch_size, n // self.min_steps_per_epoch))
                steps = self.epochs * math.ceil(n / batch)
                self._session(X_t, self.epochs, batch, self.shuffle, steps, callback_list, progress)
            except Exception:
                if getattr(self, "n_steps_", 0) == 0:  # failed before training: keep the old fit
                    for key in _FIT_STATE:
                        self.__dict__.pop(key, None)
                    self.__dict__.update(previous)
                raise
        return self

    def partial_fit(
        self,
        X: Any,
        y: Any = None,
        callbacks: Callback | Iterable[Callback] | None = None,
        progress: bool = False,
    ) -> SAE:
        """One pass over X in order, in steps of batch_size (no final decay); returns self."""
        with SigintGuard():
            self._check_params()
            constraints.check_param("progress", progress)
            callback_list = self._callbacks(callbacks)
            X_t = self._rows(X)
            if not hasattr(self, "model_"):
                self._start(X_t.shape[1])
            self._session(X_t, 1, self.batch_size, False, None, callback_list, progress)
        return self

    @classmethod
    def from_module(cls, module: SparseAutoencoder, **params: Any) -> SAE:
        """A fitted estimator wrapping an existing module (training can continue)."""
        if not isinstance(module, SparseAutoencoder):
            raise TypeError(f"module must be a SparseAutoencoder, got {type(module)}")
        cfg = module.cfg
        arch: dict[str, Any] = {
            "n_units": cfg.n_units,
            "activation": cfg.activation,
            "k": cfg.k,
            "prefix_sizes": cfg.prefix_sizes,
        }
        given = {name: params[name] for name in arch if name in params}
        try:  # the given values must describe the module's architecture (None: its default)
            same = not given or dataclasses.replace(cfg, **given) == cfg
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"{', '.join(f'{n}={v!r}' for n, v in given.items())} disagrees with the "
                f"module's architecture ({', '.join(f'{n}={v!r}' for n, v in arch.items())})"
            )
        params = {**{name: v for name, v in arch.items() if v is not None}, **params}
        params.setdefault("device", str(module.W_dec.device))
        est = cls(**params)
        est.seed_ = est._seed()
        est.model_ = module.eval()
        est.n_features_in_ = cfg.d_in
        est.history_ = []
        est.n_steps_ = 0
        est.n_samples_seen_ = 0
        est.stop_reason_ = None
        est._trainer = None
        return est

    # ----------------------------------------------------------------- inference
    @property
    def prefix_sizes_(self) -> tuple[int, ...] | None:
        """Nested prefix sizes of a Matryoshka SAE (the first n units reconstruct on their
        own for each n), None for other activations."""
        return self._check_fitted().cfg.prefix_sizes

    @property
    def components_(self) -> np.ndarray:
        """(n_units, d) decoder directions (rows), numpy float32."""
        return self._check_fitted().W_dec.detach().cpu().numpy().copy()

    def _chunks(self, X: Any, chunk_size: int) -> Iterable[Tensor]:
        """X in row chunks on the model's device (a store is read chunk by chunk)."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
            raise TypeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        X_t = self._rows(X)
        if isinstance(X_t, Tensor):
            return X_t.split(int(chunk_size))
        device = self._check_fitted().W_dec.device
        return (torch.from_numpy(c).to(device) for c in X_t.chunks(int(chunk_size)))

    def transform(self, X: Any, chunk_size: int = 8192) -> Any:
        """(n, n_units) unit activations (dense), computed in chunks without gradients."""
        model = self._check_fitted()
        rows = self._rows(X)  # a tensor on the model's device, or a store read chunk by chunk
        n = int(rows.shape[0])
        chunks = self._chunks(rows, chunk_size)
        with torch.no_grad():
            codes: Tensor | None = None  # filled chunk by chunk (torch.cat would hold 2 copies)
            start = 0
            for chunk in chunks:
                part = model.encode(chunk)
                if codes is None:
                    codes = part.new_empty(n, part.shape[1])
                codes[start : start + len(part)] = part
                start += len(part)
        assert codes is not None
        return self._output(codes, X)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self.fit(X, **fit_params).transform(X)

    def encode_sparse(self, X: Any, chunk_size: int = 8192) -> sp.csr_matrix:
        """(n, n_units) float32 CSR codes; never builds the dense matrix of the whole data.

        topk rows come straight from torch.topk (<= k entries per row, zeros dropped, column
        indices sorted); other activations keep the non-zeros of each dense chunk.
        """
        model = self._check_fitted()
        data_parts, index_parts, count_parts = [], [], []
        with torch.no_grad():
            for chunk in self._chunks(X, chunk_size):
                if model.spec.per_sample_k:
                    values_BK, units_BK = model.encode_topk(chunk)
                    units_BK, order = units_BK.sort(dim=1)
                    values_BK = values_BK.gather(1, order)
                    keep = values_BK > 0
                    data, units, counts = values_BK[keep], units_BK[keep], keep.sum(1)
                else:
                    codes = model.encode(chunk)
                    keep = codes != 0
                    data, units, counts = codes[keep], keep.nonzero()[:, 1], keep.sum(1)
                data_parts.append(data.cpu())
                index_parts.append(units.to(torch.int32).cpu())
                count_parts.append(counts.cpu())
        row_counts = torch.cat(count_parts).numpy()
        indptr = np.zeros(row_counts.size + 1, dtype=np.int64)
        np.cumsum(row_counts, out=indptr[1:])
        index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
        if index_dtype == np.int32:
            indptr = indptr.astype(np.int32)
        matrix = sp.csr_matrix(
            (
                torch.cat(data_parts).numpy().astype(np.float32, copy=False),
                torch.cat(index_parts).numpy().astype(index_dtype, copy=False),
                indptr,
            ),
            shape=(row_counts.size, model.cfg.n_units),
        )
        matrix.has_sorted_indices = True
        return matrix

    def inverse_transform(self, Z: Any) -> Any:
        """(n, d) reconstruction from unit activations (dense, torch, or scipy sparse)."""
        model = self._check_fitted()
        n_units = model.cfg.n_units
        if sp.issparse(Z):
            if Z.ndim != 2 or Z.shape[1] != n_units:
                raise ValueError(f"Z must have shape (n, {n_units}), got {Z.shape}")
            if not np.isfinite(Z.data).all():
                raise ValueError("Z contains NaN or infinite values")
            W_dec = model.W_dec.detach().cpu().numpy()
            b_dec = model.b_dec.detach().cpu().numpy()
            return np.asarray(Z @ W_dec + b_dec, dtype=np.float32)
        Z_t = self._input_codes(Z, n_units)
        with torch.no_grad():
            X_hat = model.decode(Z_t)
        return self._output(X_hat, Z)

    def _input_codes(self, Z: Any, n_units: int) -> Tensor:
        if torch.is_tensor(Z):
            Z_t = Z.detach()
        else:
            Z_t = torch.from_numpy(np.ascontiguousarray(np.asarray(Z, dtype=np.float32)))
        if Z_t.ndim != 2 or Z_t.shape[1] != n_units:
            raise ValueError(f"Z must have shape (n, {n_units}), got {tuple(Z_t.shape)}")
        Z_t = Z_t.to(device=self.model_.W_dec.device, dtype=torch.float32)
        if not bool(torch.isfinite(Z_t).all()):
            raise ValueError("Z contains NaN or infinite values")
        return Z_t

    @staticmethod
    def _output(result: Tensor, like: Any) -> Any:
        like = _data_of(like)
        if torch.is_tensor(like):
            return result.to(like.device)
        return result.cpu().numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Negative fraction of variance unexplained (higher is better)."""
        from sae_widgets.sae.metrics import evaluate

        return -float(evaluate(self, X)["fvu"])

    # ----------------------------------------------------------------- io
    def save(self, folder: Any) -> None:
        """Write a checkpoint folder (cfg.json + sae_weights.safetensors, SAELens layout)."""
        from sae_widgets.sae.checkpoint import save_sae

        save_sae(self, folder)

    @classmethod
    def load(cls, folder: Any, device: str | torch.device | None = None) -> SAE:
        """Read a checkpoint folder (ours, SAELens, sparsify or dictionary_learning).

        Weights are read onto the CPU whatever device saved them; `device` moves the loaded
        SAE there (e.g. "cuda"), and further training and inference run there.
        """
        from sae_widgets.sae.checkpoint import load_sae

        target = None
        if device is not None:
            try:
                target = torch.device(device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"device must name a torch device, got {device!r}") from err
        loaded: SAE = load_sae(folder)
        if target is not None:
            loaded.model_.to(target)
            loaded.device = str(target)
        return loaded

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")


__all__ = ["SAE"]
