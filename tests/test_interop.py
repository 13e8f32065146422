"""Foreign checkpoint layouts: files written here with each library's key names, shapes and
orientations; the codes we get must equal each library's own formula, computed by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from sae_widgets.sae.checkpoint import read_weights
from sae_widgets.sae.formats import CheckpointWeights

D_IN, N_UNITS, K = 6, 10, 3

Case = Callable[[Path, int, int], tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]


def canonical_encode(record: CheckpointWeights, x_BD: Tensor) -> Tensor:
    """Our convention, the one every reader must convert to."""
    pre_BU = (x_BD - record.b_dec) @ record.W_enc + record.b_enc
    if record.activation == "relu":
        return pre_BU.relu()
    if record.activation == "topk":
        assert record.k is not None
        return _topk(pre_BU, record.k)
    assert record.threshold is not None
    return pre_BU * (pre_BU > record.threshold)


def canonical_decode(record: CheckpointWeights, codes_BU: Tensor) -> Tensor:
    return codes_BU @ record.W_dec + record.b_dec


def _topk(pre_BU: Tensor, k: int) -> Tensor:
    values, indices = pre_BU.topk(k, dim=-1)
    return torch.zeros_like(pre_BU).scatter(-1, indices, values.relu())


def _weights(d_in: int, n_units: int, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, n_units, generator=gen),
        "b_enc": torch.randn(n_units, generator=gen) * 0.3,
        "W_dec": torch.randn(n_units, d_in, generator=gen),
        "b_dec": torch.randn(d_in, generator=gen) * 0.5,
        # mixed signs: libraries gate on relu(threshold) or relu(pre * gate)
        "threshold": torch.randn(n_units, generator=gen) * 0.5,
    }


def _cfg(folder: Path, name: str, cfg: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(cfg))


# ---- each case writes a folder and returns the library's encode and decode, by hand ----


def saelens_standard(folder: Path, d_in: int, n: int, apply_b_dec: bool = True) -> tuple:
    w = _weights(d_in, n)
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
    _cfg(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )

    def encode(x: Tensor) -> Tensor:
        sae_in = x - w["b_dec"] * apply_b_dec
        return (sae_in @ w["W_enc"] + w["b_enc"]).relu()

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def saelens_topk(folder: Path, d_in: int, n: int, rescale: bool = False) -> tuple:
    w = _weights(d_in, n)
    cfg = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": n,
        "k": K,
        "rescale_acts_by_decoder_norm": rescale,
        "apply_b_dec_to_input": True,
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    _cfg(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )
    norm = w["W_dec"].norm(dim=-1)

    def encode(x: Tensor) -> Tensor:
        pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
        return _topk(pre * norm if rescale else pre, K)

    def decode(f: Tensor) -> Tensor:
        return (f / norm if rescale else f) @ w["W_dec"] + w["b_dec"]

    return encode, decode


def saelens_jumprelu(folder: Path, d_in: int, n: int) -> tuple:
    w = _weights(d_in, n)
    # Gemma Scope style: the encoder does not subtract b_dec.
    cfg = {
        "architecture": "jumprelu",
        "d_in": d_in,
        "d_sae": n,
        "apply_b_dec_to_input": False,
        "metadata": {"sae_lens_version": "6.5.0"},
    }
    _cfg(folder, "cfg.json", cfg)
    save_file(w, str(folder / "sae_weights.safetensors"))

    def encode(x: Tensor) -> Tensor:
        pre = x @ w["W_enc"] + w["b_enc"]
        return pre.relu() * (pre > w["threshold"].relu())

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


def saelens_legacy_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = _weights(d_in, n)
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
    _cfg(folder, "cfg.json", cfg)
    save_file(
        {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(folder / "sae_weights.safetensors"),
    )
    return (
        lambda x: _topk((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"], K),
        lambda f: f @ w["W_dec"] + w["b_dec"],
    )


def sparsify_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = _weights(d_in, n)
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
    _cfg(folder, "cfg.json", cfg)
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


def _dl_linear_state(w: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"],
        "decoder.weight": w["W_dec"].T.contiguous(),
    }


def _dl_save(folder: Path, state: dict, trainer: dict | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ae.pt")
    if trainer is not None:
        _cfg(folder, "config.json", {"trainer": trainer, "buffer": {"ctx_len": 128}})


def dl_autoencoder(folder: Path, d_in: int, n: int, config: bool = True) -> tuple:
    w = _weights(d_in, n)
    state = {**_dl_linear_state(w), "bias": w["b_dec"]}
    trainer = {"dict_class": "AutoEncoder", "activation_dim": d_in, "dict_size": n}
    _dl_save(folder, state, trainer if config else None)
    linear = torch.nn.functional.linear
    return (
        lambda x: linear(x - w["b_dec"], state["encoder.weight"], w["b_enc"]).relu(),
        lambda f: linear(f, state["decoder.weight"]) + w["b_dec"],
    )


def dl_autoencoder_new(folder: Path, d_in: int, n: int) -> tuple:
    w = _weights(d_in, n)
    state = {**_dl_linear_state(w), "decoder.bias": w["b_dec"]}
    _dl_save(
        folder, state, {"dict_class": "AutoEncoderNew", "activation_dim": d_in, "dict_size": n}
    )
    linear = torch.nn.functional.linear
    return (
        lambda x: linear(x, state["encoder.weight"], w["b_enc"]).relu(),
        lambda f: linear(f, state["decoder.weight"], w["b_dec"]),
    )


def dl_topk(folder: Path, d_in: int, n: int) -> tuple:
    w = _weights(d_in, n)
    state = {
        **_dl_linear_state(w),
        "b_dec": w["b_dec"],
        "k": torch.tensor(K, dtype=torch.int),
        "threshold": torch.tensor(0.7),
    }  # threshold: ignored, encode(use_threshold=False)
    _dl_save(
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
    w = _weights(d_in, n)
    state = {
        **_dl_linear_state(w),
        "b_dec": w["b_dec"],
        "k": torch.tensor(K, dtype=torch.int),
        "threshold": torch.tensor(threshold),
    }
    _dl_save(
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
    w = _weights(d_in, n)
    trainer = {"dict_class": "JumpReluAutoEncoder", "activation_dim": d_in, "dict_size": n}
    _dl_save(folder, dict(w), trainer if config else None)

    def encode(x: Tensor) -> Tensor:
        pre = x @ w["W_enc"] + w["b_enc"]  # apply_b_dec_to_input is False
        return (pre * (pre > w["threshold"])).relu()

    return encode, lambda f: f @ w["W_dec"] + w["b_dec"]


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


def _inputs(d_in: int, n: int = 64) -> Tensor:
    return torch.randn(n, d_in, generator=torch.Generator().manual_seed(1)) * 2.0


@pytest.mark.parametrize("square", [False, True], ids=["rect", "square"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_gives_the_librarys_codes_and_reconstructions(
    tmp_path: Path, name: str, square: bool
) -> None:
    writer, activation, layout = CASES[name]
    d_in, n_units = (8, 8) if square else (D_IN, N_UNITS)
    library_encode, library_decode = writer(tmp_path / name, d_in, n_units)

    record = read_weights(tmp_path / name)

    assert (record.activation, record.layout) == (activation, layout)
    assert (record.d_in, record.n_units) == (d_in, n_units)
    x = _inputs(d_in)
    expected = library_encode(x)
    codes = canonical_encode(record, x)
    torch.testing.assert_close(codes, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(codes != 0, expected != 0)  # the same units fire, not just close values
    assert (expected != 0).any() and (expected == 0).any()  # the case tests something
    torch.testing.assert_close(
        canonical_decode(record, codes), library_decode(expected), rtol=1e-5, atol=1e-5
    )


def test_thresholds_are_clamped_to_zero_for_foreign_jumprelu(tmp_path: Path) -> None:
    saelens_jumprelu(tmp_path, D_IN, N_UNITS)
    record = read_weights(tmp_path)
    assert record.threshold is not None and bool((record.threshold >= 0).all())
    raw = _weights(D_IN, N_UNITS)["threshold"]
    assert torch.equal(record.threshold, raw.clamp(min=0))
    # Gemma Scope style folding: b_enc' = b_enc + b_dec @ W_enc, nothing else changes.
    w = _weights(D_IN, N_UNITS)
    assert torch.equal(record.W_enc, w["W_enc"]) and torch.equal(record.W_dec, w["W_dec"])
    torch.testing.assert_close(record.b_enc, w["b_enc"] + w["b_dec"] @ w["W_enc"])


def test_topk_k_comes_from_each_config(tmp_path: Path) -> None:
    for name in ("saelens-topk", "saelens-legacy-topk", "sparsify", "dl-topk", "dl-batchtopk"):
        CASES[name][0](tmp_path / name, D_IN, N_UNITS)
        assert read_weights(tmp_path / name).k == K, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_estimator_transforms_like_the_library(tmp_path: Path, name: str) -> None:
    import sae_widgets as sw

    writer, activation, _ = CASES[name]
    library_encode, library_decode = writer(tmp_path / name, D_IN, N_UNITS)

    sae = sw.SAE.load(tmp_path / name)

    assert (sae.activation, sae.n_units, sae.n_features_in_) == (activation, N_UNITS, D_IN)
    x = _inputs(D_IN)
    expected = library_encode(x)
    codes = sae.transform(x.numpy())
    np.testing.assert_allclose(codes, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(codes != 0, expected.numpy() != 0)
    np.testing.assert_allclose(
        sae.inverse_transform(codes), library_decode(expected).numpy(), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(sae.transform(x), expected, rtol=1e-5, atol=1e-5)  # torch in/out


def test_loaded_foreign_sae_keeps_training_and_saves_as_saelens(tmp_path: Path) -> None:
    import sae_widgets as sw

    sparsify_topk(tmp_path / "sparsify", D_IN, N_UNITS)
    sae = sw.SAE.load(tmp_path / "sparsify")
    x = _inputs(D_IN, 512).numpy()
    before = sae.components_.copy()
    sae.partial_fit(x)
    assert not np.array_equal(sae.components_, before)
    sae.save(tmp_path / "ours")
    again = sw.SAE.load(tmp_path / "ours")
    assert read_weights(tmp_path / "ours").layout == "sae_widgets"
    assert np.array_equal(again.transform(x), sae.transform(x))


def test_a_loaded_foreign_sae_can_be_explored(tmp_path: Path) -> None:
    import sae_widgets as sw

    ds = sw.datasets.digits()[np.arange(300)]
    dl_autoencoder(tmp_path / "dl", 64, 24)
    sae = sw.SAE.load(tmp_path / "dl")
    codes = sae.transform(ds.X)
    unit = int((codes != 0).sum(0).argmax())

    summary = sw.Explorer(sae, ds).unit_summary(unit)

    assert summary.count == int((codes[:, unit] != 0).sum()) > 0
    assert summary.top_samples[0] == int(codes[:, unit].argmax())
    assert summary.max_activation == pytest.approx(float(codes[:, unit].max()))


def test_bfloat16_weights_are_read_as_float32(tmp_path: Path) -> None:
    w = {k: v.to(torch.bfloat16) for k, v in _weights(D_IN, N_UNITS).items() if k != "threshold"}
    _cfg(
        tmp_path,
        "cfg.json",
        {
            "architecture": "standard",
            "d_in": D_IN,
            "d_sae": N_UNITS,
            "dtype": "bfloat16",
            "metadata": {},
        },
    )
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    record = read_weights(tmp_path)
    assert record.W_enc.dtype == torch.float32
    assert torch.equal(record.W_enc, w["W_enc"].float())  # widening is exact


@pytest.mark.parametrize(
    ("cfg_change", "message"),
    [
        ({"activation": "groupmax"}, "activation 'groupmax' is not supported"),
        ({"transcode": True}, "transcoder"),
        ({"skip_connection": True}, "skip connections"),
    ],
)
def test_unsupported_sparsify_options_are_refused(
    tmp_path: Path, cfg_change: dict, message: str
) -> None:
    sparsify_topk(tmp_path, D_IN, N_UNITS)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, **cfg_change}))
    with pytest.raises(ValueError, match=message):
        read_weights(tmp_path)


def test_saelens_run_time_normalisation_is_refused(tmp_path: Path) -> None:
    saelens_standard(tmp_path, D_IN, N_UNITS)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(ValueError, match="normalize_activations='layer_norm'"):
        read_weights(tmp_path)


def test_dictionary_learning_topk_without_config_is_ambiguous(tmp_path: Path) -> None:
    dl_topk(tmp_path, D_IN, N_UNITS)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError, match="AutoEncoderTopK and BatchTopKSAE"):
        read_weights(tmp_path)
    dl_autoencoder(tmp_path / "gated", D_IN, N_UNITS)
    cfg = {"trainer": {"dict_class": "GatedAutoEncoder"}}
    (tmp_path / "gated" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'GatedAutoEncoder' is not supported"):
        read_weights(tmp_path / "gated")


def test_a_run_folder_points_at_its_checkpoint_subfolders(tmp_path: Path) -> None:
    sparsify_topk(tmp_path / "layers.0", D_IN, N_UNITS)
    sparsify_topk(tmp_path / "layers.1", D_IN, N_UNITS)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"these subfolders are checkpoints: layers\.0, layers\.1"):
        read_weights(tmp_path)


def test_saelens_legacy_scaling_factor_and_log_threshold(tmp_path: Path) -> None:
    w = _weights(D_IN, N_UNITS)
    scaling = torch.rand(N_UNITS) + 0.5
    cfg = {
        "architecture": "jumprelu",
        "d_in": D_IN,
        "d_sae": N_UNITS,
        "finetuning_scaling_factor": True,
        "sae_lens_training_version": "4.0.0",
    }
    _cfg(tmp_path, "cfg.json", cfg)
    tensors = {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    tensors |= {"log_threshold": w["threshold"], "scaling_factor": scaling}
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))

    record = read_weights(tmp_path)

    x = _inputs(D_IN)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    expected = pre.relu() * (pre > w["threshold"].exp())  # threshold = exp(log_threshold)
    torch.testing.assert_close(canonical_encode(record, x), expected, rtol=1e-5, atol=1e-5)
    # SAELens < 6 decoded (codes * scaling_factor) @ W_dec + b_dec
    torch.testing.assert_close(
        canonical_decode(record, expected), (expected * scaling) @ w["W_dec"] + w["b_dec"]
    )
