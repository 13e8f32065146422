"""Third part of the second odd-input sweep (tests/test_edge_inputs_2.py): the command line
and the rest. Each case failed before its fix."""

from __future__ import annotations

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
