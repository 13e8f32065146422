"""EleutherAI sparsify folders: cfg.json + sae.safetensors (SparseCoder.save_to_disk).

sparsify inference (sparsify/sparse_coder.py, fused_encoder.py)::

    pre_U  = relu((x - b_dec) @ encoder.weight.T + encoder.bias)   encoder.weight (d_sae, d_in)
    codes  = the k largest pre_U per sample                          W_dec (d_sae, d_in)
    x_hat  = codes @ W_dec + b_dec

which is our topk convention as it is. cfg.json holds d_in, k and num_latents (0 meaning
d_in * expansion_factor).
"""

from __future__ import annotations

from pathlib import Path

from sae_widgets.sae.formats.record import (
    CheckpointWeights,
    config_int,
    orient,
    read_json,
    read_safetensors,
    require,
)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
_DEFAULT_EXPANSION_FACTOR = 32  # sparsify's SparseCoderConfig default


def read_sparsify(folder: Path) -> CheckpointWeights:
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    cfg = read_json(cfg_path)
    tensors = read_safetensors(weights_path)
    if cfg.get("transcode"):
        raise ValueError(f"{cfg_path}: a sparsify transcoder maps one layer to another; not an SAE")
    if cfg.get("skip_connection") or "W_skip" in tensors:
        raise ValueError(f"{cfg_path}: sparsify skip connections (W_skip) are not supported")
    if cfg.get("activation", "topk") != "topk":
        raise ValueError(
            f"{cfg_path}: sparsify activation {cfg.get('activation')!r} is not supported; only topk"
        )
    if cfg.get("signed"):
        raise ValueError(f"{cfg_path}: signed sparsify coders are not supported")

    d_in = config_int(cfg, "d_in", cfg_path)
    n_units = config_int(cfg, "num_latents", cfg_path) if cfg.get("num_latents") else 0
    if n_units <= 0:
        cfg.setdefault("expansion_factor", _DEFAULT_EXPANSION_FACTOR)
        n_units = d_in * config_int(cfg, "expansion_factor", cfg_path)
    k = config_int(cfg, "k", cfg_path)
    encoder_weight, encoder_bias, W_dec, b_dec = require(
        tensors, weights_path, "encoder.weight", "encoder.bias", "W_dec", "b_dec"
    )
    return CheckpointWeights(
        W_enc=orient("encoder.weight", encoder_weight, d_in, n_units, documented_transposed=True),
        b_enc=encoder_bias,
        W_dec=orient("W_dec", W_dec, n_units, d_in, documented_transposed=False),
        b_dec=b_dec,
        activation="topk",
        k=k,
        metadata={"sparsify_cfg": cfg},
        layout="sparsify",
    )
