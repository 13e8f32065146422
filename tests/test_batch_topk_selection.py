"""sae.batch_topk_selection: BatchTopK's selection in the lanes, above a guessed cut-off,
gives the same bits as the whole-matrix kernel or declines; training (AuxK included)
trains the same weights either way."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import batch_topk_selection as lanes_selection
from sae_widgets.sae import sparse_kernels
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_preacts
from sae_widgets.sae.training import TrainConfig, Trainer

pytestmark = [
    pytest.mark.usefixtures("float32_lanes"),
    pytest.mark.skipif(
        not sparse_kernels.available(torch.zeros(1)), reason="numba kernels unavailable"
    ),
]


class Owner:
    """Anything weakly referable owns a guess."""


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(
    n_rows=st.integers(2, 1200),
    n_units=st.integers(4, 200),
    k=st.integers(1, 12),
    shift=st.floats(-0.5, 0.5),
    with_dead=st.booleans(),
)
def test_lanes_select_the_whole_matrix_kernels_entries_or_decline(
    n_rows: int, n_units: int, k: int, shift: float, with_dead: bool
) -> None:
    k = min(k, n_units - 1)
    gen = torch.Generator().manual_seed(n_rows * 31 + n_units)
    x, W = torch.randn(n_rows, 6, generator=gen), torch.randn(6, n_units, generator=gen)
    b = torch.randn(n_units, generator=gen)
    n_keep = k * n_rows
    owner = Owner()
    assert lanes_selection.applies(x, W, n_keep)
    assert lanes_selection.select(owner, x, W, b, n_keep, None) is None  # no guess yet
    pre = affine_preacts(x, W, b).clone()
    lanes_selection.remember(owner, pre, n_keep)
    # the next batch differs: the guess may keep too few or too many, then it declines
    x2 = x + shift
    dead = torch.arange(0, n_units, 3) if with_dead else None
    found = lanes_selection.select(owner, x2, W, b, n_keep, dead)
    pre2 = affine_preacts(x2, W, b).clone()
    expected = sparse_kernels.batch_topk(pre2, n_keep)
    if found is None:
        return
    (units, offsets, cutoff, values), dead_BU = found
    assert expected is not None
    for ours, theirs in zip((units, offsets, cutoff, values), expected, strict=True):
        assert torch.equal(ours, theirs)
    if dead is None:
        assert dead_BU is None
    else:
        assert dead_BU is not None and torch.equal(dead_BU, pre2[:, dead])


def test_nan_declines() -> None:
    x, W, b = torch.randn(600, 5), torch.randn(5, 40), torch.zeros(40)
    owner = Owner()
    lanes_selection.remember(owner, affine_preacts(x, W, b).clone(), 600 * 3)
    x[599, 0] = float("nan")
    assert lanes_selection.select(owner, x, W, b, 600 * 3, None) is None


@pytest.mark.parametrize("activation", ["batchtopk", "matryoshka_batchtopk"])
def test_training_trains_the_same_weights_as_the_whole_matrix(monkeypatch, activation) -> None:
    X = torch.randn(3072, 24, generator=torch.Generator().manual_seed(0))
    weights = []
    for in_lanes in (True, False):
        if not in_lanes:
            monkeypatch.setattr(lanes_selection, "applies", lambda *args: False)
        extra = {"prefix_sizes": [32, 256]} if activation.startswith("matryoshka") else {}
        cfg = SAEConfig(d_in=24, n_units=256, activation=activation, k=6, **extra)
        model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(1))
        trainer = Trainer(model, TrainConfig(batch_size=512), seed=0, fresh=True)
        trainer.initialize(X)
        model.train()
        for step in range(6):
            if step >= 3:  # AuxK runs on the later steps
                trainer.samples_since_fired[: 40 + step] = trainer.cfg.dead_window
            trainer.train_step(X[step * 512 : (step + 1) * 512], 1e-3, 0.0)
        weights.append([p.detach().clone() for p in model.parameters()])
        weights[-1].append(model.batch_threshold.clone())
    for ours, theirs in zip(weights[0], weights[1], strict=True):
        assert torch.equal(ours, theirs)


def test_a_guess_from_the_same_batch_is_used() -> None:
    gen = torch.Generator().manual_seed(3)
    x, W, b = (
        torch.randn(1500, 8, generator=gen),
        torch.randn(8, 300, generator=gen),
        torch.zeros(300),
    )
    owner, n_keep = Owner(), 1500 * 5
    lanes_selection.remember(owner, affine_preacts(x, W, b).clone(), n_keep)
    found = lanes_selection.select(owner, x, W, b, n_keep, torch.tensor([0, 7]))
    assert found is not None  # collected in the lanes
    expected = sparse_kernels.batch_topk(affine_preacts(x, W, b).clone(), n_keep)
    assert expected is not None and all(
        torch.equal(a, e) for a, e in zip(found[0], expected, strict=True)
    )
