"""Gated SAEs (SAELens "gated", dictionary_learning's GatedAutoEncoder) read as the JumpReLU
they equal at inference (sae_widgets/sae/formats/gated.py). test_interop.py checks their codes
and reconstructions against the gated formula through the shared CASES; these check the rest:
the conversion's thresholds, bad gate tensors, and a save of what was read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_interop_layouts import D_IN, N_UNITS, dl_gated, random_inputs, saelens_gated

import sae_widgets as sw
from sae_widgets.sae.checkpoint import read_weights


def test_thresholds_are_the_gates_moved_onto_the_magnitude(tmp_path: Path) -> None:
    saelens_gated(tmp_path, D_IN, N_UNITS)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    record = read_weights(tmp_path)
    scale = tensors["r_mag"].double().exp()
    raw = tensors["b_mag"].double() - scale * tensors["b_gate"].double()
    assert record.threshold is not None
    torch.testing.assert_close(record.threshold.double(), raw.clamp(min=0), rtol=1e-6, atol=1e-7)
    assert bool((raw < 0).any()) and bool((raw > 0).any())  # both branches of the clamp
    torch.testing.assert_close(record.W_enc, tensors["W_enc"] * scale.float()[None, :])
    torch.testing.assert_close(record.b_enc, tensors["b_mag"])


@pytest.mark.parametrize("writer", [saelens_gated, dl_gated], ids=["saelens", "dl"])
def test_a_saved_gated_sae_reloads_as_the_same_jumprelu(tmp_path: Path, writer) -> None:
    library_encode, _ = writer(tmp_path / "in", D_IN, N_UNITS)
    sae = sw.SAE.load(tmp_path / "in")
    sae.save(tmp_path / "out")
    again = sw.SAE.load(tmp_path / "out")
    x = random_inputs(D_IN).numpy()
    assert again.activation == "jumprelu"
    np.testing.assert_array_equal(again.transform(x), sae.transform(x))
    np.testing.assert_allclose(sae.transform(x), library_encode(torch.from_numpy(x)), atol=1e-5)
    cfg = json.loads((tmp_path / "out" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"  # what SAELens itself loads as the same codes


def _rewrite(folder: Path, **changes: torch.Tensor | None) -> None:
    path = folder / "sae_weights.safetensors"
    tensors = load_file(str(path))
    for name, value in changes.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"r_mag": None}, r"missing tensor.*r_mag"),
        ({"b_gate": torch.zeros(N_UNITS + 1)}, rf"b_gate must hold one number a unit \({N_UNITS}"),
        ({"r_mag": torch.full((N_UNITS,), 200.0)}, r"r_mag\[0\] = 200.0"),
        ({"r_mag": torch.full((N_UNITS,), -200.0)}, r"r_mag\[0\] = -200.0"),
    ],
    ids=["missing", "wrong-length", "overflow", "underflow"],
)
def test_bad_gate_tensors_name_the_file_and_tensor(tmp_path: Path, changes, message) -> None:
    saelens_gated(tmp_path, D_IN, N_UNITS)
    _rewrite(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as info:
        sw.SAE.load(tmp_path)
    assert "sae_weights.safetensors" in str(info.value)


def test_a_dictionary_learning_gated_sae_with_nan_scales_is_refused(tmp_path: Path) -> None:
    dl_gated(tmp_path, D_IN, N_UNITS)
    state = torch.load(tmp_path / "ae.pt")
    state["r_mag"][3] = float("nan")
    torch.save(state, tmp_path / "ae.pt")
    with pytest.raises(ValueError, match=r"ae.pt.*r_mag\[3\] = nan"):
        sw.SAE.load(tmp_path)
