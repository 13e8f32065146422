"""saprmarks/dictionary_learning folders: ae.pt (a state dict) + config.json ({"trainer": ...}).

Inference of each dictionary class (dictionary_learning/dictionary.py)::

    AutoEncoder          relu(encoder(x - bias)); decoder(f) + bias
    AutoEncoderNew       relu(encoder(x)); decoder(f)            (decoder has its own bias)
    AutoEncoderTopK      top k of relu(encoder(x - b_dec)); decoder(f) + b_dec
    BatchTopKSAE         relu(encoder(x - b_dec)) kept where > threshold (one scalar)
    JumpReluAutoEncoder  relu(pre * (pre > threshold)), pre = x @ W_enc + b_enc (no b_dec
                         subtracted: apply_b_dec_to_input is False); f @ W_dec + b_dec
    GatedAutoEncoder     z = encoder(x - decoder_bias) (no encoder bias);
                         1[z + gate_bias > 0] * relu(exp(r_mag) * z + mag_bias);
                         decoder(f) + decoder_bias: read as its JumpReLU (formats/gated.py)

nn.Linear stores encoder.weight as (dict_size, activation_dim) and decoder.weight as
(activation_dim, dict_size); JumpReluAutoEncoder stores W_enc (d_in, d_sae), W_dec (d_sae, d_in).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sae_widgets.sae.formats.gated import gated_as_jumprelu
from sae_widgets.sae.formats.record import (
    CheckpointWeights,
    fold_input_bias,
    orient,
    read_json,
    read_torch_state_dict,
    require,
)

WEIGHTS_FILE = "ae.pt"
CONFIG_FILE = "config.json"
SUPPORTED_CLASSES = (
    "AutoEncoder",
    "AutoEncoderNew",
    "AutoEncoderTopK",
    "BatchTopKSAE",
    "JumpReluAutoEncoder",
    "GatedAutoEncoder",
)
# Key of the (d_in,) decoder bias per class; the others call it b_dec.
_DECODER_BIAS = {
    "AutoEncoder": "bias",
    "AutoEncoderNew": "decoder.bias",
    "GatedAutoEncoder": "decoder_bias",
}
_GATED_BIASES = ("r_mag", "gate_bias", "mag_bias")


def read_dictionary_learning(folder: Path) -> CheckpointWeights:
    weights_path, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    state = read_torch_state_dict(weights_path)
    trainer: dict[str, Any] = {}
    if config_path.exists():
        trainer = read_json(config_path).get("trainer") or {}
        if not isinstance(trainer, dict):
            raise ValueError(f"{config_path}: 'trainer' must be a JSON object")
    dict_class = trainer.get("dict_class") or _class_from_keys(state, weights_path)
    if dict_class not in SUPPORTED_CLASSES:
        raise ValueError(
            f"{config_path}: dictionary class {dict_class!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_CLASSES)}"
        )
    d_in, n_units = _dims(state, trainer, dict_class, weights_path)
    metadata = {"dictionary_learning_config": trainer, "dict_class": dict_class}

    if dict_class == "JumpReluAutoEncoder":
        W_enc, b_enc, W_dec, b_dec, raw_threshold = require(
            state, weights_path, "W_enc", "b_enc", "W_dec", "b_dec", "threshold"
        )
        W_enc = orient("W_enc", W_enc, d_in, n_units, documented_transposed=False).float()
        return CheckpointWeights(
            W_enc=W_enc,
            b_enc=fold_input_bias(W_enc, b_enc.float(), b_dec.float()),
            W_dec=orient("W_dec", W_dec, n_units, d_in, documented_transposed=False),
            b_dec=b_dec,
            activation="jumprelu",
            threshold=raw_threshold.float().clamp(min=0),  # relu(pre * gate): pre gated at >= 0
            metadata=metadata,
            layout="dictionary_learning",
        )

    gated = dict_class == "GatedAutoEncoder"
    encoder_weight, decoder_weight, b_dec, *biases = require(
        state,
        weights_path,
        "encoder.weight",
        "decoder.weight",
        _DECODER_BIAS.get(dict_class, "b_dec"),
        *(_GATED_BIASES if gated else ("encoder.bias",)),
    )
    W_enc = orient("encoder.weight", encoder_weight, d_in, n_units, documented_transposed=True)
    threshold: Tensor | None = None
    if gated:  # a JumpReLU at inference (formats/gated.py)
        r_mag, gate_bias, mag_bias = biases
        W_enc, b_enc, threshold = gated_as_jumprelu(
            W_enc.float(), r_mag, gate_bias, mag_bias, weights_path
        )
    else:
        b_enc = biases[0].float()
    if dict_class == "AutoEncoderNew":  # its encoder sees x itself, not x - b_dec
        W_enc = W_enc.float()
        b_enc = fold_input_bias(W_enc, b_enc, b_dec.float())
    W_dec = orient("decoder.weight", decoder_weight, n_units, d_in, documented_transposed=True)
    activation, k = ("jumprelu" if gated else "relu"), None
    if dict_class in ("AutoEncoderTopK", "BatchTopKSAE"):
        activation, k = "topk", _k(state, trainer, weights_path)
    if dict_class == "BatchTopKSAE":
        # One threshold for all units; relu(pre) > t is the same gate as pre > max(t, 0).
        (scalar,) = require(state, weights_path, "threshold")
        activation = "batchtopk"
        threshold = torch.full((n_units,), max(_one_number(scalar, "threshold", weights_path), 0.0))
    return CheckpointWeights(
        W_enc=W_enc,
        b_enc=b_enc,
        W_dec=W_dec,
        b_dec=b_dec,
        activation=activation,
        k=k,
        threshold=threshold,
        metadata=metadata,
        layout="dictionary_learning",
    )


def _class_from_keys(state: dict[str, Tensor], path: Path) -> str:
    """The dictionary class when config.json is absent, if the keys tell it unambiguously."""
    if {"W_enc", "W_dec", "threshold"} <= state.keys():
        return "JumpReluAutoEncoder"
    if set(_GATED_BIASES) <= state.keys():
        return "GatedAutoEncoder"
    if "k" in state:
        raise ValueError(
            f"{path}: a k buffer fits both AutoEncoderTopK and BatchTopKSAE; "
            f"put the trainer's {CONFIG_FILE} (with 'dict_class') beside it"
        )
    if "bias" in state:
        return "AutoEncoder"
    if "decoder.bias" in state:
        return "AutoEncoderNew"
    raise ValueError(
        f"{path}: cannot tell the dictionary class from keys {', '.join(sorted(state))}; "
        f"put the trainer's {CONFIG_FILE} (with 'dict_class') beside it"
    )


def _dims(
    state: dict[str, Tensor], trainer: dict[str, Any], dict_class: str, path: Path
) -> tuple[int, int]:
    """(d_in, n_units) from the trainer config, else from the bias lengths."""
    d_in, n_units = trainer.get("activation_dim"), trainer.get("dict_size")
    if d_in is None or n_units is None:
        unit_bias = {"JumpReluAutoEncoder": "b_enc", "GatedAutoEncoder": "mag_bias"}.get(
            dict_class, "encoder.bias"
        )
        d_bias, u_bias = require(state, path, _DECODER_BIAS.get(dict_class, "b_dec"), unit_bias)
        d_in = int(d_bias.numel()) if d_in is None else d_in
        n_units = int(u_bias.numel()) if n_units is None else n_units
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (d_in, n_units)):
        raise ValueError(f"{path}: activation_dim and dict_size must be positive integers")
    return int(d_in), int(n_units)


def _k(state: dict[str, Tensor], trainer: dict[str, Any], path: Path) -> int:
    k = trainer.get("k")
    if k is None and "k" in state:
        value = _one_number(state["k"], "k", path)
        if value != int(value) or value < 1:
            raise ValueError(f"{path}: 'k' must be a positive integer; got {value}")
        k = int(value)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{path}: a top-k dictionary needs k (a 'k' buffer or trainer config)")
    return k


def _one_number(tensor: Tensor, name: str, path: Path) -> float:
    """The one finite number a scalar buffer holds, or an error naming the file and buffer."""
    if not isinstance(tensor, Tensor) or tensor.numel() != 1:
        shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{path}: {name!r} must hold one number; got {shape}")
    value = float(tensor.reshape(-1)[0])
    if not math.isfinite(value):
        raise ValueError(f"{path}: {name!r} must be a finite number; got {value}")
    return value
