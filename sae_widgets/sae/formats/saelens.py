"""SAELens folders: cfg.json + sae_weights.safetensors. Also the layout we write.

SAELens inference (sae_lens/saes/*.py, v6)::

    sae_in   = x - b_dec * apply_b_dec_to_input
    pre_U    = sae_in @ W_enc + b_enc                      W_enc (d_in, d_sae), W_dec (d_sae, d_in)
    standard: relu(pre)
    topk:     relu of the k largest pre (pre * |W_dec[u]| first if rescale_acts_by_decoder_norm)
    jumprelu: relu(pre) * (pre > relu(threshold))
    x_hat    = codes @ W_dec + b_dec

Before v6 the cfg was flat: activation_fn_str (or activation_fn) "relu"/"topk" with
activation_fn_kwargs {"k": ...}, "architecture" absent or "standard"/"jumprelu", and
normalize_activations possibly a bool. BatchTopK SAEs are saved by SAELens as "jumprelu" with
the batch threshold copied to every unit; we do the same and note "batchtopk" in metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sae_widgets.sae.formats.record import (
    CheckpointWeights,
    config_int,
    fold_decoder_norm,
    fold_input_bias,
    orient,
    read_json,
    read_safetensors,
    require,
)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
# Marks the cfg as the v6 layout so SAELens keeps our metadata block instead of converting.
SAELENS_LAYOUT_VERSION = "6.0.0"

_ARCHITECTURE_OF = {
    "relu": "standard",
    "topk": "topk",
    "jumprelu": "jumprelu",
    "batchtopk": "jumprelu",
}
# Normalisations that SAELens' inference model does not apply to inputs loaded from disk.
_INPUT_AS_IS = (None, "none", "expected_average_only_in")


def read_saelens(folder: Path) -> CheckpointWeights:
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    cfg = read_json(cfg_path)
    tensors = read_safetensors(weights_path)
    raw_metadata = cfg.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    ours = "sae_widgets_version" in metadata
    architecture, k = _architecture(cfg, cfg_path)

    d_in, d_sae = config_int(cfg, "d_in", cfg_path), config_int(cfg, "d_sae", cfg_path)
    W_enc, b_enc, W_dec, b_dec = require(tensors, weights_path, "W_enc", "b_enc", "W_dec", "b_dec")
    W_enc = orient("W_enc", W_enc, d_in, d_sae, documented_transposed=False).float()
    W_dec = orient("W_dec", W_dec, d_sae, d_in, documented_transposed=False).float()
    b_enc, b_dec = b_enc.float(), b_dec.float()

    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # SAELens < 6: True meant "expected_average_only_in"
        normalize = "expected_average_only_in" if normalize else "none"
    if normalize not in _INPUT_AS_IS:
        raise ValueError(
            f"{cfg_path}: normalize_activations={normalize!r} rescales each input at run time, "
            "which a linear SAE cannot represent; supported: 'none', 'expected_average_only_in'"
        )
    if "scaling_factor" in tensors:  # SAELens < 6 finetuning scale, applied to codes in decode
        W_dec = W_dec * tensors["scaling_factor"].float()[:, None]
    if not cfg.get("apply_b_dec_to_input", True):
        b_enc = fold_input_bias(W_enc, b_enc, b_dec)
    if architecture == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
        W_enc, b_enc, W_dec = fold_decoder_norm(W_enc, b_enc, W_dec)

    activation = "relu" if architecture == "standard" else architecture
    threshold = None
    if architecture in ("jumprelu", "batchtopk"):
        threshold = _threshold(tensors, d_sae, weights_path)
        if not ours:  # SAELens gates on relu(threshold); a clamped threshold gives the same codes
            threshold = threshold.clamp(min=0)
        if metadata.get("activation") == "batchtopk":
            activation = "batchtopk"
        if activation == "batchtopk":
            k = _round_k(metadata.get("k", cfg.get("k")), cfg_path)
    layout = "sae_widgets" if ours else ("saelens" if "metadata" in cfg else "saelens-legacy")
    return CheckpointWeights(
        W_enc=W_enc,
        b_enc=b_enc,
        W_dec=W_dec,
        b_dec=b_dec,
        activation=activation,
        k=k,
        threshold=threshold,
        metadata=dict(metadata) if ours else {"saelens_cfg": cfg},
        layout=layout,
    )


def saelens_files(record: CheckpointWeights) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The cfg.json content and the tensors of `record` in SAELens' v6 layout."""
    cfg: dict[str, Any] = {
        "architecture": _ARCHITECTURE_OF[record.activation],
        "d_in": record.d_in,
        "d_sae": record.n_units,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    if record.activation == "topk":
        cfg["k"] = record.k
        cfg["rescale_acts_by_decoder_norm"] = False
    cfg["metadata"] = {
        "sae_lens_version": SAELENS_LAYOUT_VERSION,
        **record.metadata,
        "activation": record.activation,
        "k": record.k,
    }
    return cfg, record.tensors()


def _architecture(cfg: dict[str, Any], cfg_path: Path) -> tuple[str, int | None]:
    architecture = cfg.get("architecture", "standard")
    activation_fn = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    fn_kwargs = cfg.get("activation_fn_kwargs") or {}
    if architecture == "standard" and activation_fn == "topk":  # SAELens < 6 spelling
        architecture = "topk"
    if architecture not in ("standard", "topk", "jumprelu", "batchtopk"):
        raise ValueError(
            f"{cfg_path}: SAELens architecture {architecture!r} is not supported; "
            "supported: standard, topk, jumprelu (and batchtopk saved as jumprelu)"
        )
    if architecture in ("standard", "jumprelu") and activation_fn not in (None, "relu"):
        raise ValueError(f"{cfg_path}: activation_fn {activation_fn!r} is not supported")
    if architecture != "topk":
        return architecture, None
    k = cfg.get("k", fn_kwargs.get("k") if isinstance(fn_kwargs, dict) else None)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{cfg_path}: a topk SAE needs an integer k in its config; got {k!r}")
    return architecture, k


def _threshold(tensors: dict[str, torch.Tensor], d_sae: int, path: Path) -> torch.Tensor:
    if "threshold" in tensors:
        threshold = tensors["threshold"].float()
    elif "log_threshold" in tensors:  # older SAELens JumpReLU training checkpoints
        threshold = tensors["log_threshold"].float().exp()
    elif "topk_threshold" in tensors:  # a BatchTopK training checkpoint: one batch threshold
        threshold = tensors["topk_threshold"].float().reshape(())
    else:
        raise ValueError(f"{path}: a jumprelu SAE needs a 'threshold' tensor; none found")
    if threshold.ndim == 0:
        threshold = threshold.expand(d_sae)
    return threshold.clone()


def _round_k(k: Any, cfg_path: Path) -> int:
    # SAELens' BatchTopK k is a float (average actives per sample); ours is an int.
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k >= 1:
        raise ValueError(f"{cfg_path}: a batchtopk SAE needs k >= 1 in its config; got {k!r}")
    return round(k)
