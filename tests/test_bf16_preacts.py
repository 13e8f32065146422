"""The bfloat16 lane product (sae/bf16_preacts.py): selections from it are the exact
selections of the float32 recomputations, whatever bfloat16's rounding did."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_widgets.sae import bf16_preacts, sparse_kernels, topk_selection
from sae_widgets.sae._numba_kernels import RANKED_MAX, _top_in_order
from sae_widgets.sae._numba_refine import KEY_SPAN, _dot, _key_cutoff
from sae_widgets.sae.encoding import encode_csr, encode_dense, zero_output
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_operands


@pytest.fixture
def forced_bf16():
    saved = bf16_preacts.FORCED
    bf16_preacts.FORCED = True
    yield
    bf16_preacts.FORCED = saved


def operands(n_rows: int, d: int, n_units: int, seed: int, crowd: float) -> tuple:
    """Augmented inputs and weights; crowd > 0: the weights' columns all within `crowd`
    (relative) of one direction, so that their pre-activations differ by less than
    bfloat16 can tell apart (and float32 can)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, n_units, generator=g)
    if crowd:
        W = torch.randn(d, 1, generator=g) + crowd * W
    b = 0.1 * torch.randn(n_units, generator=g)
    x = torch.randn(n_rows, d, generator=g) * 10.0 ** float(torch.randint(-3, 4, (1,), generator=g))
    xa, Wa = affine_operands(x, W, b)
    return xa.clone(), Wa.clone()


def exact(xa: torch.Tensor, Wa: torch.Tensor) -> np.ndarray:
    """Every float32 recomputation, as the refined kernels compute the candidates."""
    xs, WT = xa.numpy(), Wa.t().contiguous().numpy()
    return np.array([[_dot(xs[r], WT[j]) for j in range(WT.shape[0])] for r in range(xs.shape[0])])


def reference_topk(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest (ties to the lowest units), sorted by unit."""
    order = np.lexsort((np.arange(q.shape[1])[None].repeat(q.shape[0], 0), -q), axis=1)[:, :k]
    units = np.sort(order, axis=1)
    return np.take_along_axis(q, units, 1), units


def approx_and_refine(xa: torch.Tensor, Wa: torch.Tensor) -> tuple[torch.Tensor, object]:
    """The bfloat16 product of xa @ Wa and what makes a selection from it exact."""
    out16 = torch.empty(xa.shape[0], Wa.shape[1], dtype=torch.bfloat16)
    x16 = torch.empty(xa.shape, dtype=torch.bfloat16)
    return out16, bf16_preacts.Product(Wa).into(xa, x16, out16)


@settings(max_examples=40, deadline=None)
@given(
    n_rows=st.integers(1, 24),
    d=st.integers(1, 48),
    n_units=st.integers(1, 200),
    k_fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 10**6),
    crowd=st.sampled_from([0.0, 1e-3, 1e-4]),
)
def test_refined_row_topk_is_the_exact_topk_of_the_float32_values(
    n_rows: int, d: int, n_units: int, k_fraction: float, seed: int, crowd: float
) -> None:
    k = max(1, round(k_fraction * n_units))
    xa, Wa = operands(n_rows, d, n_units, seed, crowd)
    approx, refine = approx_and_refine(xa, Wa)
    found = sparse_kernels.row_topk(approx, k, threads=1, refine=refine)
    assert found is not None
    want_values, want_units = reference_topk(exact(xa, Wa), k)
    np.testing.assert_array_equal(found[1].numpy(), want_units)
    np.testing.assert_array_equal(found[0].numpy(), want_values)


def test_crowded_units_are_told_apart_where_bfloat16_cannot() -> None:
    """Pre-activations 1e-4 apart (relative): bfloat16's own top k is wrong, ours exact."""
    xa, Wa = operands(64, 32, 256, 0, 1e-4)
    q = exact(xa, Wa)
    approx, refine = approx_and_refine(xa, Wa)
    naive = sparse_kernels.row_topk(approx.float(), 8, threads=1)
    _, want_units = reference_topk(q, 8)
    assert naive is not None and not np.array_equal(naive[1].numpy(), want_units)
    found = sparse_kernels.row_topk(approx, 8, threads=1, refine=refine)
    assert found is not None
    np.testing.assert_array_equal(found[1].numpy(), want_units)


@pytest.mark.parametrize("mode", ["dense", "csr"])
def test_refined_modes_give_the_relud_codes(mode: str) -> None:
    xa, Wa = operands(40, 16, 96, 3, 0.0)
    q = exact(xa, Wa)
    values, units = reference_topk(q, 5)
    approx, refine = approx_and_refine(xa, Wa)
    dense = torch.full(approx.shape, float("nan"))
    found = sparse_kernels.row_topk(approx, 5, mode, 1, refine, dense)
    assert found is not None
    if mode == "dense":
        expected = np.zeros_like(q, dtype=np.float32)
        np.put_along_axis(expected, units, np.maximum(values, 0), 1)
        np.testing.assert_array_equal(dense.numpy(), expected)
    else:
        kept = values > 0
        np.testing.assert_array_equal(found[1].numpy(), np.where(kept, units, -1))
        np.testing.assert_array_equal(found[0].numpy(), np.where(kept, values, 0))


@pytest.mark.parametrize("crowd", [0.0, 1e-4])
def test_refined_collection_is_the_exact_collection(crowd: float) -> None:
    xa, Wa = operands(50, 24, 128, 5, crowd)
    q = exact(xa, Wa).astype(np.float32)
    cutoff = float(np.quantile(q, 0.97))
    want = sparse_kernels.collect_piece(torch.from_numpy(q), cutoff, 4096, first_row=3)
    approx, refine = approx_and_refine(xa, Wa)
    found = sparse_kernels.collect_piece(approx, cutoff, 4096, first_row=3, refine=refine)
    assert want is not None and found is not None
    assert found[2] == want[2]
    np.testing.assert_array_equal(found[0][: found[2]], want[0][: want[2]])
    np.testing.assert_array_equal(found[1][: found[2]], want[1][: want[2]])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 3e38])
