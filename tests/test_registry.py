"""The activation registry: every row round-trips save/load with every parameter equal, and
through the SAELens layout (codes recomputed from cfg.json + tensors by SAELens' formulas)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sae_widgets as sw
from sae_widgets.sae import registry
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.formats import read_saelens
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

N_UNITS = 24


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return sw.datasets.superposition(n=512, n_features=20, dim=8, active=2, seed=3).X


def _params(spec: registry.ActivationSpec) -> dict[str, object]:
    # non-default values everywhere, so a parameter lost on the way shows
    params: dict[str, object] = dict(
        n_units=N_UNITS,
        activation=spec.name,
        k=5,
        epochs=1,
        batch_size=128,
        seed=7,
        l1_coeff=0.5,
        l0_coeff=0.01,
        lr=2e-3,
        warmup_steps=3,
        decay_fraction=0.25,
        grad_clip=0.5,
        aux_coeff=0.05,
        k_aux=4,
        dead_window=1000,
        min_steps_per_epoch=4,
        shuffle=False,
        log_every=2,
    )
    if spec.prefixes:
        params["prefix_sizes"] = (6, 12)  # n_units is appended: the last prefix is everything
    return params


@pytest.mark.parametrize("name", registry.ACTIVATIONS)
def test_every_activation_round_trips_with_every_parameter_equal(
    name: str, X: np.ndarray, tmp_path: Path
) -> None:
    spec = registry.get(name)
    sae = SAE(**_params(spec)).fit(X, progress=False)
    sae.save(tmp_path / name)
    back = SAE.load(tmp_path / name)
    assert back.get_params() == sae.get_params()  # jumprelu's k=5 used to come back as 16
    assert back.model_.cfg == sae.model_.cfg
    for key, value in sae.model_.weights().items():
        assert torch.equal(back.model_.weights()[key], value), key
    np.testing.assert_array_equal(back.transform(X), sae.transform(X))
    assert (back.model_.threshold is None) == (spec.threshold == "none")


@pytest.mark.parametrize("name", registry.ACTIVATIONS)
def test_saelens_layout_gives_the_same_codes(name: str, X: np.ndarray, tmp_path: Path) -> None:
    spec = registry.get(name)
    sae = SAE(**_params(spec)).fit(X, progress=False)
    sae.save(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == spec.saelens_architecture
    w = load_file(str(tmp_path / "sae_weights.safetensors"))
    x = torch.from_numpy(X)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]  # SAELens, apply_b_dec_to_input=True
    if cfg["architecture"] == "standard":
        codes = pre.relu()
    elif cfg["architecture"] == "topk":
        values, units = pre.topk(cfg["k"], dim=1)
        codes = torch.zeros_like(pre).scatter_(1, units, values.relu())
    else:
        assert cfg["architecture"] == "jumprelu"
        codes = pre.relu() * (pre > w["threshold"].relu())
    np.testing.assert_allclose(sae.transform(X), codes.numpy(), rtol=1e-5, atol=1e-6)
    if spec.prefixes:
        assert cfg["matryoshka_widths"] == [6, 12, N_UNITS]
    # read back as a foreign SAELens file (metadata dropped): same activation family
    cfg["metadata"] = {"sae_lens_version": "6.0.0"}
    if spec.saelens_reads[0] != cfg["architecture"]:
        cfg["architecture"] = spec.saelens_reads[0]  # SAELens' training-config spelling
        cfg["k"] = 5
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    record = read_saelens(tmp_path)
    assert record.activation == name and record.layout == "saelens"
    if spec.prefixes:
        assert record.prefix_sizes == (6, 12, N_UNITS)


def test_jumprelu_k_survives_save_and_load(X: np.ndarray, tmp_path: Path) -> None:
    sae = SAE(n_units=N_UNITS, activation="jumprelu", k=9, epochs=1).fit(X, progress=False)
    sae.save(tmp_path)
    back = SAE.load(tmp_path)
    assert back.k == 9 and back.model_.cfg.k == 9


def test_registry_rows_are_consistent() -> None:
    for spec in registry.REGISTRY.values():
        assert (spec.penalty == "none") == (spec.coeff is None), spec.name
        assert spec.saelens_reads and registry.from_saelens(spec.saelens_reads[0]) is spec
        assert spec.default_lr(256) > 0
        cfg = SAEConfig(d_in=4, n_units=32, activation=spec.name, k=3)
        model = SparseAutoencoder(cfg)
        assert model.encode(torch.randn(5, 4)).shape == (5, 32)
        assert (cfg.prefix_sizes is not None) == spec.prefixes
    with pytest.raises(ValueError, match="activation must be one of relu, topk"):
        registry.get("sigmoid")


def test_threshold_accessor_hides_the_storage() -> None:
    for spec in registry.REGISTRY.values():
        model = SparseAutoencoder(SAEConfig(d_in=4, n_units=6, activation=spec.name, k=2))
        if spec.threshold == "none":
            assert model.threshold is None
            with pytest.raises(ValueError, match="keeps no threshold"):
                model.set_threshold_(0.5)
            continue
        target = torch.tensor([0.1, 0.2, 0.3, 1.7, 1e-3, 3.0])
        model.set_threshold_(target)
        assert model.threshold is not None
        torch.testing.assert_close(model.threshold.detach(), target, rtol=1e-6, atol=0)
        model.scale_threshold_(2.0)
        torch.testing.assert_close(model.threshold.detach(), target * 2)
