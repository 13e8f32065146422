"""The CPU kernels of sae/sparse_ops.py against plain dense torch, in float64 on tiny shapes.

The group-maxima top-k, the batch top-k selection, and the unit-sorted weight gradients of the
gathered encoder and decoder must give what torch.topk and dense autograd give.
"""

from __future__ import annotations

import pytest
import torch

from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import (
    TOPK_GROUP,
    SparseCodes,
    batch_topk_units,
    csr_entries,
    decode_sparse,
    gathered_preacts,
    preacts_topk,
    topk_rows,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("n_units", "k"),
    [(8 * TOPK_GROUP, 4), (4 * TOPK_GROUP, 2), (4 * TOPK_GROUP, 3), (50, 4), (TOPK_GROUP, 1)],
)
def test_topk_rows_gives_the_values_of_torch_topk(n_units: int, k: int) -> None:
    for seed in range(3):
        pre = torch.randn(37, n_units, generator=gen(seed), dtype=torch.float64)
        if seed == 1:  # winners crowded in one strided group, and exact ties
            pre[:, ::4] += 5.0
            pre[:, : n_units // 2] = pre[:, : n_units // 2].round()
        values, units = topk_rows(pre, k)
        expected = pre.topk(k, dim=1).values
        torch.testing.assert_close(values.sort(1, descending=True).values, expected)
        # the indices point at those values, each once per row
        torch.testing.assert_close(pre.gather(1, units), values)
        assert (units.sort(1).values.diff(dim=1) > 0).all()


def test_preacts_topk_chunks_agree_with_one_matmul() -> None:
    xc = torch.randn(70, 9, generator=gen(0))
    W, b = torch.randn(9, 8 * TOPK_GROUP, generator=gen(1)), torch.randn(8 * TOPK_GROUP)
    pre, values, units, offsets = preacts_topk(xc, W, b, 5, chunk_rows=16)
    torch.testing.assert_close(pre, torch.addmm(b, xc, W))
    torch.testing.assert_close(values.view(70, 5), pre.gather(1, units.view(70, 5)))
    torch.testing.assert_close(
        values.view(70, 5).sort(1, descending=True).values, pre.topk(5, dim=1).values
    )
    assert torch.equal(offsets, torch.arange(0, 350, 5))


@pytest.mark.parametrize("n_units", [8 * TOPK_GROUP, 50])
def test_batch_topk_units_is_the_flat_top_k(n_units: int) -> None:
    for seed, boost in ((0, 0.0), (1, 10.0), (2, 0.0), (3, 2.5)):
        pre = torch.randn(32, n_units, generator=gen(seed))
        pre[0] += boost  # one row with most winners: more than its candidates
        if seed == 3:  # rows between them with more winners than candidates, and without
            pre[17] += boost
        if seed == 2:
            pre = pre.round()  # a tied cut-off: the exact fallback keeps exactly k * B
        units, offsets, cutoff = batch_topk_units(pre, 3)
        rows = torch.repeat_interleave(
            torch.arange(32), torch.diff(offsets, append=torch.tensor([units.numel()]))
        )
        assert units.numel() == 3 * 32
        kept = pre[rows, units]
        torch.testing.assert_close(kept.sort().values, pre.flatten().topk(96).values.sort().values)
        assert float(cutoff) == float(kept.min())
        assert ((rows * n_units + units).unique().numel()) == 96


def ragged_selection(n_rows: int, n_units: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchTopK-like selection: 0 to 6 distinct units per row, rows in order."""
    counts = torch.randint(0, 7, (n_rows,), generator=gen(5))
    units = torch.cat(
        [torch.randperm(n_units, generator=gen(10 + r))[:c] for r, c in enumerate(counts)]
    )
    return units, torch.cumsum(counts, 0) - counts


@pytest.mark.parametrize("layout", ["topk", "ragged"])
def test_sparse_encoder_and_decoder_gradients_equal_dense_autograd(layout: str) -> None:
    """float64: W_enc, b_enc, W_dec, b_dec gradients of the sparse path equal dense autograd."""
    n_rows, d, n_units = 23, 7, 4 * TOPK_GROUP
    dt = torch.float64
    x = torch.randn(n_rows, d, generator=gen(0), dtype=dt)
    params = {
        "W_enc": torch.randn(d, n_units, generator=gen(1), dtype=dt),
        "b_enc": torch.randn(n_units, generator=gen(2), dtype=dt) * 0.3,
        "W_dec": torch.randn(n_units, d, generator=gen(3), dtype=dt),
        "b_dec": torch.randn(d, generator=gen(4), dtype=dt) * 0.3,
    }
    target = torch.randn(n_rows, d, generator=gen(6), dtype=dt)

    def grads_of(sparse: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = {name: value.clone().requires_grad_() for name, value in params.items()}
        xc = (x - p["b_dec"]).detach()
        pre = torch.addmm(p["b_enc"].detach(), xc, p["W_enc"].detach())
        if layout == "topk":
            values, units_BK = topk_rows(pre, 3)
            units, offsets = units_BK.reshape(-1), torch.arange(0, 3 * n_rows, 3)
        else:
            units, offsets = ragged_selection(n_rows, n_units)
            values = None
        codes_rows = SparseCodes(units, offsets, units, n_rows).rows()
        if sparse:
            acts = gathered_preacts(
                pre, units, offsets, xc, p["W_enc"], p["b_enc"], p["b_dec"],
                None if values is None else values.reshape(-1),
            )  # fmt: skip
            codes = SparseCodes(units, offsets, torch.relu(acts), n_rows)
            x_hat = decode_sparse(codes, p["W_dec"]) + p["b_dec"]
        else:
            dense_pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
            mask = torch.zeros(n_rows, n_units, dtype=torch.bool)
            mask[codes_rows, units] = True
            x_hat = (torch.relu(dense_pre) * mask) @ p["W_dec"] + p["b_dec"]
        loss = (x_hat - target).pow(2).sum() + 0.1 * x_hat.sin().sum()
        loss.backward()
        return x_hat.detach(), {name: value.grad for name, value in p.items()}

    x_sparse, sparse = grads_of(True)
    x_dense, dense = grads_of(False)
    torch.testing.assert_close(x_sparse, x_dense, rtol=1e-12, atol=1e-12)
    for name in params:
        assert sparse[name] is not None and sparse[name].is_contiguous()
        torch.testing.assert_close(sparse[name], dense[name], rtol=1e-10, atol=1e-10)


def test_decode_sparse_passes_gradcheck() -> None:
    n_rows, d, n_units = 9, 5, 3 * TOPK_GROUP
    units, offsets = ragged_selection(n_rows, n_units)
    values = torch.randn(units.numel(), generator=gen(1), dtype=torch.float64).requires_grad_()
    W_dec = torch.randn(n_units, d, generator=gen(2), dtype=torch.float64).requires_grad_()

    def decode(v: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return decode_sparse(SparseCodes(units, offsets, v, n_rows), W)

    assert torch.autograd.gradcheck(decode, (values, W_dec))


def test_model_training_step_matches_dense_reference_on_a_kernel_shape() -> None:
    """The module's topk training forward on a shape where the CPU kernels run (n_units a
    multiple of the group size): codes equal relu(topk) of the dense pre-activations."""
    cfg = SAEConfig(d_in=10, n_units=8 * TOPK_GROUP, activation="topk", k=4)
    model = SparseAutoencoder(cfg, generator=gen(0)).train()
    x = torch.randn(40, 10, generator=gen(1))
    out = model.forward_train(x)
    pre = model.preacts(x).detach()
    values, units = pre.topk(4, dim=1)
    expected = torch.zeros_like(pre).scatter_(1, units, torch.relu(values))
    torch.testing.assert_close(out.codes.to_dense(cfg.n_units).detach(), expected)


def test_csr_entries_sort_each_row_by_unit_and_drop_zeros() -> None:
    values = torch.relu(torch.randn(50, 6, generator=gen(7)))  # about half are zeros
    units = torch.stack([torch.randperm(40, generator=gen(20 + r))[:6] for r in range(50)])
    data, cols, counts = csr_entries(values, units)
    assert int(counts.sum()) == int((values > 0).sum()) == data.numel() == cols.numel()
    dense = torch.zeros(50, 40).scatter_(1, units, values)
    rows = torch.repeat_interleave(torch.arange(50), counts)
    rebuilt = torch.zeros(50, 40)
    rebuilt[rows, cols] = data
    assert torch.equal(rebuilt, dense)
    offsets = torch.cumsum(counts, 0) - counts
    for r in range(50):
        row_units = cols[offsets[r] : offsets[r] + counts[r]]
        assert torch.equal(row_units, row_units.sort().values)
