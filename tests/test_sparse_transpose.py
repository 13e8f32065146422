"""sparse_grads.transposed: the W_enc gradient's (n_units, d) -> (d, n_units) copy in tiles
equals torch's, for any shape (tile remainders included), dtype and thread count."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import sparse_grads


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    n_units=st.integers(1, 200),
    d=st.integers(1, 90),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    threads=st.sampled_from([1, 2]),
)
def test_transposed_equals_torch(n_units: int, d: int, dtype: torch.dtype, threads: int) -> None:
    sums = torch.randn(n_units, d, generator=torch.Generator().manual_seed(n_units * d))
    sums = sums.to(dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = sparse_grads.transposed(sums)
    finally:
        torch.set_num_threads(before)
    assert out.shape == (d, n_units) and out.dtype == dtype and out.is_contiguous()
    assert torch.equal(out, sums.t())


@pytest.mark.parametrize("shape", [(2048, 256), (700, 33)])
def test_transposed_splits_between_threads_and_falls_back_off_the_kernels(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int]
) -> None:
    sums = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(sparse_grads, "PART_ENTRIES", 1)  # every shape split on two threads
    assert torch.equal(sparse_grads.transposed(sums), sums.t())
    monkeypatch.setattr(sparse_grads, "ENABLED", False)  # torch's copy
    assert torch.equal(sparse_grads.transposed(sums), sums.t())
    half = sums.half()  # no kernel for float16: torch's copy
    assert torch.equal(sparse_grads.transposed(half), half.t())
