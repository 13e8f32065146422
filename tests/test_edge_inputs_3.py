"""Third part of the second odd-input sweep (tests/test_edge_inputs_2.py): the command line
and the rest. Each case failed before its fix."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sae_widgets as sw
from sae_widgets.cli import main


def test_cli_trains_on_bfloat16_safetensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # activations dumped from a bf16 model: "cannot read vectors (TypeError: data type
    # 'bfloat16' not understood)" from safetensors.numpy
    X = torch.from_numpy(np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))
    save_file({"acts": X.bfloat16()}, str(tmp_path / "bf16.safetensors"))
    save_file({"acts": X.bfloat16().float()}, str(tmp_path / "f32.safetensors"))
    results = []
    for name in ("bf16", "f32"):
        argv = ["train", "--data", str(tmp_path / f"{name}.safetensors"), "--units", "8"]
        argv += ["--k", "2", "--epochs", "1", "--quiet", "--json", "--out", str(tmp_path / name)]
        assert main(argv) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["d_in"] == 6
    assert results[0]["metrics"] == pytest.approx(results[1]["metrics"])  # the same vectors


@pytest.mark.parametrize("with_sweep", [False, True], ids=["apply_fn", "sweep_fn"])
def test_an_attribute_function_may_return_any_tensor_but_only_numbers(with_sweep: bool) -> None:
    X = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    sae = sw.SAE(n_units=6, k=2, epochs=1, seed=0).fit(X, progress=False)

    def explorer(result: Any) -> sw.Explorer:
        def apply(rows: np.ndarray, value: float) -> Any:
            return result(X[rows] + value)

        def sweep(rows: np.ndarray, grid: np.ndarray) -> Any:
            return result(X[rows][None] + grid[:, None, None].astype(np.float32))

        kwargs = {"sweep_fn": sweep} if with_sweep else {}
        attribute = sw.Attribute("a", [0.0, 1.0], apply, **kwargs)
        return sw.Explorer(sae, sw.Dataset(X, attributes={"a": attribute}))

    expected = explorer(lambda a: a).probe([0, 1], "a").response
    # bfloat16 tensors: "TypeError: Got unsupported ScalarType BFloat16"
    bf16 = explorer(lambda a: torch.from_numpy(a).bfloat16()).probe([0, 1], "a").response
    np.testing.assert_allclose(bf16, expected, atol=0.1)
    # strings: numpy's "could not convert string to float: np.str_('abc')", naming nothing
    with pytest.raises(TypeError, match=r"attribute .a.: .* must return numbers"):
        explorer(lambda a: np.full(a.shape, "abc")).probe([0, 1], "a")


@pytest.mark.parametrize("activation", ["relu", "jumprelu", "batchtopk", "topk"])
@pytest.mark.parametrize("path", ["kernels", "torch"])
def test_codes_hold_no_negative_zeros(activation: str, path: str) -> None:
    # a gated-off negative pre-activation became -0.0 (value * 0), which prints as "-0." and
    # has its sign bit set: codes are +0.0 or positive
    from sae_widgets.sae.device_paths import torch_paths

    X = np.random.default_rng(1).standard_normal((300, 12)).astype(np.float32)
    sae = sw.SAE(n_units=24, k=3, activation=activation, epochs=1, seed=0)
    sae.fit(X, progress=False)
    with torch_paths() if path == "torch" else contextlib.nullcontext():
        Z, Z_sparse = sae.transform(X), sae.encode_sparse(X)
    assert (Z == 0).any() and not np.signbit(Z).any()
    assert not np.signbit(Z_sparse.data).any()
    assert np.array_equal(Z, Z_sparse.toarray())


@pytest.mark.parametrize(
    "index",
    [2**70, -(2**70), [1, 2**70], np.array([2**64 - 1], dtype=np.uint64)],
    ids=["huge", "huge-negative", "huge-in-list", "uint64-max"],
)
def test_a_sample_index_beyond_int64_is_out_of_range(index: Any) -> None:
    # 2**70 was "index must hold integers or booleans; got dtype object"; the largest uint64
    # became -1 in int64 and silently picked the last sample
    ds = sw.Dataset(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match=r"out of range.*n=10"):
        ds[index]
    assert len(ds[np.array([3], dtype=np.uint64)]) == 1
    assert ds[np.array([1, -1], dtype=object)].X.shape == (2, 3)  # Python ints in range


@pytest.mark.parametrize("activation", ["topk", "relu", "jumprelu", "batchtopk"])
def test_training_does_not_depend_on_the_inputs_units_down_to_the_smallest_accepted(
    activation: str,
) -> None:
    """Inputs in tiny units train the same SAE (fit rescales them); a JumpReLU's starting
    thresholds had an absolute 1e-12 floor that left every unit dead below ~1e-12 (FVU 1.0),
    and inputs ~1e-35 trained FVU 14,573 without a word. Too small: a ValueError naming X."""
    X = np.random.default_rng(0).standard_normal((512, 6)).astype(np.float32)
    fvus = []
    for scale in (1.0, 1e-14, 1e-26):
        sae = sw.SAE(n_units=8, k=2, activation=activation, epochs=1, batch_size=64, seed=0)
        sae.fit(X * np.float32(scale))
        fvus.append(sw.metrics.evaluate(sae, X * np.float32(scale))["fvu"])
    assert fvus[0] < 0.9
    np.testing.assert_allclose(fvus, fvus[0], rtol=1e-2)
    for scale in (1e-35, 1e-40):  # needs a scale past the cap; below float32's normal range
        with pytest.raises(ValueError, match=r"X: its rows' mean norm is .* too small"):
            sw.SAE(n_units=8, k=2, activation=activation, epochs=1).fit(X * np.float32(scale))


@pytest.mark.parametrize("scalar", [3.0, np.float64(3.0), np.array(3.0), 7])
def test_a_scalar_is_reported_as_shape_empty_not_one(scalar: Any) -> None:
    # fuzz report A item 13: np.ascontiguousarray made the scalar 1-D ("got shape (1,)")
    with pytest.raises(ValueError, match=r"X must be 2-D .*, got shape \(\)$"):
        sw.SAE(n_units=4, k=1).fit(scalar, progress=False)
    fitted = sw.SAE(n_units=4, k=1, epochs=1).fit(np.ones((4, 3)), progress=False)
    with pytest.raises(ValueError, match=r"X must be 2-D .*got shape \(\)$"):
        fitted.transform(scalar)
    with pytest.raises(ValueError, match=r"Z must have shape \(n, 4\), got \(\)$"):
        fitted.inverse_transform(scalar)
