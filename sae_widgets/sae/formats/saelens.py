"""SAELens folders: cfg.json + sae_weights.safetensors. Also the layout we write.

SAELens inference (sae_lens/saes/*.py, v6)::

    sae_in   = x - b_dec * apply_b_dec_to_input
    pre_U    = sae_in @ W_enc + b_enc                      W_enc (d_in, d_sae), W_dec (d_sae, d_in)
    standard: relu(pre)
    topk:     relu of the k largest pre (pre * |W_dec[u]| first if rescale_acts_by_decoder_norm)
    jumprelu: relu(pre) * (pre > relu(threshold))
    gated:    1[sae_in @ W_enc + b_gate > 0] * relu(sae_in @ (W_enc * exp(r_mag)) + b_mag)
              (no b_enc; read as the JumpReLU it equals, formats/gated.py)
    x_hat    = codes @ W_dec + b_dec

Before v6 the cfg was flat: activation_fn_str (or activation_fn) "relu"/"topk" with
activation_fn_kwargs {"k": ...}, "architecture" absent or "standard"/"jumprelu", and
normalize_activations possibly a bool. BatchTopK and Matryoshka BatchTopK SAEs are saved by
SAELens as "jumprelu" with the batch threshold copied to every unit; we do the same and note
the activation in metadata (Matryoshka's prefix sizes also as SAELens' `matryoshka_widths`).
Which SAELens name maps to which activation is in the registry (`saelens_architecture`,
`saelens_reads`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sae_widgets.sae import registry
from sae_widgets.sae.formats.gated import gated_as_jumprelu
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
# Ours, optional: what resumes training where it stopped (sae_widgets.sae.trainer_state).
TRAINING_FILE = "training_state.safetensors"
# Marks the cfg as the v6 layout so SAELens keeps our metadata block instead of converting.
SAELENS_LAYOUT_VERSION = "6.0.0"

# Normalisations that SAELens' inference model does not apply to inputs loaded from disk.
_INPUT_AS_IS = (None, "none", "expected_average_only_in")


def read_saelens(folder: Path) -> CheckpointWeights:
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    cfg = read_json(cfg_path)
    tensors = read_safetensors(weights_path)
    raw_metadata = cfg.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    ours = "sae_widgets_version" in metadata
    spec, k = _architecture(cfg, cfg_path)
    if ours and metadata.get("activation") in registry.REGISTRY:
        saved = registry.get(metadata["activation"])
        if saved.saelens_architecture == spec.saelens_architecture:
            spec = saved

    d_in, d_sae = config_int(cfg, "d_in", cfg_path), config_int(cfg, "d_sae", cfg_path)
    gated = cfg.get("architecture") == "gated"
    bias_names = ("r_mag", "b_gate", "b_mag") if gated else ("b_enc",)
    W_enc, W_dec, b_dec, *biases = require(
        tensors, weights_path, "W_enc", "W_dec", "b_dec", *bias_names
    )
    W_enc = orient("W_enc", W_enc, d_in, d_sae, documented_transposed=False).float()
    W_dec = orient("W_dec", W_dec, d_sae, d_in, documented_transposed=False).float()
    b_dec = b_dec.float()
    threshold = None
    if gated:  # a gated SAE is a JumpReLU at inference (formats/gated.py)
        r_mag, b_gate, b_mag = biases
        W_enc, b_enc, threshold = gated_as_jumprelu(W_enc, r_mag, b_gate, b_mag, weights_path)
    else:
        b_enc = biases[0].float()

    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # SAELens < 6: True meant "expected_average_only_in"
        normalize = "expected_average_only_in" if normalize else "none"
    if normalize not in _INPUT_AS_IS:
        raise ValueError(
            f"{cfg_path}: normalize_activations={normalize!r} rescales each input at run time, "
            "which a linear SAE cannot represent; supported: 'none', 'expected_average_only_in'"
        )
    if "scaling_factor" in tensors:  # SAELens < 6 finetuning scale, applied to codes in decode
        scaling = tensors["scaling_factor"].float()
        if tuple(scaling.shape) != (d_sae,) or not bool(scaling.isfinite().all()):
            raise ValueError(
                f"{weights_path}: scaling_factor must hold {d_sae} finite numbers (shape "
                f"({d_sae},)); got shape {tuple(scaling.shape)}"
                + ("" if tuple(scaling.shape) != (d_sae,) else " with NaN or infinite values")
            )
        W_dec = W_dec * scaling[:, None]
    if not cfg.get("apply_b_dec_to_input", True):
        b_enc = fold_input_bias(W_enc, b_enc, b_dec)
    if spec.sparse_training and cfg.get("rescale_acts_by_decoder_norm", False):
        W_enc, b_enc, W_dec = fold_decoder_norm(W_enc, b_enc, W_dec)

    if spec.threshold != "none" and threshold is None:
        threshold = _threshold(tensors, d_sae, weights_path)
        if not ours:  # SAELens gates on relu(threshold); a clamped threshold gives the same codes
            threshold = threshold.clamp(min=0)
    if spec.k == "architecture" and spec.saelens_architecture != "topk":
        k = _round_k(metadata.get("k", cfg.get("k")), cfg_path)
    elif spec.k == "init" and ours:  # a training hint we keep (jumprelu's starting L0)
        hint = metadata.get("k")
        k = hint if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 1 else None
    prefix_sizes = None
    if spec.prefixes:
        prefix_sizes = cfg.get("matryoshka_widths", metadata.get("prefix_sizes"))
    layout = "sae_widgets" if ours else ("saelens" if "metadata" in cfg else "saelens-legacy")
    training_path = folder / TRAINING_FILE
    training_state = read_safetensors(training_path) if ours and training_path.is_file() else {}
    return CheckpointWeights(
        W_enc=W_enc,
        b_enc=b_enc,
        W_dec=W_dec,
        b_dec=b_dec,
        activation=spec.name,
        k=k,
        threshold=threshold,
        metadata=dict(metadata) if ours else {"saelens_cfg": cfg},
        layout=layout,
        prefix_sizes=prefix_sizes,
        training_state=training_state,
    )


def saelens_files(record: CheckpointWeights) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The cfg.json content and the tensors of `record` in SAELens' v6 layout."""
    spec = registry.get(record.activation)
    cfg: dict[str, Any] = {
        "architecture": spec.saelens_architecture,
        "d_in": record.d_in,
        "d_sae": record.n_units,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    if spec.saelens_architecture == "topk":
        cfg["k"] = record.k
        cfg["rescale_acts_by_decoder_norm"] = False
    if record.prefix_sizes is not None:
        cfg["matryoshka_widths"] = list(record.prefix_sizes)
    cfg["metadata"] = {
        "sae_lens_version": SAELENS_LAYOUT_VERSION,
        **record.metadata,
        "activation": record.activation,
        "k": record.k,
    }
    if record.prefix_sizes is not None:
        cfg["metadata"]["prefix_sizes"] = list(record.prefix_sizes)
    return cfg, record.tensors()


def _architecture(
    cfg: dict[str, Any], cfg_path: Path
) -> tuple[registry.ActivationSpec, int | None]:
    """The activation a SAELens cfg describes, and k when the cfg's topk spelling holds it."""
    architecture = cfg.get("architecture", "standard")
    activation_fn = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    fn_kwargs = cfg.get("activation_fn_kwargs") or {}
    if architecture == "standard" and activation_fn == "topk":  # SAELens < 6 spelling
        architecture = "topk"
    spec = registry.from_saelens(architecture)
    if spec is None:
        raise ValueError(
            f"{cfg_path}: SAELens architecture {architecture!r} is not supported; "
            f"supported: {', '.join(registry.saelens_architectures())}"
        )
    if architecture in ("standard", "jumprelu", "gated") and activation_fn not in (None, "relu"):
        raise ValueError(f"{cfg_path}: activation_fn {activation_fn!r} is not supported")
    if spec.saelens_architecture != "topk":
        return spec, None
    k = cfg.get("k", fn_kwargs.get("k") if isinstance(fn_kwargs, dict) else None)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{cfg_path}: a topk SAE needs an integer k in its config; got {k!r}")
    return spec, k


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
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k >= 1 or k == float("inf"):
        raise ValueError(f"{cfg_path}: a batch top-k SAE needs k >= 1 in its config; got {k!r}")
    return round(k)
