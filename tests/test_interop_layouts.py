"""Small checkpoints in each foreign layout, written with the key names, shapes and
orientations each library writes, plus each library's encode/decode formula by hand.

Shared by the test_interop*.py files; it holds no tests itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from sae_widgets.sae.formats import CheckpointWeights

D_IN, N_UNITS, K = 6, 10, 3


def canonical_encode(record: CheckpointWeights, x_BD: Tensor) -> Tensor:
    """Our convention, the one every reader must convert to."""
    pre_BU = (x_BD - record.b_dec) @ record.W_enc + record.b_enc
    if record.activation == "relu":
        return pre_BU.relu()
    if record.activation == "topk":
        assert record.k is not None
        return topk_codes(pre_BU, record.k)
    assert record.threshold is not None
    return pre_BU * (pre_BU > record.threshold)


def canonical_decode(record: CheckpointWeights, codes_BU: Tensor) -> Tensor:
    return codes_BU @ record.W_dec + record.b_dec


def topk_codes(pre_BU: Tensor, k: int) -> Tensor:
    values, indices = pre_BU.topk(k, dim=-1)
    return torch.zeros_like(pre_BU).scatter(-1, indices, values.relu())


def random_weights(d_in: int, n_units: int, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, n_units, generator=gen),
        "b_enc": torch.randn(n_units, generator=gen) * 0.3,
        "W_dec": torch.randn(n_units, d_in, generator=gen),
        "b_dec": torch.randn(d_in, generator=gen) * 0.5,
        # mixed signs: libraries gate on relu(threshold) or relu(pre * gate)
        "threshold": torch.randn(n_units, generator=gen) * 0.5,
    }


def write_json(folder: Path, name: str, cfg: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(cfg))


# ---- each case writes a folder and returns the library's encode and decode, by hand ----


def saelens_standard(folder: Path, d_in: int, n: int, apply_b_dec: bool = True) -> tuple:
    w = random_weights(d_in, n)
    cfg = {
        "architecture": "standard",
        "d_in": d_in,
        "d_sae": n,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    write_json(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )

    def encode(x: Tensor) -> Tensor:
        sae_in = x - w["b_dec"] * apply_b_dec
        return (sae_in @ w["W_enc"] + w["b_enc"]).relu()

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def saelens_topk(folder: Path, d_in: int, n: int, rescale: bool = False) -> tuple:
    w = random_weights(d_in, n)
    cfg = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": n,
        "k": K,
        "rescale_acts_by_decoder_norm": rescale,
        "apply_b_dec_to_input": True,
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    write_json(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )
    norm = w["W_dec"].norm(dim=-1)

    def encode(x: Tensor) -> Tensor:
        pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
        return topk_codes(pre * norm if rescale else pre, K)

    def decode(f: Tensor) -> Tensor:
        return (f / norm if rescale else f) @ w["W_dec"] + w["b_dec"]

    return encode, decode


def saelens_jumprelu(folder: Path, d_in: int, n: int) -> tuple:
    w = random_weights(d_in, n)
    # Gemma Scope style: the encoder does not subtract b_dec.
    cfg = {
        "architecture": "jumprelu",
        "d_in": d_in,
        "d_sae": n,
        "apply_b_dec_to_input": False,
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    write_json(folder, "cfg.json", cfg)
    save_file(w, str(folder / "sae_weights.safetensors"))

    def encode(x: Tensor) -> Tensor:
        pre = x @ w["W_enc"] + w["b_enc"]
        return pre.relu() * (pre > w["threshold"].relu())

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def saelens_legacy_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = random_weights(d_in, n)
    cfg = {
        "d_in": d_in,
        "d_sae": n,
        "dtype": "float32",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": K},
        "apply_b_dec_to_input": True,
        "normalize_activations": False,
        "sae_lens_training_version": "3.12.0",
        "hook_point": "blocks.0.hook_resid_pre",
    }
    write_json(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )
    return (
        lambda x: topk_codes((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"], K),
        lambda f: f @ w["W_dec"] + w["b_dec"],
    )


def sparsify_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = random_weights(d_in, n)
    encoder_weight = w["W_enc"].T.contiguous()  # nn.Linear: (num_latents, d_in)
    cfg = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": n,
        "k": K,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": d_in,
    }
    write_json(folder, "cfg.json", cfg)
    save_file(
        {
            "encoder.weight": encoder_weight,
            "encoder.bias": w["b_enc"],
            "W_dec": w["W_dec"],
            "b_dec": w["b_dec"],
        },
        str(folder / "sae.safetensors"),
    )

    def encode(x: Tensor) -> Tensor:
        pre = torch.nn.functional.linear(x - w["b_dec"], encoder_weight, w["b_enc"]).relu()
        values, indices = pre.topk(K, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def dl_linear_state(w: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"],
        "decoder.weight": w["W_dec"].T.contiguous(),
    }


def dl_save(folder: Path, state: dict, trainer: dict | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ae.pt")
    if trainer is not None:
        write_json(folder, "config.json", {"trainer": trainer, "buffer": {"ctx_len": 128}})


def dl_autoencoder(folder: Path, d_in: int, n: int, config: bool = True) -> tuple:
    w = random_weights(d_in, n)
    state = {**dl_linear_state(w), "bias": w["b_dec"]}
    trainer = {"dict_class": "AutoEncoder", "activation_dim": d_in, "dict_size": n}
    dl_save(folder, state, trainer if config else None)
    linear = torch.nn.functional.linear
    return (
        lambda x: linear(x - w["b_dec"], state["encoder.weight"], w["b_enc"]).relu(),
        lambda f: linear(f, state["decoder.weight"]) + w["b_dec"],
    )


def dl_autoencoder_new(folder: Path, d_in: int, n: int) -> tuple:
    w = random_weights(d_in, n)
    state = {**dl_linear_state(w), "decoder.bias": w["b_dec"]}
    dl_save(folder, state, {"dict_class": "AutoEncoderNew", "activation_dim": d_in, "dict_size": n})
    linear = torch.nn.functional.linear
    return (
        lambda x: linear(x, state["encoder.weight"], w["b_enc"]).relu(),
        lambda f: linear(f, state["decoder.weight"], w["b_dec"]),
    )


def dl_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = random_weights(d_in, n)
    state = {
        **dl_linear_state(w),
        "b_dec": w["b_dec"],
        "k": torch.tensor(K, dtype=torch.int),
        "threshold": torch.tensor(0.7),
    }  # threshold: ignored, encode(use_threshold=False)
    dl_save(
        folder,
        state,
        {"dict_class": "AutoEncoderTopK", "activation_dim": d_in, "dict_size": n, "k": K},
    )
    linear = torch.nn.functional.linear

    def encode(x: Tensor) -> Tensor:
        post = linear(x - w["b_dec"], state["encoder.weight"], w["b_enc"]).relu()
        values, indices = post.topk(K, dim=-1)
        return torch.zeros_like(post).scatter(-1, indices, values)

    return encode, lambda f: linear(f, state["decoder.weight"]) + w["b_dec"]


def dl_batchtopk(folder: Path, d_in: int, n: int, threshold: float = 0.4) -> tuple:
    w = random_weights(d_in, n)
    state = {
        **dl_linear_state(w),
        "b_dec": w["b_dec"],
        "k": torch.tensor(K, dtype=torch.int),
        "threshold": torch.tensor(threshold),
    }
    dl_save(
        folder,
        state,
        {"dict_class": "BatchTopKSAE", "activation_dim": d_in, "dict_size": n, "k": K},
    )
    linear = torch.nn.functional.linear

    def encode(x: Tensor) -> Tensor:
        post = linear(x - w["b_dec"], state["encoder.weight"], w["b_enc"]).relu()
        return post * (post > state["threshold"])

    return encode, lambda f: linear(f, state["decoder.weight"]) + w["b_dec"]


def dl_jumprelu(folder: Path, d_in: int, n: int, config: bool = True) -> tuple:
    w = random_weights(d_in, n)
    trainer = {"dict_class": "JumpReluAutoEncoder", "activation_dim": d_in, "dict_size": n}
    dl_save(folder, dict(w), trainer if config else None)

    def encode(x: Tensor) -> Tensor:
        pre = x @ w["W_enc"] + w["b_enc"]  # apply_b_dec_to_input is False
        return (pre * (pre > w["threshold"])).relu()

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def gate_weights(n: int) -> dict[str, Tensor]:
    """A gated SAE's own vectors: mixed signs, so some units' equivalent JumpReLU thresholds
    are negative (clamped to 0) and some positive."""
    gen = torch.Generator().manual_seed(1)
    return {name: torch.randn(n, generator=gen) * 0.5 for name in ("r_mag", "b_gate", "b_mag")}


def gated_codes(z: Tensor, g: dict[str, Tensor]) -> Tensor:
    """The gated encoder (Rajamanoharan et al. 2024), given z = sae_in @ W_enc."""
    return (z + g["b_gate"] > 0) * (g["r_mag"].exp() * z + g["b_mag"]).relu()


def saelens_gated(folder: Path, d_in: int, n: int, apply_b_dec: bool = True) -> tuple:
    w, g = random_weights(d_in, n), gate_weights(n)
    cfg = {
        "architecture": "gated",
        "d_in": d_in,
        "d_sae": n,
        "apply_b_dec_to_input": apply_b_dec,
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    write_json(folder, "cfg.json", cfg)
    tensors = {"W_enc": w["W_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"], **g}
    save_file(tensors, str(folder / "sae_weights.safetensors"))

    def encode(x: Tensor) -> Tensor:
        return gated_codes((x - w["b_dec"] * apply_b_dec) @ w["W_enc"], g)

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def dl_gated(folder: Path, d_in: int, n: int, config: bool = True) -> tuple:
    w, g = random_weights(d_in, n), gate_weights(n)
    state = {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "decoder.weight": w["W_dec"].T.contiguous(),
        "decoder_bias": w["b_dec"],
        "r_mag": g["r_mag"],
        "gate_bias": g["b_gate"],
        "mag_bias": g["b_mag"],
    }
    trainer = {"dict_class": "GatedAutoEncoder", "activation_dim": d_in, "dict_size": n}
    dl_save(folder, state, trainer if config else None)
    linear = torch.nn.functional.linear
    return (
        lambda x: gated_codes(linear(x - w["b_dec"], state["encoder.weight"]), g),
        lambda f: linear(f, state["decoder.weight"]) + w["b_dec"],
    )


CASES: dict[str, tuple[Callable, str, str]] = {
    # name: (writer, expected activation, expected layout)
    "saelens-standard": (saelens_standard, "relu", "saelens"),
    "saelens-standard-no-bdec": (
        lambda f, d, n: saelens_standard(f, d, n, apply_b_dec=False),
        "relu",
        "saelens",
    ),
    "saelens-topk": (saelens_topk, "topk", "saelens"),
    "saelens-topk-rescaled": (
        lambda f, d, n: saelens_topk(f, d, n, rescale=True),
        "topk",
        "saelens",
    ),
    "saelens-jumprelu": (saelens_jumprelu, "jumprelu", "saelens"),
    "saelens-gated": (saelens_gated, "jumprelu", "saelens"),
    "saelens-gated-no-bdec": (
        lambda f, d, n: saelens_gated(f, d, n, apply_b_dec=False),
        "jumprelu",
        "saelens",
    ),
    "dl-gated": (dl_gated, "jumprelu", "dictionary_learning"),
    "dl-gated-no-config": (
        lambda f, d, n: dl_gated(f, d, n, config=False),
        "jumprelu",
        "dictionary_learning",
    ),
    "saelens-legacy-topk": (saelens_legacy_topk, "topk", "saelens-legacy"),
    "sparsify": (sparsify_topk, "topk", "sparsify"),
    "dl-autoencoder": (dl_autoencoder, "relu", "dictionary_learning"),
    "dl-autoencoder-no-config": (
        lambda f, d, n: dl_autoencoder(f, d, n, config=False),
        "relu",
        "dictionary_learning",
    ),
    "dl-autoencoder-new": (dl_autoencoder_new, "relu", "dictionary_learning"),
    "dl-topk": (dl_topk, "topk", "dictionary_learning"),
    "dl-batchtopk": (dl_batchtopk, "batchtopk", "dictionary_learning"),
    "dl-batchtopk-unset-threshold": (
        lambda f, d, n: dl_batchtopk(f, d, n, threshold=-1.0),
        "batchtopk",
        "dictionary_learning",
    ),
    "dl-jumprelu": (dl_jumprelu, "jumprelu", "dictionary_learning"),
    "dl-jumprelu-no-config": (
        lambda f, d, n: dl_jumprelu(f, d, n, config=False),
        "jumprelu",
        "dictionary_learning",
    ),
}


def random_inputs(d_in: int, n: int = 64) -> Tensor:
    return torch.randn(n, d_in, generator=torch.Generator().manual_seed(1)) * 2.0
