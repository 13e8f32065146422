"""sae.scratch: a training step's pre-activations reuse one buffer across CPU steps."""

from __future__ import annotations

import torch

from sae_widgets.sae import lanes, scratch
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_operands
from sae_widgets.sae.training import TrainConfig, Trainer


def test_buffer_is_reused_only_inside_reuse() -> None:
    like = torch.zeros(1)
    assert scratch.buffer("a", (3, 4), like) is not scratch.buffer("a", (3, 4), like)
    store: dict[str, torch.Tensor] = {}
    with scratch.reuse(store):
        first = scratch.buffer("a", (3, 4), like)
        assert scratch.buffer("a", (3, 4), like) is first
        assert scratch.buffer("b", (3, 4), like) is not first  # another name
        resized = scratch.buffer("a", (5, 4), like)
        assert resized.shape == (5, 4) and store["a"] is resized
        assert scratch.buffer("a", (5, 4), like.double()).dtype == torch.float64
    assert "a" in store and scratch.buffer("a", (5, 4), like) is not store["a"]


def test_setup_runs_on_each_new_buffer_only() -> None:
    like, calls = torch.zeros(1), []

    def setup(t: torch.Tensor) -> None:
        calls.append(t.shape)
        t.fill_(7)

    assert torch.all(scratch.buffer("a", (2, 3), like, setup) == 7) and len(calls) == 1
    scratch.buffer("a", (2, 3), like, setup)  # no store: a fresh buffer, set up again
    assert len(calls) == 2
    with scratch.reuse({}):
        first = scratch.buffer("a", (2, 3), like, setup)
        first[0] = 0  # the caller's writes stay; setup does not run on a reused buffer
        again = scratch.buffer("a", (2, 3), like, setup)
        assert again is first and float(again.sum()) == 21 and len(calls) == 3
        scratch.buffer("a", (4, 3), like, setup)  # a new shape: a new buffer
    assert calls[-1] == (4, 3) and len(calls) == 4


def test_affine_operands_keep_their_constants_across_reuse() -> None:
    """(x | 1 | 0) @ (W ; b ; 0) is x @ W + b on every call, the constant parts set once."""
    gen = torch.Generator().manual_seed(0)
    W, b = torch.randn(13, 40, generator=gen), torch.randn(40, generator=gen)
    with scratch.reuse({}):
        for _ in range(3):
            x = torch.randn(9, 13, generator=gen)
            xa, Wa = affine_operands(x, W, b)
            assert xa.shape == (9, 16) and Wa.shape == (16, 40)
            torch.testing.assert_close(xa @ Wa, x @ W + b)
            W, b = W * 2, b - 1  # the weights change between steps


def test_trainer_steps_reuse_the_preacts_and_train_as_without() -> None:
    X = torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
    results = []
    for reuse in (True, False):
        cfg = SAEConfig(d_in=16, n_units=128, activation="topk", k=4)
        model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(1))
        trainer = Trainer(model, TrainConfig(batch_size=64), seed=0, fresh=True)
        trainer.initialize(X)
        model.train()
        for step in range(4):
            if reuse:
                trainer.train_step(X[step * 64 : (step + 1) * 64], 1e-3, 0.0)
            else:
                trainer._train_step(X[step * 64 : (step + 1) * 64], 1e-3, 0.0)
        results.append(model.W_dec.detach().clone())
        if reuse:  # each lane's piece, not the batch's (B, n_units) pre-activations
            assert "preacts" not in trainer.buffers
            assert trainer.buffers["lane 0 preacts"].shape == (lanes.PIECE_ROWS, 128)
            assert trainer.buffers["affine input"].shape == (64, 24)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)