def test_rows_beyond_the_bound_are_declined(bad: float) -> None:
    """NaN, inf, or values whose products overflow: the kernels decline (torch decides)."""
    xa, Wa = operands(8, 8, 32, 1, 0.0)
    xa[3, :] = bad
    approx, refine = approx_and_refine(xa, Wa)
    assert sparse_kernels.row_topk(approx, 4, threads=1, refine=refine) is None
    assert sparse_kernels.collect_piece(approx, 0.0, 256, refine=refine) is None
    assert sparse_kernels.gate_rows(approx, torch.zeros(32), "csr", refine) is None


def small_model(activation: str, seed: int = 0) -> SparseAutoencoder:
    cfg = SAEConfig(d_in=48, n_units=512, activation=activation, k=8)
    return SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("activation", ["topk", "batchtopk"])
def test_training_with_the_bfloat16_product_matches_float32(activation: str) -> None:
    X = torch.randn(3000, 48, generator=torch.Generator().manual_seed(1))
    weights, fvu = {}, {}
    for forced in (False, True):
        saved = bf16_preacts.FORCED
        bf16_preacts.FORCED = forced
        try:
            sae = SAE(n_units=512, activation=activation, k=8, epochs=2, batch_size=1024, seed=0)
            sae.fit(X, progress=False)
        finally:
            bf16_preacts.FORCED = saved
        weights[forced] = sae.components_.copy()
        fvu[forced] = sae.history_[-1]["fvu"]
    # the same selections; the values differ by float32 rounding (the BLAS's or ours)
    np.testing.assert_allclose(weights[True], weights[False], atol=1e-3, rtol=0)
    assert abs(fvu[True] - fvu[False]) < 1e-4


