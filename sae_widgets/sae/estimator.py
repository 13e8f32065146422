"""`SAE`: a scikit-learn style estimator over SparseAutoencoder and the Trainer.

Conventions: __init__ stores parameters only; fit/partial_fit return self; fitted attributes
end in "_"; numpy in -> numpy out, torch in -> torch out on the input's device.
"""

from __future__ import annotations

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

from sae_widgets.memory import check_memory
from sae_widgets.sae import device_paths, inputs
from sae_widgets.sae import params as constraints
from sae_widgets.sae.encoding import encode_csr, encode_dense
from sae_widgets.sae.fit_state import new_module, replacing_fit
from sae_widgets.sae.interrupts import SigintGuard
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.train_config import fit_batch_size, train_config_of
from sae_widgets.sae.training import Callback, TrainConfig, Trainer

MATMUL_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
"""`precision` -> the encoder matmul's dtype (SparseAutoencoder.matmul_dtype)."""


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
        batch to at most n / min_steps_per_epoch (>= 2 rows) so small data still gets steps.
    lr: Adam learning rate in (0, 1]; None picks one for the activation and n_units.
    seed: an integer in [0, 2**63): the same seed gives the same weights (on the same device
        and thread count); None draws a new seed at each fit (kept in `seed_`).
    device: a torch device that exists here ("cpu", "cuda", "cuda:1"); "meta" is refused.
    precision: "fp32", or "bf16" for mixed precision on a GPU: the encoder matmul (most of
        training's and all of encoding's FLOPs) in bfloat16, weights, decoder, loss and
        gradients in float32. The CPU kernels run float32 (a warning says so).
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
    fit_steps_: the steps the current or last fit plans (a progress view's total); None
        after partial_fit.
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
        precision: str = "fp32",
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
        self.precision = precision

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
        return train_config_of(self.get_params())

    def _rows(self, X: Any, name: str = "X", fresh: bool = False) -> Any:
        """X as a finite float32 (n, d) tensor on the model's device, or a row source on disk
        (an ActivationStore's X) left where it is. fresh: for a new model (fit): any width,
        on the `device` parameter."""
        expected = None if fresh else getattr(self, "n_features_in_", None)
        return inputs.as_rows(X, name, expected, lambda: self._rows_device(fresh))

    def _rows_device(self, fresh: bool) -> torch.device:
        if hasattr(self, "model_") and not fresh:
            device: torch.device = self.model_.W_dec.device
            return device
        return self._torch_device()

    def _check_fitted(self) -> SparseAutoencoder:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
                "'partial_fit' first."
            )
        model: SparseAutoencoder = self.model_
        # `precision` (set_params included) decides the module's encoder matmul at each use
        precision = getattr(self, "precision", "fp32")
        constraints.check_param("precision", precision)  # an attribute set by hand, too
        model.matmul_dtype = MATMUL_DTYPES[precision]
        return model

    def _start(self, d_in: int) -> None:
        """Fresh, untrained state (fit, or the first partial_fit)."""
        self.seed_ = self._seed()
        self.model_ = new_module(self.get_params(), d_in, self.seed_, self._torch_device())
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
        device_paths.warn_unused_precision(self._check_fitted(), getattr(self, "precision", ""))
        trainer = getattr(self, "_trainer", None)
        if trainer is None:  # wrapped or loaded module: continue training it
            trainer = Trainer(self.model_, self._train_config(), self.seed_, fresh=False)
            trainer.resume_counts(self.n_steps_, self.n_samples_seen_)
            self._trainer = trainer
        else:  # parameters set since (set_params) apply from now on
            trainer.reconfigure(self._train_config())
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
        # a Ctrl-C from here on stops training, never fit itself; training needs autograd
        # (fit inside a caller's torch.no_grad() / inference_mode() block raised torch's
        # "element 0 of tensors does not require grad")
        with SigintGuard(), torch.inference_mode(False), torch.enable_grad():
            self._check_params()
            constraints.check_param("progress", progress)
            callback_list = inputs.callback_list(callbacks)
            X_t = self._rows(X, fresh=True)  # before dropping the old fit: bad X keeps it
            n, d = X_t.shape
            with replacing_fit(self):  # a fit failing before its first step keeps the old
                self._start(d)
                batch = fit_batch_size(self.batch_size, n, self.min_steps_per_epoch)
                steps = self.epochs * math.ceil(n / batch)
                self.fit_steps_: int | None = steps
                self._session(X_t, self.epochs, batch, self.shuffle, steps, callback_list, progress)
        return self

    def partial_fit(
        self,
        X: Any,
        y: Any = None,
        callbacks: Callback | Iterable[Callback] | None = None,
        progress: bool = False,
    ) -> SAE:
        """One pass over X in order, in steps of batch_size (no final decay); returns self."""
        with SigintGuard(), torch.inference_mode(False), torch.enable_grad():
            self._check_params()
            constraints.check_param("progress", progress)
            callback_list = inputs.callback_list(callbacks)
            if hasattr(self, "model_"):  # set_params may have named another architecture
                constraints.check_same_architecture(self._check_fitted().cfg, self.get_params())
            X_t = self._rows(X)
            if not hasattr(self, "model_"):
                self._start(X_t.shape[1])
            self.fit_steps_ = None
            self._session(X_t, 1, self.batch_size, False, None, callback_list, progress)
        return self

    @classmethod
    def from_module(cls, module: SparseAutoencoder, **params: Any) -> SAE:
        """A fitted estimator wrapping an existing module (training can continue)."""
        if not isinstance(module, SparseAutoencoder):
            raise TypeError(f"module must be a SparseAutoencoder, got {type(module)}")
        params = constraints.module_params(module.cfg, params)
        params.setdefault("device", str(module.W_dec.device))
        est = cls(**params)
        est.seed_ = est._seed()
        est.model_ = module.eval()
        est.n_features_in_ = module.cfg.d_in
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
        return self._split(self._rows(X), chunk_size)

    def _split(self, X_t: Any, chunk_size: int) -> Iterable[Tensor]:
        """`_rows`' result in row chunks (checked once: its finiteness scan reads all of X)."""
        size = inputs.check_chunk_size(chunk_size)
        if isinstance(X_t, Tensor):
            return X_t.split(size)
        device = self._check_fitted().W_dec.device
        return (torch.from_numpy(c).to(device) for c in X_t.chunks(size))

    def transform(self, X: Any, chunk_size: int = 8192) -> Any:
        """(n, n_units) unit activations (dense), computed in chunks without gradients."""
        model = self._check_fitted()
        rows = self._rows(X)  # a tensor on the model's device, or a store read chunk by chunk
        n_rows, n_units = int(rows.shape[0]), model.cfg.n_units
        check_memory(  # refused, not an mmap 'Cannot allocate memory' or the OOM killer
            4 * n_rows * n_units,
            f"transform(X): dense codes of {n_rows} rows x {n_units} units",
            "encode_sparse(X) keeps only the active units, or pass fewer rows",
        )
        codes = encode_dense(model, self._split(rows, chunk_size), n_rows)
        return inputs.output_like(codes, X)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self.fit(X, **fit_params).transform(X)

    def encode_sparse(self, X: Any, chunk_size: int = 8192) -> sp.csr_matrix:
        """(n, n_units) float32 CSR codes; never builds the dense matrix of the whole data
        (see `sae_widgets.sae.encoding.encode_csr`)."""
        model = self._check_fitted()
        return encode_csr(model, self._chunks(X, chunk_size))

    def inverse_transform(self, Z: Any) -> Any:
        """(n, d) reconstruction from unit activations (dense, torch, or scipy sparse): any
        finite float32 codes, as `transform` gives them (above 1e30 for inputs near 1e30)."""
        model = self._check_fitted()
        n_units = model.cfg.n_units
        if sp.issparse(Z):
            Z = inputs.sparse_codes(Z, n_units)
            W_dec = model.W_dec.detach().cpu().numpy()
            b_dec = model.b_dec.detach().cpu().numpy()
            with np.errstate(over="ignore", invalid="ignore"):  # refused just below
                X_hat_np = np.asarray(Z @ W_dec + b_dec, dtype=np.float32)
            inputs.check_reconstruction(X_hat_np)
            return X_hat_np
        Z_t = inputs.as_codes(Z, n_units, model.W_dec.device)
        with torch.no_grad():
            X_hat = model.decode(Z_t)
        inputs.check_reconstruction(X_hat)
        return inputs.output_like(X_hat, Z)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative fraction of variance unexplained (higher is better)."""
        from sae_widgets.sae.metrics import evaluate

        return -float(evaluate(self, X)["fvu"])

    # ----------------------------------------------------------------- io
    def save(self, folder: Any, *, training_state: bool = False) -> None:
        """Write a checkpoint folder (cfg.json + sae_weights.safetensors, SAELens layout).

        training_state=True also writes training_state.safetensors (Adam's moments, the
        schedules and counters: about twice the weights' size), so that `partial_fit` after
        `load` continues exactly as it would have without the save; without it a loaded SAE
        trains on with a fresh optimiser (SAELens' and sparsify's saves behave so)."""
        from sae_widgets.sae.checkpoint_sae import save_sae

        if not isinstance(training_state, bool):
            raise TypeError(f"training_state must be True or False; got {training_state!r}")
        save_sae(self, folder, training_state=training_state)

    @classmethod
    def load(cls, folder: Any, device: str | torch.device | None = None) -> SAE:
        """Read a checkpoint folder (ours, SAELens, sparsify or dictionary_learning).

        Weights are read onto the CPU whatever device saved them; `device` moves the loaded
        SAE there (e.g. "cuda"), and further training and inference run there. Parameters
        are the saved ones; training resumes as if never saved (see `sae.trainer_state`).
        """
        from sae_widgets.sae.checkpoint_sae import load_sae

        return load_sae(folder, device=device)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")


__all__ = ["SAE"]
