"""sae.auxk: the dense AuxK (few dead units) and the sparse one give the same loss and
gradients, with and without a selection among the dead units."""

from __future__ import annotations

import pytest
import torch

from sae_widgets.sae import auxk
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder


@pytest.mark.parametrize(("n_dead", "k_aux"), [(12, 5), (12, 12), (12, 40), (1, 3)])
def test_dense_and_sparse_auxk_agree(monkeypatch, n_dead: int, k_aux: int) -> None:
    gen = torch.Generator().manual_seed(n_dead * 100 + k_aux)
    cfg = SAEConfig(d_in=16, n_units=64, activation="topk", k=4)
    model = SparseAutoencoder(cfg, generator=gen).train()
    with torch.no_grad():
        model.b_enc.normal_(0, 0.5, generator=gen)
        model.b_dec.normal_(0, 0.5, generator=gen)
    x = torch.randn(50, 16, generator=gen)
    x_hat = torch.randn(50, 16, generator=gen)
    dead = torch.randperm(64, generator=gen)[:n_dead]
    xc = (x - model.b_dec).detach()
    with torch.no_grad():
        dead_BU = (xc @ model.W_enc + model.b_enc)[:, dead]
    results = []
    for factor in (10**6, 0):  # dense, then sparse
        monkeypatch.setattr(auxk, "DENSE_FACTOR", factor)
        model.zero_grad()
        loss = auxk.aux_fvu_of(model, x, xc, x_hat, dead, dead_BU, k_aux)
        loss.backward()
        grads = [p.grad.clone() for p in (model.W_enc, model.b_enc, model.W_dec, model.b_dec)]
        results.append((loss.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-7)
    for dense_grad, sparse_grad in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(dense_grad, sparse_grad, rtol=1e-4, atol=1e-6)