def test_encoding_with_the_bfloat16_product_is_exact_and_chunk_free(forced_bf16: None) -> None:
    model = small_model("topk")
    X = torch.randn(2500, 48, generator=torch.Generator().manual_seed(2))
    dense = encode_dense(model, X.split(700), len(X))
    again = encode_dense(model, X.split(333), len(X))
    assert torch.equal(dense, again)  # codes do not depend on the chunks
    csr = encode_csr(model, X.split(1000))
    np.testing.assert_array_equal(csr.toarray(), dense.numpy())
    with torch.no_grad():
        plain = model.encode(X)
    assert torch.equal(dense != 0, plain != 0)
    torch.testing.assert_close(dense, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_rows", [10, 4000])  # torch's zeros; a fresh mapping
def test_zero_outputs_hold_zeros(n_rows: int) -> None:
    out = zero_output((n_rows, 700), torch.empty(0))
    assert out.shape == (n_rows, 700) and out.dtype == torch.float32
    assert not out.any()


def test_float64_weights_multiply_in_float32(forced_bf16: None) -> None:
    assert bf16_preacts.product_for(torch.randn(9, 16, dtype=torch.float64)) is None
    assert bf16_preacts.product_for(torch.randn(9, 16)) is not None


def test_the_choice_follows_the_hardware() -> None:
    saved = bf16_preacts.FORCED
    bf16_preacts.FORCED = None
    try:
        assert bf16_preacts.pays(520) == bf16_preacts.has_amx()
        assert not bf16_preacts.pays(bf16_preacts.MIN_WIDTH - 8)
    finally:
        bf16_preacts.FORCED = saved


def test_training_selection_is_the_same_on_any_number_of_threads(forced_bf16: None) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 48, generator=g)  # 2 pieces, the last one short
    W, b = torch.randn(48, 320, generator=g), torch.randn(320, generator=g)
    dead = torch.arange(0, 320, 5)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            top = topk_selection.select(x, W, b, 7, dead)
            assert top.dead_BU is not None
            results.append((top.dead_BU.clone(), top.values, top.units, top.offsets))
    finally:
        torch.set_num_threads(before)
    for one, two in zip(results[0], results[1], strict=True):
        assert torch.equal(one, two)
    torch.testing.assert_close(results[0][0], (x @ W + b)[:, dead], rtol=1e-5, atol=1e-4)
    xa, Wa = affine_operands(x, W, b)
    want_values, want_units = reference_topk(exact(xa, Wa), 7)
    np.testing.assert_array_equal(results[0][2].view(-1, 7).numpy(), want_units)
    np.testing.assert_array_equal(results[0][1].view(-1, 7).numpy(), want_values)


@pytest.mark.parametrize("crowd", [0.0, 1e-4])
def test_refined_gate_is_the_exact_gate(crowd: float) -> None:
    xa, Wa = operands(60, 20, 150, 7, crowd)
    q = exact(xa, Wa).astype(np.float32)
    # cut-offs right among the values: bfloat16 cannot tell which side many fall on
    cut = torch.from_numpy(np.quantile(q, 0.9, axis=0).astype(np.float32))
    want = sparse_kernels.gate_rows(torch.from_numpy(q), cut, "csr")
    approx, refine = approx_and_refine(xa, Wa)
    found = sparse_kernels.gate_rows(approx, cut, "csr", refine)
    assert want is not None and found is not None
    for ours, theirs in zip(found, want, strict=True):
        assert torch.equal(ours, theirs)
    dense = torch.full(approx.shape, float("nan"))
    assert sparse_kernels.gate_rows(approx, cut, "dense", refine, dense) == ()
    np.testing.assert_array_equal(dense.numpy(), np.where(q > cut.numpy(), q, 0))


