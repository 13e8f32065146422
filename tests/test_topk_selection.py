"""sae.topk_selection: a TopK training step's selection in the lanes' scratch gives the same
bits as the whole pre-activations, dead units' columns (AuxK) included, and training with
AuxK trains the same weights either way."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import cpu_gemm, sparse_kernels, topk_selection
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.training import TrainConfig, Trainer

pytestmark = [
    pytest.mark.usefixtures("float32_lanes"),
    pytest.mark.skipif(
        not sparse_kernels.available(torch.zeros(1)), reason="numba kernels unavailable"
    ),
]


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(
    n_rows=st.integers(1, 1300),
    n_units=st.integers(8, 300),
    d=st.integers(1, 40),
    data=st.data(),
)
def test_lanes_select_what_the_whole_matrix_does(n_rows: int, n_units: int, d: int, data) -> None:
    k = data.draw(st.integers(1, n_units - 1))
    n_dead = data.draw(st.integers(0, n_units))
    gen = torch.Generator().manual_seed(n_rows * 7 + n_units)
    x, W, b = (
        torch.randn(n_rows, d, generator=gen),
        torch.randn(d, n_units, generator=gen),
        (torch.randn(n_units, generator=gen)),
    )
    dead = torch.randperm(n_units, generator=gen)[:n_dead] if n_dead else None
    top = topk_selection.select(x, W, b, k, dead)
    # the lanes' own whole product, as the dead columns of every unit (the same BLAS and
    # pieces, so the same bits): the selection must be its exact top k
    whole = topk_selection.select(x, W, b, k, torch.arange(n_units))
    assert top.pre_BU is None and whole.pre_BU is None  # never the whole matrix on CPU
    pre = whole.dead_BU
    assert pre is not None
    torch.testing.assert_close(pre, x @ W + b, rtol=1e-4, atol=1e-4)
    expected = sparse_kernels.row_topk(pre.clone(), k)
    assert expected is not None
    assert torch.equal(top.values, expected[0].view(-1))
    assert torch.equal(top.units, expected[1].view(-1))
    assert torch.equal(top.offsets, torch.arange(0, n_rows * k, k))
    assert torch.equal(whole.values, top.values) and torch.equal(whole.units, top.units)
    if dead is None:
        assert top.dead_BU is None
    else:
        assert top.dead_BU is not None and torch.equal(top.dead_BU, pre[:, dead])


def test_nan_rows_fall_back_to_the_whole_matrix() -> None:
    x = torch.randn(600, 8, generator=torch.Generator().manual_seed(0))
    x[550, 3] = float("nan")
    W, b = torch.randn(8, 64), torch.zeros(64)
    top = topk_selection.select(x, W, b, 4, torch.tensor([1, 5]))
    assert top.pre_BU is not None and top.dead_BU is not None  # the torch path decided
    torch.testing.assert_close(top.dead_BU, top.pre_BU[:, [1, 5]], rtol=0, atol=0, equal_nan=True)
    ok = torch.arange(600) != 550
    expect = torch.topk(x @ W, 4, dim=1).values.sort(dim=1).values
    got = top.values.view(600, 4).sort(dim=1).values
    torch.testing.assert_close(got[ok], expect[ok], rtol=1e-5, atol=1e-5)


def test_training_with_dead_units_trains_the_same_weights(monkeypatch) -> None:
    X = torch.randn(2048, 24, generator=torch.Generator().manual_seed(0))
    weights = []
    # torch's BLAS in the lanes too: a 512-row batch is then one call of the same shape on
    # both paths, so the same bits (numpy's OpenBLAS, where chosen, rounds differently)
    monkeypatch.setattr(cpu_gemm, "FORCED", "torch")
    for in_lanes in (True, False):
        if not in_lanes:
            monkeypatch.setattr(topk_selection, "_in_lanes", lambda *args: None)
        cfg = SAEConfig(d_in=24, n_units=256, activation="topk", k=6)
        model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(1))
        trainer = Trainer(model, TrainConfig(batch_size=512), seed=0, fresh=True)
        trainer.initialize(X)
        model.train()
        for step in range(4):
            trainer.samples_since_fired[: 40 + step] = trainer.cfg.dead_window  # AuxK runs
            metrics = trainer.train_step(X[step * 512 : (step + 1) * 512], 1e-3, 0.0)
            assert float(metrics["aux_fvu"]) > 0
        weights.append((model.W_enc.detach().clone(), model.W_dec.detach().clone()))
    assert torch.equal(weights[0][0], weights[1][0]) and torch.equal(weights[0][1], weights[1][1])
