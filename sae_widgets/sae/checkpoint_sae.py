"""An estimator to and from a checkpoint folder: `save_sae` and `load_sae`.

`sae_widgets.sae.checkpoint` reads and writes the folders (layouts, atomic writes); here the
estimator's parameters, training history and trainer state (`sae.trainer_state`) become the
cfg.json metadata and back, so a loaded SAE is the saved one: the same parameters (those
`set_params` changed after the fit too) and, for saves with the training state, training that
resumes exactly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sae_widgets.sae import trainer_state
from sae_widgets.sae.checkpoint import _as_path, _section, read_weights, write_weights
from sae_widgets.sae.formats import CheckpointWeights

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.model import SAEConfig

__all__ = ["MAX_HISTORY_SAVED", "load_sae", "save_sae"]

# Logged training steps kept in cfg.json (fit logs about 50; long streams get their tail).
MAX_HISTORY_SAVED = 10_000
# Estimator parameters that describe the architecture: the weights decide the model's; a saved
# value that describes another one (set_params after the fit, for the next fit) is set on the
# estimator afterwards, as it was when saved.
_ARCHITECTURE_PARAMS = ("n_units", "activation", "k", "prefix_sizes")


def save_sae(
    sae: SAE,
    folder: str | os.PathLike[str],
    *,
    metrics: dict[str, Any] | None = None,
    training_state: bool = False,
) -> Path:
    """Write a fitted estimator to `folder` in SAELens' layout (see `write_weights`).

    cfg.json's metadata block keeps our version, the activation, the estimator's parameters,
    the training history and the final metrics: `metrics` when given (e.g. from
    `sae_widgets.sae.metrics.evaluate`), else those of the last logged training step. With
    `training_state`, a trained estimator's trainer state goes along
    (`sae_widgets.sae.trainer_state`: what resumes its training exactly).
    """
    from sklearn.exceptions import NotFittedError

    module = getattr(sae, "model_", None)
    if module is None:
        raise NotFittedError(f"{type(sae).__name__} is not fitted yet; nothing to save")
    weights = module.weights()  # user space: any input scaling is already folded in
    metadata = _metadata(sae, metrics)
    tensors: dict[str, Any] = {}
    trainer = getattr(sae, "_trainer", None)
    if trainer is not None and training_state:
        metadata["resume"], tensors = trainer_state.trainer_state(trainer)
    record = CheckpointWeights(
        W_enc=weights["W_enc"],
        b_enc=weights["b_enc"],
        W_dec=weights["W_dec"],
        b_dec=weights["b_dec"],
        activation=module.cfg.activation,
        k=module.cfg.k,
        threshold=weights.get("threshold"),
        metadata=metadata,
        layout="sae_widgets",
        prefix_sizes=module.cfg.prefix_sizes,
        training_state=tensors,
    )
    return write_weights(record, folder)


def load_sae(folder: str | os.PathLike[str], device: Any = None) -> SAE:
    """A fitted estimator from any known checkpoint folder; it can keep training.

    Weights are read onto the CPU whatever device saved them; `device` (if not None) moves
    the loaded SAE there, and further training and inference run there. The estimator's
    parameters are the saved ones (but `device`). Our checkpoints saved with
    `training_state=True` resume training where it stopped (Adam's state, schedules,
    counters: partial_fit after a save and load gives the weights partial_fit gives without
    them); other checkpoints train on with a fresh optimiser, the step count going on and
    the warm-up restarting."""
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
    from sae_widgets.sae.params import check_device, check_param

    target = None if device is None else check_device("device", device)  # before reading
    record = read_weights(folder)
    model_cfg = _section(record, "model_config")
    extra = {k: v for k, v in model_cfg.items() if k in ("bandwidth", "init_threshold")}
    cfg = SAEConfig(
        d_in=record.d_in,
        n_units=record.n_units,
        activation=record.activation,
        k=record.k,
        prefix_sizes=record.prefix_sizes,
        **extra,
    )
    module = SparseAutoencoder.from_weights(
        cfg, record.W_enc, record.b_enc, record.W_dec, record.b_dec, threshold=record.threshold
    )
    saved = _section(record, "params")
    accepted = set(SAE().get_params()) - {"device"}
    kept = {name: value for name, value in saved.items() if name in accepted}
    if isinstance(kept.get("prefix_sizes"), list):
        kept["prefix_sizes"] = tuple(kept["prefix_sizes"])
    for name, value in kept.items():  # a checkpoint that loads must be able to run and train
        try:
            check_param(name, value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{_as_path(folder) / 'cfg.json'}: metadata.params.{name} is not a valid SAE "
                f"parameter: {err}"
            ) from None
    # the model's own architecture first; one set_params changed for the next fit after
    later = {
        n: kept.pop(n)
        for n in _ARCHITECTURE_PARAMS
        if n in kept and not _describes(cfg, n, kept[n])
    }
    sae = SAE.from_module(module, **kept)
    sae.set_params(**later)
    training = _section(record, "training")
    history = training.get("history")
    if isinstance(history, list):
        sae.history_ = [dict(entry) for entry in history if isinstance(entry, dict)]
    # continuing training then keeps counting steps (history_ stays increasing)
    for attr, key in (("n_steps_", "n_steps"), ("n_samples_seen_", "n_samples_seen")):
        count = training.get(key)
        if _is_count(count):
            setattr(sae, attr, count)
    if _is_count(training.get("seed")):
        sae.seed_ = training["seed"]
    if target is not None:
        sae.model_.to(target)
        sae.device = str(target)
    sae._trainer = trainer_state.restore_trainer(  # after the move: its state goes there too
        sae.model_,
        sae._train_config(),
        sae.seed_,
        (sae.n_steps_, sae.n_samples_seen_),
        _section(record, "resume"),
        record.training_state,
        str(_as_path(folder) / trainer_state.FILE),
    )
    return sae


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _describes(cfg: SAEConfig, name: str, value: Any) -> bool:
    """Whether parameter `name`=`value` gives the architecture `cfg` (a saved parameter)."""
    try:
        return dataclasses.replace(cfg, **{name: value}) == cfg
    except (TypeError, ValueError):
        return False


def _metadata(sae: SAE, metrics: dict[str, Any] | None) -> dict[str, Any]:
    from sae_widgets import __version__

    history = [dict(entry) for entry in getattr(sae, "history_", [])][-MAX_HISTORY_SAVED:]
    if metrics is None and history:
        last = history[-1]
        metrics = {k: last[k] for k in ("fvu", "l0", "dead_fraction") if k in last}
        metrics["source"] = "last logged training step"
    return {
        "sae_widgets_version": __version__,
        "params": sae.get_params(),
        "model_config": sae.model_.cfg.to_dict(),
        "training": {
            "n_steps": getattr(sae, "n_steps_", None),
            "n_samples_seen": getattr(sae, "n_samples_seen_", None),
            "stop_reason": getattr(sae, "stop_reason_", None),
            "seed": getattr(sae, "seed_", None),
            "history": history,
        },
        "metrics": dict(metrics or {}),
    }