def test_batchtopk_encoding_with_the_bfloat16_product(forced_bf16: None) -> None:
    model = small_model("batchtopk")
    X = torch.randn(2500, 48, generator=torch.Generator().manual_seed(4))  # > 4 MiB: mapped
    with torch.no_grad():
        model.batch_threshold.fill_(0.5)
        plain = model.encode(X)
    dense = encode_dense(model, X.split(400), len(X))
    csr = encode_csr(model, X.split(600))
    np.testing.assert_array_equal(csr.toarray(), dense.numpy())
    assert torch.equal(dense != 0, plain != 0)
    torch.testing.assert_close(dense, plain, atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(
        st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
        min_size=1,
        max_size=40,
    )
)
def test_inputs_are_rounded_as_torch_rounds_them(values: list[float]) -> None:
    xa = torch.tensor(values, dtype=torch.float32)[None].repeat(2, 1)
    x16 = torch.empty(xa.shape, dtype=torch.bfloat16)
    product = bf16_preacts.Product(torch.ones(xa.shape[1], 3))
    refine = product.into(xa, x16, torch.empty(2, 3, dtype=torch.bfloat16))
    want = xa.to(torch.bfloat16)
    assert torch.equal(x16.isnan(), want.isnan())
    assert torch.equal(x16[~want.isnan()], want[~want.isnan()])
    a = np.array(values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        moved = want[0].double().numpy() - a  # what the rounding changed, exact in float64
        norms = np.full(2, np.sqrt(np.sum(a * a)))
        moves = np.full(2, np.sqrt(np.sum(moved * moved)))
        want_slack = product.slack(norms, moves)
    np.testing.assert_allclose(refine.slack, want_slack, rtol=1e-6)
    assert np.all(refine.slack > 0)  # inf where a NaN or inf input leaves no bound


@settings(max_examples=30, deadline=None)
@given(
    n_units=st.integers(1, 40),
    width=st.integers(1, 40),
    scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]),
    seed=st.integers(0, 10**6),
)
def test_weight_norms_measure_torchs_rounding(n_units, width, scale, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(width, n_units, generator=g) * scale
    product = bf16_preacts.Product(W)
    W64 = W.double()
    moved = W.to(torch.bfloat16).double() - W64
    np.testing.assert_allclose(product.w_max, float(W64.norm(dim=0).max()), rtol=1e-12)
    np.testing.assert_allclose(product.dw_max, float(moved.norm(dim=0).max()), rtol=1e-12)


def test_weights_without_a_bound_make_every_value_a_candidate() -> None:
    W = torch.randn(8, 5)
    W[3, 2] = float("nan")
    product = bf16_preacts.Product(W)
    assert product.w_max == np.inf and product.dw_max == np.inf
    refine = product.into(torch.randn(4, 8), torch.empty(4, 8, dtype=torch.bfloat16),
                          torch.empty(4, 5, dtype=torch.bfloat16))  # fmt: skip
    assert np.all(refine.slack == np.inf)


def test_keys_order_every_bfloat16_as_its_value() -> None:
    from sae_widgets.sae._numba_bf16_bits import _key, _key_at_most, _value_of

    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    values = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
    numbers = ~np.isnan(values)
    keys = np.array([_key(b) for b in bits[numbers]])
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(values[numbers][order]) >= 0)
    word = np.empty(1, np.uint32)
    back = np.array([_value_of(np.int16(q), word) for q in keys], dtype=np.float32)
    assert np.array_equal(back.view(np.uint32), values[numbers].view(np.uint32))
    rng = np.random.default_rng(0)
    cuts = rng.standard_normal(300) * 10.0 ** rng.integers(-45, 39, 300)
    specials = [0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e39, -1e39, np.inf, -np.inf]
    for cut in [*cuts, *specials]:
        reach = values[numbers].astype(np.float64) >= cut
        assert np.all(keys[reach] >= _key_at_most(cut, word)), cut


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 2 * RANKED_MAX + 20),
    k_share=st.floats(0.0, 1.0),
    levels=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),
)
def test_top_in_order_keeps_the_k_largest_ties_to_the_lowest_units(n, k_share, levels, seed):
    """Both ways of `_top_in_order` (ranks up to RANKED_MAX candidates, quickselect above)
    keep the k largest in unit order, of values tied at the k-th the lowest units: what a
    stable sort by decreasing value gives. Few levels make many ties."""
    rng = np.random.default_rng(seed)
    k = 1 + int(k_share * (n - 1))
    values = (rng.integers(0, levels, n) - levels / 3).astype(np.float32) / 7
    units = np.sort(rng.choice(10 * n + 10, n, replace=False)).astype(np.int64)
    scratch = np.empty(max(n, RANKED_MAX + 16), np.float32)
    ranks = np.empty(RANKED_MAX + 16, np.int32)
    out_values, out_units = np.empty(k, np.float32), np.empty(k, np.int64)
    _top_in_order(values, units, n, k, out_values, out_units, scratch, ranks)
    kept = np.sort(np.argsort(-values, kind="stable")[:k])
    np.testing.assert_array_equal(out_units, units[kept])
    np.testing.assert_array_equal(out_values, values[kept])


@settings(max_examples=80, deadline=None)
@given(
    n_groups_per_k=st.integers(4, 12),
    k=st.integers(1, 40),
    spread=st.integers(1, 3 * KEY_SPAN),
    centre=st.integers(-30_000, 30_000),
    seed=st.integers(0, 2**31 - 1),
)
def test_key_cutoff_is_the_kth_largest_group_maximum(n_groups_per_k, k, spread, centre, seed):
    """`_key_cutoff` never exceeds the k-th largest group maximum (k values reach it), and
    equals it where the maxima above its first bound span fewer than KEY_SPAN keys."""
    rng = np.random.default_rng(seed)
    n_groups = n_groups_per_k * k
    maxima = np.clip(centre + rng.integers(-spread, spread + 1, n_groups), -32_000, 32_000)
    maxima = maxima.astype(np.int16)
    args = (np.empty(k, np.int16), np.empty(n_groups, np.int64), np.empty(n_groups, np.int16))
    cut = _key_cutoff(maxima, k, *args, np.empty(k, np.int16), np.empty(KEY_SPAN, np.int32))
    kth = np.sort(maxima)[::-1][k - 1]
    assert cut <= kth
    bound = maxima.reshape(-1, k).max(0).min()
    if int(maxima.max()) - int(bound) < KEY_SPAN:
        assert cut == kth
