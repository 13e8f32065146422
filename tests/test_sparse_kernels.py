"""The compiled top-k kernels (sae/sparse_kernels.py) against torch.topk, and the encoders
that use them against the plain torch path (what runs where numba is missing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import sparse_kernels
from sae_widgets.sae.encoding import encode_csr, encode_dense
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rows(n: int, n_units: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    pre = torch.randn(n, n_units, generator=gen(seed), dtype=dtype)
    if seed % 3 == 1:  # winners crowded in one strided group, and exact ties
        pre[:, ::16] += 4.0
        pre[:, : n_units // 2] = pre[:, : n_units // 2].round()
    if seed % 3 == 2:  # a drift the running cut-off guess must follow (rows grow, then shrink)
        pre *= torch.cat([torch.linspace(0.1, 10, n // 2), torch.linspace(10, 0.01, n - n // 2)])[
            :, None
        ].to(dtype)
    return pre


@pytest.mark.parametrize(
    ("n_units", "k"), [(2048, 16), (512, 32), (100, 7), (64, 16), (37, 37), (16, 1)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_topk_gives_the_values_of_torch_topk(n_units: int, k: int, dtype: torch.dtype) -> None:
    for seed in range(3):
        pre = rows(600, n_units, seed, dtype)
        result = sparse_kernels.row_topk(pre, k)
        assert result is not None
        values, units = result
        torch.testing.assert_close(
            values.sort(1, descending=True).values, pre.topk(k, dim=1).values
        )
        torch.testing.assert_close(pre.gather(1, units), values)  # indices point at them
        assert (units.diff(dim=1) > 0).all()  # sorted by unit, each once per row


def test_row_topk_dense_and_csr_modes_give_the_topk_codes() -> None:
    pre = rows(300, 256, 0) - 1.0  # some winners <= 0: ReLU'd away
    top = pre.topk(8, dim=1)
    expected = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    dense = pre.clone()
    assert sparse_kernels.row_topk(dense, 8, mode="dense") is not None
    torch.testing.assert_close(dense, expected)
    result = sparse_kernels.row_topk(pre, 8, mode="csr")
    assert result is not None
    values, units = result
    kept = units >= 0
    assert (values[~kept] == 0).all() and (values[kept] > 0).all()
    assert all((row[row >= 0].diff() > 0).all() for row in units)  # sorted by unit
    rebuilt = torch.zeros_like(pre)
    rebuilt[torch.nonzero(kept)[:, 0], units[kept]] = values[kept]
    torch.testing.assert_close(rebuilt, expected)


def test_row_topk_on_two_threads_equals_one_thread() -> None:
    pre = rows(2000, 512, 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sparse_kernels.row_topk(pre, 16)
        torch.set_num_threads(2)
        two = sparse_kernels.row_topk(pre, 16)
    finally:
        torch.set_num_threads(threads)
    assert one is not None and two is not None
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_batch_topk_on_two_threads_equals_one_thread() -> None:
    """The collecting pass split between threads (rows in parts) keeps the same entries in
    the same order, and still refuses a NaN in the last part."""
    pre = rows(2000, 512, 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sparse_kernels.batch_topk(pre, 2000 * 8)
        torch.set_num_threads(2)
        two = sparse_kernels.batch_topk(pre, 2000 * 8)
        pre[1990, 7] = float("nan")
        refused = sparse_kernels.batch_topk(pre, 2000 * 8)
    finally:
        torch.set_num_threads(threads)
    assert one is not None and two is not None
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert refused is None


def test_kernels_refuse_nan_so_torch_decides() -> None:
    pre = rows(40, 128, 0)
    pre[7, 3] = float("nan")
    assert sparse_kernels.row_topk(pre, 4) is None
    assert sparse_kernels.batch_topk(pre, 40 * 4) is None


@pytest.mark.parametrize("n_units", [2048, 100])
def test_batch_topk_is_the_flat_top_k(n_units: int) -> None:
    for seed in range(3):
        pre = rows(256, n_units, seed)
        if seed == 1:
            pre[5] += 10.0  # one row with many winners
        n_keep = 256 * 4
        result = sparse_kernels.batch_topk(pre, n_keep)
        assert result is not None
        units, offsets, cutoff, values = result
        assert units.numel() == n_keep
        counts = torch.diff(offsets, append=torch.tensor([n_keep]))
        row = torch.repeat_interleave(torch.arange(256), counts)
        flat = row * n_units + units
        assert (flat.diff() > 0).all()  # row-major, each value once
        kept = pre.flatten()[flat]
        assert torch.equal(values, kept)
        torch.testing.assert_close(
            kept.sort().values, pre.flatten().topk(n_keep).values.sort().values
        )
        assert float(cutoff) == float(kept.min())


def test_batch_topk_guess_too_high_falls_back_or_widens() -> None:
    pre = torch.full((256, 64), -5.0)
    pre[0::64] = torch.randn(4, 64, generator=gen(0)) + 3.0  # the sampled rows hold every winner
    result = sparse_kernels.batch_topk(pre, 256 * 2)
    if result is not None:  # exact, or nothing
        units, offsets, _, _ = result
        counts = torch.diff(offsets, append=torch.tensor([units.numel()]))
        row = torch.repeat_interleave(torch.arange(256), counts)
        kept = pre[row, units]
        torch.testing.assert_close(kept.sort().values, pre.flatten().topk(512).values.sort().values)


def topk_model(seed: int = 0) -> SparseAutoencoder:
    cfg = SAEConfig(d_in=24, n_units=256, activation="topk", k=8)
    model = SparseAutoencoder(cfg, generator=gen(seed))
    with torch.no_grad():
        model.b_enc.normal_(0, 0.3, generator=gen(seed + 1))
        model.b_dec.normal_(0, 0.5, generator=gen(seed + 2))
    return model


def test_compiled_encoders_equal_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = topk_model()
    X = torch.randn(1000, 24, generator=gen(5))
    dense = encode_dense(model, X.split(300), 1000)
    csr = encode_csr(model, X.split(300))
    monkeypatch.setattr(sparse_kernels, "_kernels", lambda: None)  # an install without numba
    assert not sparse_kernels.available(model.W_enc.detach())
    dense_torch = encode_dense(model, X.split(300), 1000)
    csr_torch = encode_csr(model, X.split(300))
    torch.testing.assert_close(dense, dense_torch)
    assert np.array_equal(csr.indptr, csr_torch.indptr)
    assert np.array_equal(csr.indices, csr_torch.indices)
    np.testing.assert_allclose(csr.data, csr_torch.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(csr.toarray(), dense.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_lanes_of_pieces_give_the_same_bits_as_whole_chunks(monkeypatch, threads) -> None:
    from sae_widgets.sae import encoding

    torch.manual_seed(0)
    model = SparseAutoencoder(SAEConfig(d_in=24, n_units=96, activation="topk", k=5)).eval()
    x = torch.randn(1000, 24, generator=gen(7))
    chunks = [x[:700], x[700:]]  # pieces of 128 rows: several lanes' worth per chunk
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        monkeypatch.setattr(encoding, "LANE_ROWS", 10**9)  # one piece per chunk
        whole_csr, whole_dense = encode_csr(model, chunks), encode_dense(model, chunks, 1000)
        monkeypatch.setattr(encoding, "LANE_ROWS", 128)
        csr, dense = encode_csr(model, chunks), encode_dense(model, chunks, 1000)
        assert torch.get_num_threads() == threads  # the lanes give torch its threads back
    finally:
        torch.set_num_threads(before)
    assert torch.equal(dense, whole_dense)
    for field in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(csr, field), getattr(whole_csr, field))
    np.testing.assert_array_equal(csr.toarray(), dense.numpy())


@settings(max_examples=60, deadline=None)
@given(
    n_units=st.sampled_from([1, 3, 16, 37, 64, 100, 256, 520, 2048]),
    k_fraction=st.floats(0.0, 1.0),
    levels=st.sampled_from([2, 5, 1000, 0]),  # few distinct values: ties everywhere
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_row_topk_is_the_exact_top_k_with_lowest_units_winning_ties(
    n_units: int, k_fraction: float, levels: int, scale: float, seed: int, dtype: torch.dtype
) -> None:
    """Any width, k and value spread: the k largest of each row, of values tied at the k-th
    the lowest units, sorted by unit (rows drawn with their own scale, as a trained SAE's)."""
    k = max(1, round(k_fraction * n_units))
    g = gen(seed)
    pre = torch.randn(50, n_units, generator=g, dtype=dtype)
    if levels:
        pre = (pre * levels / 4).round()
    pre *= scale * torch.rand(50, 1, generator=g, dtype=dtype).mul(100)
    result = sparse_kernels.row_topk(pre, k)
    assert result is not None
    values, units = result
    for row, row_values, row_units in zip(pre, values, units, strict=True):
        # reference: order by value (descending), then unit (ascending); first k, by unit
        order = sorted(range(n_units), key=lambda j: (-float(row[j]), j))[:k]
        expected = torch.tensor(sorted(order))
        assert torch.equal(row_units, expected)
        assert torch.equal(row_values, row[expected])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_codes_in_fresh_huge_page_memory_are_the_same(monkeypatch, dtype) -> None:
    """encode_dense into a fresh (huge-page) mapping: the same codes as into torch's memory,
    a contiguous, aligned, writable tensor whose numpy view outlives it."""
    from sae_widgets.sae import encoding

    model = topk_model().to(dtype)
    X = torch.randn(1000, 24, generator=gen(9), dtype=dtype)
    monkeypatch.setattr(encoding, "HUGE_PAGE_BYTES", 1 << 62)  # never: torch's allocation
    plain = encode_dense(model, X.split(300), 1000)
    monkeypatch.setattr(encoding, "HUGE_PAGE_BYTES", 0)  # always, where the OS offers it
    fresh = encode_dense(model, X.split(300), 1000)
    assert fresh.dtype == dtype and fresh.is_contiguous() and fresh.data_ptr() % 64 == 0
    assert torch.equal(fresh, plain)
    array = fresh.numpy()
    del fresh
    array[0, 0] += 1  # writable, and still mapped without the tensor
    array[0, 0] -= 1
    np.testing.assert_array_equal(array, plain.numpy())


def gated_model(activation: str, seed: int = 0) -> SparseAutoencoder:
    k = {"k": 4} if "batchtopk" in activation else {}
    cfg = SAEConfig(d_in=24, n_units=256, activation=activation, **k)
    model = SparseAutoencoder(cfg, generator=gen(seed)).eval()
    with torch.no_grad():
        model.b_enc.normal_(0, 0.3, generator=gen(seed + 1))
        if model.threshold is not None:  # some at 0: the gate also needs pre > 0
            model.set_threshold_((torch.rand(256, generator=gen(seed + 2)) - 0.2).clamp_min(0))
    return model


@pytest.mark.parametrize("activation", ["relu", "jumprelu", "batchtopk", "matryoshka_batchtopk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threshold_gated_encoders_equal_the_torch_path(monkeypatch, activation, dtype) -> None:
    """relu / jumprelu / batchtopk at inference: the compiled gate in lanes gives the codes of
    model.encode (dense and CSR, sorted units, no zeros stored), values at the cut dropped."""
    from sae_widgets.sae import encoding

    model = gated_model(activation).to(dtype)
    assert model.inference_cut() is not None
    X = torch.randn(1000, 24, generator=gen(3), dtype=dtype)
    cut = model.inference_cut()
    assert cut is not None
    X[0] = 0  # row 0's pre-activations are b_enc exactly: put some right at the cut
    with torch.no_grad():
        model.b_enc[:8] = cut[:8]
    expected = model.encode(X).detach()
    monkeypatch.setattr(encoding, "LANE_ROWS", 128)  # several pieces and lanes per chunk
    dense = encode_dense(model, X.split(300), 1000)
    csr = encode_csr(model, X.split(300))
    torch.testing.assert_close(dense, expected, rtol=1e-6, atol=1e-6)
    assert not bool(dense[0, :8].any())  # at the cut: not kept
    np.testing.assert_array_equal(csr.toarray(), dense.numpy().astype(np.float32))
    assert csr.has_sorted_indices and bool((csr.data != 0).all())
    monkeypatch.setattr(sparse_kernels, "_kernels", lambda: None)  # the torch path
    csr_torch = encode_csr(model, X.split(300))
    assert np.array_equal(csr.indptr, csr_torch.indptr)
    assert np.array_equal(csr.indices, csr_torch.indices)


def test_gate_declines_nan_so_torch_decides() -> None:
    pre = torch.randn(50, 40, generator=gen(4))
    pre[17, 3] = float("nan")
    cut = torch.zeros(40)
    assert sparse_kernels.gate_rows(pre.clone(), cut, "csr") is None
    assert sparse_kernels.gate_rows(pre.clone(), cut, "dense") is None
    assert sparse_kernels.gate_rows(pre, cut.double(), "csr") is None  # mixed dtypes
    values, units, counts = sparse_kernels.gate_rows(pre[:17].clone(), cut, "csr")
    assert int(counts.sum()) == int((pre[:17] > 0).sum()) == len(values) == len(units)
    assert topk_model().inference_cut() is None  # topk selects, it does not gate


def test_fresh_output_falls_back_to_torch_where_numpy_or_the_kernel_cannot(monkeypatch) -> None:
    """bfloat16 (no numpy dtype) and a refused mapping get torch's own allocation."""
    import mmap

    from sae_widgets.sae import encoding

    monkeypatch.setattr(encoding, "HUGE_PAGE_BYTES", 0)
    half = encoding.fresh_output((64, 32), torch.zeros(1, dtype=torch.bfloat16))
    assert half.dtype == torch.bfloat16 and half.shape == (64, 32)

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(mmap, "mmap", refused)
    plain = encoding.fresh_output((64, 32), torch.zeros(1))
    assert plain.dtype == torch.float32 and plain.shape == (64, 32)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([-2.0, 0.0, 0.5, 3.0]) | st.floats(-9, 9), min_size=1),
    k_fraction=st.floats(0.0, 1.0),
)
def test_kth_largest_by_quickselect_and_by_kept_buffer(values: list[float], k_fraction) -> None:
    """Both ways of ranking a row's group maxima (chosen by k) give the exact k-th largest,
    ties included."""
    kernels = pytest.importorskip("sae_widgets.sae._numba_kernels")
    a = np.array(values, np.float32)
    k = max(1, round(k_fraction * a.size))
    expected = np.sort(a)[::-1][k - 1]
    assert kernels._kth_largest(a.copy(), a.size, k) == expected
    assert kernels._kth_largest_kept(a.copy(), k, np.empty(k, np.float32)) == expected


@pytest.mark.parametrize(("n_units", "k"), [(8192, 32), (4096, 48), (2048, 17)])
def test_row_topk_with_k_above_the_kept_buffer_limit(n_units: int, k: int) -> None:
    """k past KEPT_K ranks the group maxima by quickselect: still the exact top k, ties
    to the lowest units."""
    pre = (torch.randn(64, n_units, generator=gen(k)) * 3).round()  # ties at every rank
    result = sparse_kernels.row_topk(pre, k)
    assert result is not None
    values, units = result
    for row, row_values, row_units in zip(pre, values, units, strict=True):
        order = sorted(range(n_units), key=lambda j: (-float(row[j]), j))[:k]
        assert torch.equal(row_units, torch.tensor(sorted(order)))
        assert torch.equal(row_values, row[row_units])
