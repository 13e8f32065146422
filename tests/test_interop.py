"""Foreign checkpoint layouts: files written with each library's key names, shapes and
orientations (test_interop_layouts); the codes we get must equal each library's own formula."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_interop_layouts import (
    CASES,
    D_IN,
    N_UNITS,
    K,
    canonical_decode,
    canonical_encode,
    dl_autoencoder,
    random_inputs,
    random_weights,
    saelens_jumprelu,
    sparsify_topk,
)

import sae_widgets as sw
from sae_widgets.sae.checkpoint import read_weights


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
    x = random_inputs(d_in)
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
    raw = random_weights(D_IN, N_UNITS)["threshold"]
    assert torch.equal(record.threshold, raw.clamp(min=0))
    # Gemma Scope style folding: b_enc' = b_enc + b_dec @ W_enc, nothing else changes.
    w = random_weights(D_IN, N_UNITS)
    assert torch.equal(record.W_enc, w["W_enc"]) and torch.equal(record.W_dec, w["W_dec"])
    torch.testing.assert_close(record.b_enc, w["b_enc"] + w["b_dec"] @ w["W_enc"])


def test_topk_k_comes_from_each_config(tmp_path: Path) -> None:
    for name in ("saelens-topk", "saelens-legacy-topk", "sparsify", "dl-topk", "dl-batchtopk"):
        CASES[name][0](tmp_path / name, D_IN, N_UNITS)
        assert read_weights(tmp_path / name).k == K, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_estimator_transforms_like_the_library(tmp_path: Path, name: str) -> None:
    writer, activation, _ = CASES[name]
    library_encode, library_decode = writer(tmp_path / name, D_IN, N_UNITS)

    sae = sw.SAE.load(tmp_path / name)

    assert (sae.activation, sae.n_units, sae.n_features_in_) == (activation, N_UNITS, D_IN)
    x = random_inputs(D_IN)
    expected = library_encode(x)
    codes = sae.transform(x.numpy())
    np.testing.assert_allclose(codes, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(codes != 0, expected.numpy() != 0)
    np.testing.assert_allclose(
        sae.inverse_transform(codes), library_decode(expected).numpy(), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(sae.transform(x), expected, rtol=1e-5, atol=1e-5)  # torch in/out


def test_loaded_foreign_sae_keeps_training_and_saves_as_saelens(tmp_path: Path) -> None:
    sparsify_topk(tmp_path / "sparsify", D_IN, N_UNITS)
    sae = sw.SAE.load(tmp_path / "sparsify")
    x = random_inputs(D_IN, 512).numpy()
    before = sae.components_.copy()
    sae.partial_fit(x)
    assert not np.array_equal(sae.components_, before)
    sae.save(tmp_path / "ours")
    again = sw.SAE.load(tmp_path / "ours")
    assert read_weights(tmp_path / "ours").layout == "sae_widgets"
    assert np.array_equal(again.transform(x), sae.transform(x))


def test_a_loaded_foreign_sae_can_be_explored(tmp_path: Path) -> None:
    ds = sw.datasets.digits()[np.arange(300)]
    dl_autoencoder(tmp_path / "dl", 64, 24)
    sae = sw.SAE.load(tmp_path / "dl")
    codes = sae.transform(ds.X)
    unit = int((codes != 0).sum(0).argmax())

    summary = sw.Explorer(sae, ds).unit_summary(unit)

    assert summary.count == int((codes[:, unit] != 0).sum()) > 0
    assert summary.top_samples[0] == int(codes[:, unit].argmax())
    assert summary.max_activation == pytest.approx(float(codes[:, unit].max()))
