"""What a checkpoint keeps so that training resumes as if it had never stopped.

Asked for with `SAE.save(folder, training_state=True)` (the default save holds the weights
alone, as SAELens' does: Adam's moments would triple a checkpoint's size). Then
`partial_fit` after `SAE.load` continues the same optimisation as `partial_fit` without the
round trip (pickle's behaviour, and what SAELens' and sklearn's users expect of a resumable
save): Adam's moments and step counts, the input scale chosen on the first batch, where the
warm-up and sparsity ramps started, the dead-unit counters, the BatchTopK threshold's update
count and the shuffling generator. Tensors go to ``training_state.safetensors`` beside the
weights (written in the same staging folder, so a save is still all or nothing); numbers go
to cfg.json's ``metadata.resume`` block.

A checkpoint without them (an older save, another library's, a module wrapped with
`SAE.from_module`) keeps training with a fresh optimiser: the step and sample counts go on,
the warm-up restarts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sae_widgets.sae.formats.saelens import TRAINING_FILE
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.training import TrainConfig, Trainer

__all__ = ["FILE", "restore_trainer", "trainer_state"]

FILE = TRAINING_FILE
"""The trainer's tensors, beside cfg.json and sae_weights.safetensors."""

_ADAM = "adam."
_FIRED = "samples_since_fired"
_GENERATOR = "generator_state"


def _names(model: SparseAutoencoder) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def trainer_state(trainer: Trainer) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(numbers for cfg.json, tensors for `FILE`) of `trainer`, as of the end of a session."""
    names = _names(trainer.model)
    tensors: dict[str, Tensor] = {}
    for group in trainer.optimizer.param_groups:
        for param in group["params"]:
            for key, value in trainer.optimizer.state.get(param, {}).items():
                if torch.is_tensor(value):
                    tensors[f"{_ADAM}{names[id(param)]}.{key}"] = value.detach().cpu().clone()
    tensors[_FIRED] = trainer.samples_since_fired.detach().cpu().clone()
    tensors[_GENERATOR] = trainer.generator.get_state().clone()
    numbers = {
        "format": 1,
        "scale": trainer.scale,
        "start_step": trainer.start_step,
        "threshold_updates": trainer.threshold_updates,
        "any_dead": trainer.any_dead,
        "fresh": trainer.fresh,
    }
    return numbers, {name: t.contiguous() for name, t in tensors.items()}


def restore_trainer(
    model: SparseAutoencoder,
    cfg: TrainConfig,
    seed: int,
    counts: tuple[int, int],
    numbers: dict[str, Any],
    tensors: dict[str, Tensor],
    source: str,
) -> Trainer | None:
    """The Trainer `trainer_state` described (on `model`'s device), or None when the saved
    state is absent or belongs to other weights (decoder rows not of unit norm, as training
    leaves them: edited weights train on with a fresh optimiser); a state that does not fit
    `model` is a ValueError naming `source`."""
    if not tensors or numbers.get("format") != 1:
        return None
    norms = model.W_dec.detach().norm(dim=1)
    if not bool(((norms - 1).abs() <= 1e-4).all()):  # Trainer would fold them: other weights
        return None
    scale = numbers.get("scale")
    if scale is not None and not (isinstance(scale, float) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"{source}: metadata.resume.scale must be a number above 0; got {scale!r}")
    trainer = Trainer(model, cfg, seed, fresh=bool(numbers.get("fresh", False)))
    trainer.step, trainer.samples_seen = counts
    trainer.start_step = _count(numbers, "start_step", source)
    trainer.threshold_updates = _count(numbers, "threshold_updates", source)
    trainer.any_dead = bool(numbers.get("any_dead", False))
    trainer.scale = scale
    device = model.W_dec.device
    fired = _tensor(tensors, _FIRED, (model.cfg.n_units,), source)
    trainer.samples_since_fired = fired.to(device=device, dtype=torch.long)
    try:
        trainer.generator.set_state(_tensor(tensors, _GENERATOR, None, source).to(torch.uint8))
    except RuntimeError as err:
        raise ValueError(f"{source}: {_GENERATOR} is not a generator state ({err})") from None
    _load_adam(trainer, tensors, source)
    return trainer


def _load_adam(trainer: Trainer, tensors: dict[str, Tensor], source: str) -> None:
    names = _names(trainer.model)
    state_dict = trainer.optimizer.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    index = 0
    for group in trainer.optimizer.param_groups:
        for param in group["params"]:
            prefix = f"{_ADAM}{names[id(param)]}."
            saved = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
            for key, value in saved.items():
                wanted = () if key == "step" else tuple(param.shape)
                if tuple(value.shape) != wanted:
                    raise ValueError(
                        f"{source}: {prefix}{key} has shape {tuple(value.shape)}; expected "
                        f"{wanted} for this checkpoint's weights"
                    )
            if saved:
                state[index] = saved
            index += 1
    state_dict["state"] = state
    trainer.optimizer.load_state_dict(state_dict)  # moved to each parameter's device


def _count(numbers: dict[str, Any], key: str, source: str) -> int:
    value = numbers.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{source}: metadata.resume.{key} must be an integer >= 0; got {value!r}")
    return value


def _tensor(tensors: dict[str, Tensor], key: str, shape: Any, source: str) -> Tensor:
    value = tensors.get(key)
    if value is None or (shape is not None and tuple(value.shape) != shape):
        got = "nothing" if value is None else f"shape {tuple(value.shape)}"
        raise ValueError(f"{source}: {key} must have shape {shape}; got {got}")
    return value
