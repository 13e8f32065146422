"""Third part of the second odd-input sweep (tests/test_edge_inputs_2.py): the command line
and the rest. Each case failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

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
