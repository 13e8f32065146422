"""sae.sparse_residual: the fused reconstruction + squared error + batch variance of a sparse
step gives the torch ops' values and gradients, on any thread count, and declines where it
does not apply."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sae_widgets.sae import sparse_grads, sparse_kernels, sparse_residual
from sae_widgets.sae.fvu import fvu_of
from sae_widgets.sae.sparse_ops import SparseCodes, decode_sparse

pytestmark = pytest.mark.skipif(
    sparse_grads.compiled(torch.zeros(1)) is None, reason="numba kernels unavailable"
)
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _codes(n_rows: int, n_units: int, k: int, gen: torch.Generator) -> SparseCodes:
    """Up to k distinct units per row (some rows none), ReLU'd-like positive values."""
    counts = torch.randint(0, k + 1, (n_rows,), generator=gen)
    units = [torch.randperm(n_units, generator=gen)[:c] for c in counts.tolist()]
    flat = torch.cat(units) if units else torch.zeros(0, dtype=torch.long)
    values = torch.rand(flat.numel(), generator=gen, dtype=torch.float64)
    return SparseCodes(flat.long(), torch.cumsum(counts, 0) - counts, values, n_rows)


def _run(
    codes: SparseCodes,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor,
    x: torch.Tensor,
    fused: bool,
    reconstruction_loss: bool,
) -> tuple[torch.Tensor, ...]:
    values = codes.values.clone().requires_grad_()
    W, b = W_dec.clone().requires_grad_(), b_dec.clone().requires_grad_()
    codes = codes._replace(values=values)
    if fused:
        out = sparse_residual.reconstruct(codes, W, b, x)
        assert out is not None
        x_hat, err, total_var = out
        fvu = err / total_var
    else:
        x_hat = decode_sparse(codes, W) + b
        fvu = fvu_of(x, x_hat)[0]
    loss = 3 * fvu
    if reconstruction_loss:  # x_hat has a gradient of its own
        loss = loss + 1e-3 * x_hat.square().sum()
    loss.backward()
    assert values.grad is not None and W.grad is not None and b.grad is not None
    return x_hat.detach(), fvu.detach(), values.grad, W.grad, b.grad


@SETTINGS
@given(
    n_rows=st.sampled_from([1, 2, 255, 256, 257, 600]),
    d=st.integers(1, 40),
    n_units=st.integers(1, 60),
    k=st.integers(1, 6),
    double=st.booleans(),
    offset=st.sampled_from([0.0, 5.0, 300.0]),
    reconstruction_loss=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_the_torch_ops(
    n_rows: int,
    d: int,
    n_units: int,
    k: int,
    double: bool,
    offset: float,
    reconstruction_loss: bool,
    seed: int,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    codes = _codes(n_rows, n_units, min(k, n_units), gen)
    codes = codes._replace(values=codes.values.to(dtype))
    W_dec = torch.randn(n_units, d, generator=gen, dtype=dtype)
    b_dec = torch.randn(d, generator=gen, dtype=dtype)
    x = torch.randn(n_rows, d, generator=gen, dtype=dtype) + offset
    fused = _run(codes, W_dec, b_dec, x, True, reconstruction_loss)
    plain = _run(codes, W_dec, b_dec, x, False, reconstruction_loss)
    # float32: the variance of data offset by 300 loses digits in fp32 torch, not in ours
    tol = 1e-9 if double else (2e-3 if offset > 100 else 2e-4)
    for name, ours, theirs in zip(["x_hat", "fvu", "values", "W_dec", "b_dec"], fused, plain):
        scale = float(theirs.abs().amax()) if theirs.numel() else 1.0
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol * scale + 1e-30, msg=name)


def test_same_bits_on_any_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(0)
    n_rows, d, n_units = 4000, 160, 300  # enough work for two threads' shares
    codes = _codes(n_rows, n_units, 8, gen)
    codes = codes._replace(values=codes.values.float())
    W_dec, b_dec = torch.randn(n_units, d, generator=gen), torch.randn(d, generator=gen)
    x = torch.randn(n_rows, d, generator=gen)
    split, ranges = sparse_grads.run_split, []

    def recorded(n: int, n_entries: int, fn: Callable[[int, int], None]) -> None:
        def part(lo: int, hi: int) -> None:
            ranges.append((n, lo, hi))
            fn(lo, hi)

        split(n, n_entries, part)

    monkeypatch.setattr(sparse_grads, "run_split", recorded)
    before = torch.get_num_threads()
    results, splits = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ranges.clear()
            results.append(_run(codes, W_dec, b_dec, x, True, False))
            splits.append(sorted((lo, hi) for n, lo, hi in ranges if n == 16))  # 16 blocks
    finally:
        torch.set_num_threads(before)
    two = [(0, 8), (8, 16)] if sparse_kernels.pool()[1] >= 2 else [(0, 16)]
    assert splits == [[(0, 16)], two]
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_non_finite_input_gives_a_non_finite_error() -> None:
    """NaN and inf are not optimised away (the loss check of the Trainer must see them)."""
    gen = torch.Generator().manual_seed(0)
    codes = _codes(300, 20, 3, gen)
    codes = codes._replace(values=codes.values.float())
    W_dec, b_dec = torch.randn(20, 8, generator=gen), torch.zeros(8)
    for bad in (math.nan, math.inf):
        x = torch.randn(300, 8, generator=gen)
        x[123, 4] = bad
        out = sparse_residual.reconstruct(codes, W_dec, b_dec, x)
        assert out is not None and not math.isfinite(float(out[1] / out[2]))


def test_declines_where_it_does_not_apply() -> None:
    gen = torch.Generator().manual_seed(0)
    codes = _codes(10, 20, 3, gen)
    codes32 = codes._replace(values=codes.values.float())
    W_dec, b_dec, x = torch.randn(20, 8), torch.zeros(8), torch.randn(10, 8)
    assert sparse_residual.reconstruct(codes32, W_dec, b_dec, x.requires_grad_()) is None
    assert sparse_residual.reconstruct(codes, W_dec, b_dec, x.detach()) is None  # mixed dtypes
    half = codes._replace(values=codes.values.half())
    assert sparse_residual.reconstruct(half, W_dec.half(), b_dec.half(), x.detach().half()) is None
