"""Foreign layouts at their edges: other dtypes, legacy fields, options we refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_interop_layouts import (
    D_IN,
    N_UNITS,
    canonical_decode,
    canonical_encode,
    dl_autoencoder,
    dl_batchtopk,
    dl_topk,
    random_inputs,
    random_weights,
    saelens_standard,
    sparsify_topk,
    write_json,
)

from sae_widgets.sae.checkpoint import read_weights


def test_bfloat16_weights_are_read_as_float32(tmp_path: Path) -> None:
    w = {
        k: v.to(torch.bfloat16)
        for k, v in random_weights(D_IN, N_UNITS).items()
        if k != "threshold"
    }
    write_json(
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
    dl_autoencoder(tmp_path / "jump", D_IN, N_UNITS)
    cfg = {"trainer": {"dict_class": "JumpAutoEncoder"}}  # relu(pre) + jump: not an SAE of ours
    (tmp_path / "jump" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'JumpAutoEncoder' is not supported"):
        read_weights(tmp_path / "jump")
    cfg = {"trainer": {"dict_class": "GatedAutoEncoder"}}  # supported, but not these tensors
    (tmp_path / "jump" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"missing tensor.*decoder_bias, mag_bias"):
        read_weights(tmp_path / "jump")


def test_a_run_folder_points_at_its_checkpoint_subfolders(tmp_path: Path) -> None:
    sparsify_topk(tmp_path / "layers.0", D_IN, N_UNITS)
    sparsify_topk(tmp_path / "layers.1", D_IN, N_UNITS)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"these subfolders are checkpoints: layers\.0, layers\.1"):
        read_weights(tmp_path)


def test_saelens_legacy_scaling_factor_and_log_threshold(tmp_path: Path) -> None:
    w = random_weights(D_IN, N_UNITS)
    scaling = torch.rand(N_UNITS) + 0.5
    cfg = {
        "architecture": "jumprelu",
        "d_in": D_IN,
        "d_sae": N_UNITS,
        "finetuning_scaling_factor": True,
        "sae_lens_training_version": "4.0.0",
    }
    write_json(tmp_path, "cfg.json", cfg)
    tensors = {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    tensors |= {"log_threshold": w["threshold"], "scaling_factor": scaling}
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))

    record = read_weights(tmp_path)

    x = random_inputs(D_IN)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    expected = pre.relu() * (pre > w["threshold"].exp())  # threshold = exp(log_threshold)
    torch.testing.assert_close(canonical_encode(record, x), expected, rtol=1e-5, atol=1e-5)
    # SAELens < 6 decoded (codes * scaling_factor) @ W_dec + b_dec
    torch.testing.assert_close(
        canonical_decode(record, expected), (expected * scaling) @ w["W_dec"] + w["b_dec"]
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", torch.tensor([]), r"'threshold' must hold one number; got \(0,\)"),
        ("threshold", torch.tensor(float("nan")), "'threshold' must be a finite number"),
        ("k", torch.tensor([], dtype=torch.long), r"'k' must hold one number; got \(0,\)"),
        ("k", torch.tensor(float("nan")), "'k' must be a finite number"),
        ("k", torch.tensor(2.5), "'k' must be a positive integer; got 2.5"),
    ],
)
def test_dictionary_learning_scalar_buffers_are_checked(
    tmp_path: Path, field: str, value: torch.Tensor, message: str
) -> None:
    """A malformed k or threshold buffer names the file and the buffer (it raised torch's
    IndexError, or a bare 'cannot convert float NaN to integer')."""
    dl_batchtopk(tmp_path, D_IN, N_UNITS)
    state = torch.load(tmp_path / "ae.pt")
    state[field] = value
    torch.save(state, tmp_path / "ae.pt")
    config = json.loads((tmp_path / "config.json").read_text())
    del config["trainer"]["k"]  # k from the buffer
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message) as err:
        read_weights(tmp_path)
    assert "ae.pt" in str(err.value)


@pytest.mark.parametrize(
    ("scaling", "message"),
    [(torch.ones(3), r"got shape \(3,\)"), (torch.full((N_UNITS,), torch.inf), "NaN or infinite")],
)
def test_saelens_scaling_factor_of_the_wrong_shape_or_not_finite_is_refused(
    tmp_path: Path, scaling: torch.Tensor, message: str
) -> None:
    saelens_standard(tmp_path, D_IN, N_UNITS)
    weights = tmp_path / "sae_weights.safetensors"
    tensors = load_file(str(weights)) | {"scaling_factor": scaling}
    save_file(tensors, str(weights))
    with pytest.raises(ValueError, match=message) as err:
        read_weights(tmp_path)
    assert "scaling_factor" in str(err.value) and "sae_weights.safetensors" in str(err.value)
