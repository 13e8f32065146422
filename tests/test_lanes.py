"""The lanes of sae/lanes.py and the BLAS choice of sae/cpu_gemm.py: each BLAS multiplies as
torch does, the choice is measured once and kept, the lanes give the same bits on any
number of threads, and they leave torch's and numpy's thread settings as they found them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import cpu_gemm, lanes, topk_selection

pytestmark = pytest.mark.usefixtures("float32_lanes")


@pytest.fixture
def fresh_choices() -> Iterator[None]:
    """No BLAS chosen or forced before the test, and none left behind."""
    saved, forced = dict(cpu_gemm._choices), cpu_gemm.FORCED
    cpu_gemm._choices.clear()
    cpu_gemm.FORCED = None
    yield
    cpu_gemm._choices.clear()
    cpu_gemm._choices.update(saved)
    cpu_gemm.FORCED = forced


def blas_threads() -> list[int]:
    blas = cpu_gemm.numpy_blas()
    return [] if blas is None else [lib.num_threads for lib in blas.lib_controllers]


@pytest.mark.parametrize("blas", ["torch", "numpy"])
@given(
    rows=st.integers(1, 40),
    width=st.integers(1, 24),
    cols=st.integers(1, 40),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
@settings(max_examples=25, deadline=None)
def test_each_blas_multiplies_as_torch_does(
    blas: str, rows: int, width: int, cols: int, dtype: torch.dtype
) -> None:
    if blas not in cpu_gemm.candidates(dtype):
        pytest.skip("numpy's BLAS cannot be held at one thread here")
    g = torch.Generator().manual_seed(rows * 1000 + width * 10 + cols)
    a = torch.randn(rows, width, generator=g, dtype=dtype)
    b = torch.randn(width, cols, generator=g, dtype=dtype)
    out = torch.full((rows, cols), float("nan"), dtype=dtype)
    with lanes.one_thread_each():
        got = cpu_gemm.matmul_into(a, b, out, blas)
    assert got is out
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, a @ b, rtol=tol, atol=tol * width)


def test_the_choice_is_measured_once_and_kept(fresh_choices: None) -> None:
    b = torch.randn(40, 96)
    first = lanes.blas_for(b, 2)
    assert first in cpu_gemm.candidates(torch.float32)
    assert cpu_gemm.choices() == {(40, 96, torch.float32, 2): first}
    cpu_gemm._choices[(40, 96, torch.float32, 2)] = "sentinel"  # not measured again
    assert lanes.blas_for(b, 2) == "sentinel"
    assert lanes.blas_for(torch.randn(40, 96, dtype=torch.float64), 2) in ("torch", "numpy")
    assert len(cpu_gemm.choices()) == 2  # a dtype of its own


def test_a_forced_blas_wins_and_dtypes_numpy_lacks_stay_with_torch(fresh_choices: None) -> None:
    cpu_gemm.FORCED = "torch"
    assert lanes.blas_for(torch.randn(8, 8), 1) == "torch"
    assert cpu_gemm.choices() == {}  # forcing measures nothing
    cpu_gemm.FORCED = None
    assert cpu_gemm.candidates(torch.bfloat16) == ["torch"]
    assert lanes.blas_for(torch.randn(8, 8).bfloat16(), 1) == "torch"


def test_numpy_wins_only_by_the_margin(fresh_choices: None) -> None:
    key = (1, 1, torch.float32, 1)
    assert cpu_gemm.choose(key, {"torch": 1.0, "numpy": 0.95}) == "torch"  # a near tie
    assert cpu_gemm.choose(key, {"torch": 1.0, "numpy": 0.8}) == "numpy"
    assert cpu_gemm.choose(key, {"torch": 1.0}) == "torch"


@pytest.mark.parametrize("blas", ["torch", "numpy"])
def test_lanes_give_the_same_bits_on_any_number_of_threads(blas: str) -> None:
    if blas not in cpu_gemm.candidates(torch.float32):
        pytest.skip("numpy's BLAS cannot be held at one thread here")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 48, generator=g)  # 2 pieces, the last one short
    W, b = torch.randn(48, 320, generator=g), torch.randn(320, generator=g)
    every_unit = torch.arange(320)  # the lanes' whole product comes back as "dead" columns
    before, forced = torch.get_num_threads(), cpu_gemm.FORCED
    results = []
    try:
        cpu_gemm.FORCED = blas
        for threads in (1, 2):
            torch.set_num_threads(threads)
            top = topk_selection.select(x, W, b, 7, every_unit)
            assert top.pre_BU is None and top.dead_BU is not None
            results.append((top.dead_BU.clone(), top.values, top.units, top.offsets))
    finally:
        torch.set_num_threads(before)
        cpu_gemm.FORCED = forced
    for one, two in zip(results[0], results[1], strict=True):
        assert torch.equal(one, two)
    pre = results[0][0]
    torch.testing.assert_close(pre, x @ W + b, rtol=1e-5, atol=1e-4)
    top_values = torch.topk(pre, 7, dim=1).values.sort(dim=1).values
    assert torch.equal(results[0][1].view(-1, 7).sort(dim=1).values, top_values)


def test_a_declined_piece_stops_the_lanes_and_restores_threads() -> None:
    a, b = torch.randn(1000, 8), torch.randn(8, 16)
    scratch = [torch.empty(lanes.PIECE_ROWS, 16) for _ in range(2)]
    before, blas_before = torch.get_num_threads(), blas_threads()
    seen: list[int] = []

    def then(rows: slice, product: torch.Tensor) -> int | None:
        seen.append(rows.start)
        return None if rows.start == 0 else rows.start

    assert lanes.multiply_in_scratch(a, b, scratch[:1], then) is None
    assert seen == [0]  # one lane: nothing after the declined piece
    assert torch.get_num_threads() == before and blas_threads() == blas_before
    out = torch.empty(1000, 16)

    def keep(rows: slice, product: torch.Tensor) -> int:
        out[rows] = product
        return rows.start

    found = lanes.multiply_in_scratch(a, b, scratch, keep)
    assert found == list(range(0, 1000, lanes.PIECE_ROWS))  # in row order, whichever lane
    assert found is not None and len(found) > 1  # several pieces, so that the order is tested
    torch.testing.assert_close(out, a @ b)
    whole = torch.empty(1000, 16)
    lanes.multiply(a, b, whole)
    assert torch.equal(whole, out)


def test_threads_come_back_after_an_error_in_a_lane() -> None:
    before, blas_before = torch.get_num_threads(), blas_threads()

    def fail(lane: int, i: int) -> None:
        assert torch.get_num_threads() == 1
        assert all(n == 1 for n in blas_threads())
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        lanes.run(2, 1, fail)
    assert torch.get_num_threads() == before and blas_threads() == blas_before


def test_a_nan_row_falls_back_to_torch_with_the_same_selection() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(600, 16, generator=g)
    x[300, 2] = float("nan")
    W, b = torch.randn(16, 64, generator=g), torch.zeros(64)
    top = topk_selection.select(x, W, b, 4)
    assert top.pre_BU is not None  # the lanes declined: the whole-matrix path
    ok = ~torch.isnan(top.pre_BU).any(dim=1)
    expect = torch.topk(x @ W, 4, dim=1).values.sort(dim=1).values
    got = top.values.view(-1, 4).sort(dim=1).values
    torch.testing.assert_close(got[ok], expect[ok], rtol=1e-5, atol=1e-5)
    assert np.isnan(top.pre_BU[300].numpy()).all()
