"""Fuzz round 9: the hidden activations of unusual PyTorch models (shared layers, aliases,
gradients through a splice, literal special tokens in texts). Each test pins a defect found
in this round (the fix is in the commit that added it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import sae_widgets as sw


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _rows(n: int = 16, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def _topk_sae(d: int, n_units: int = 12, k: int = 3, seed: int = 0) -> sw.SAE:
    """A TopK SAE with random weights (no training needed to check plumbing)."""
    g = torch.Generator().manual_seed(seed)
    cfg = sw.SAEConfig(d_in=d, n_units=n_units, activation="topk", k=k)
    W_enc = torch.randn(d, n_units, generator=g)
    W_dec = torch.randn(n_units, d, generator=g) / d**0.5
    module = sw.SparseAutoencoder.from_weights(
        cfg, W_enc, torch.zeros(n_units), W_dec, torch.zeros(d)
    )
    return sw.SAE.from_module(module)


# ------------------------------------------------------------------ a layer under two names


class _Aliased(nn.Module):
    """One Linear registered twice (`lin` and `alias`) and applied twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.alias = self.lin  # named_modules() lists it once, as "lin"
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lin(torch.relu(self.lin(x))))


def test_a_layer_registered_under_two_names_is_found_by_either() -> None:
    # layer="alias" was "not found in model; available layers: lin, head" although
    # model.alias is that very layer
    torch.manual_seed(0)
    model = _Aliased()
    X = _rows()
    by_alias = sw.collect_activations(model, "alias", X)
    by_name = sw.collect_activations(model, "lin", X)
    np.testing.assert_array_equal(by_alias.X, by_name.X)
    assert by_alias.name.endswith("-> alias")
    with torch.no_grad(), sw.Intervention(model, "alias", ablate="zero"):
        zeroed = model(torch.from_numpy(X))
    with torch.no_grad():
        np.testing.assert_allclose(zeroed.numpy(), model.head.bias.expand(16, 2).numpy())
    assert _hooks(model) == 0
    with pytest.raises(ValueError, match=r"layer 'alias\.x' not found.*available layers: lin"):
        sw.collect_activations(model, "alias.x", X)
