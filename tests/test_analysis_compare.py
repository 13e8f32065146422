"""SAE-vs-SAE matching against brute force, its invariances, the unit kinds, bad input."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.compare import KINDS, compare_saes
from sae_widgets.analysis.matching import (
    decoder_cosines,
    hungarian_matches,
    nearest_matches,
)


def random_decoders(n_a, n_b, d=6, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n_a, d)), rng.standard_normal((n_b, d))
    if positive:
        a, b = np.abs(a), np.abs(b)
    return a.astype(np.float32), b.astype(np.float32)


def brute_cosines(a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 /= np.linalg.norm(a64, axis=1, keepdims=True)
    b64 /= np.linalg.norm(b64, axis=1, keepdims=True)
    return a64 @ b64.T


def brute_assignment(cos):
    """The best one-to-one matching by trying every injection of the narrower side."""
    n_a, n_b = cos.shape
    best, best_pairs = -np.inf, None
    if n_a <= n_b:
        for cols in itertools.permutations(range(n_b), n_a):
            total = sum(cos[i, j] for i, j in enumerate(cols))
            if total > best:
                best, best_pairs = total, {i: j for i, j in enumerate(cols)}
    else:
        for rows in itertools.permutations(range(n_a), n_b):
            total = sum(cos[i, j] for j, i in enumerate(rows))
            if total > best:
                best, best_pairs = total, {i: j for j, i in enumerate(rows)}
    return best, best_pairs


@pytest.mark.parametrize(("n_a", "n_b", "seed"), [(4, 4, 0), (3, 6, 1), (6, 3, 2), (5, 5, 3)])
def test_hungarian_equals_brute_force_assignment(n_a, n_b, seed):
    a, b = random_decoders(n_a, n_b, seed=seed)
    cos = brute_cosines(a, b)
    best, pairs = brute_assignment(cos)
    found = hungarian_matches(a, b)
    assert found.exact
    assert {int(i): int(j) for i, j in zip(*found.pairs[:2])} == pairs
    assert float(np.sum(found.pairs[2], dtype=np.float64)) == pytest.approx(best, abs=1e-5)
    for i, j in pairs.items():
        assert found.a_of_b[j] == i
        assert found.cos_b[j] == pytest.approx(cos[i, j], abs=1e-6)
    unmatched_a = sorted(set(range(n_a)) - set(pairs))
    assert list(np.flatnonzero(found.b_of_a < 0)) == unmatched_a
    assert np.isnan(found.cos_a[unmatched_a]).all()


@pytest.mark.parametrize(("n_a", "n_b"), [(5, 5), (4, 7), (7, 4)])
def test_sparse_candidate_matching_equals_dense_when_candidates_cover_everything(n_a, n_b):
    a, b = random_decoders(n_a, n_b, seed=n_a * 10 + n_b, positive=True)
    dense = hungarian_matches(a, b)
    sparse = hungarian_matches(a, b, max_dense=1, candidates=max(n_a, n_b))
    assert dense.exact and not sparse.exact
    np.testing.assert_array_equal(sparse.b_of_a, dense.b_of_a)
    np.testing.assert_array_equal(sparse.a_of_b, dense.a_of_b)
    np.testing.assert_allclose(sparse.cos_a, dense.cos_a, atol=1e-6)


def test_sparse_candidate_matching_keeps_the_clear_pairs_of_a_large_comparison():
    rng = np.random.default_rng(5)
    b = rng.standard_normal((300, 32)).astype(np.float32)
    a = b[:120] + 0.05 * rng.standard_normal((120, 32)).astype(np.float32)  # clear matches
    sparse = hungarian_matches(a, b, max_dense=1000, candidates=4)
    assert not sparse.exact
    np.testing.assert_array_equal(sparse.b_of_a, np.arange(120))


def brute_nearest(cos, n):
    order = [sorted(range(cos.shape[1]), key=lambda j, row=row: (-row[j], j))[:n] for row in cos]
    return np.array(order), np.take_along_axis(cos, np.array(order), axis=1)


@pytest.mark.parametrize("block_entries", [1, 7, 1 << 22])
@pytest.mark.parametrize("absolute", [False, True])
def test_nearest_equals_brute_force_in_any_block_size(block_entries, absolute):
    a, b = random_decoders(9, 6, seed=4)
    cos = brute_cosines(a, b)
    if absolute:
        cos = np.abs(cos)
    found = nearest_matches(a, b, 4, absolute=absolute, block_entries=block_entries)
    units, values = brute_nearest(cos, 4)
    np.testing.assert_array_equal(found.a_to_b, units)
    np.testing.assert_allclose(found.cos_a_to_b, values, atol=1e-6)
    units, values = brute_nearest(cos.T, 4)
    np.testing.assert_array_equal(found.b_to_a, units)
    np.testing.assert_allclose(found.cos_b_to_a, values, atol=1e-6)
    np.testing.assert_allclose(decoder_cosines(a, b, absolute=absolute), cos, atol=1e-6)


def test_nearest_keeps_at_most_the_other_sides_width():
    a, b = random_decoders(3, 2)
    found = nearest_matches(a, b, 5)
    assert found.a_to_b.shape == (3, 2) and found.b_to_a.shape == (2, 3)


def comparison_fields(result):
    return (
        result.nearest.a_to_b,
        result.nearest.b_to_a,
        result.assignment.b_of_a,
        result.assignment.a_of_b,
        result.kind_a,
        result.kind_b,
    )


def test_results_follow_a_permutation_of_the_units():
    a, b = random_decoders(7, 9, seed=6)
    pa, pb = np.random.default_rng(0).permutation(7), np.random.default_rng(1).permutation(9)
    base = compare_saes(a, b, threshold=0.5, n_matches=3)
    moved = compare_saes(a[pa], b[pb], threshold=0.5, n_matches=3)
    inv_a, inv_b = np.argsort(pa), np.argsort(pb)
    # unit i of the permuted A is unit pa[i] of A; its matches are permuted B units
    np.testing.assert_array_equal(pb[moved.nearest.a_to_b], base.nearest.a_to_b[pa])
    np.testing.assert_array_equal(pa[moved.nearest.b_to_a], base.nearest.b_to_a[pb])
    np.testing.assert_array_equal(pb[moved.assignment.b_of_a], base.assignment.b_of_a[pa])
    np.testing.assert_array_equal(moved.kind_a[inv_a], base.kind_a)
    np.testing.assert_array_equal(moved.kind_b[inv_b], base.kind_b)


def test_results_ignore_row_scale_and_a_sign_flip_of_the_whole_space():
    a, b = random_decoders(6, 8, seed=7)
    base = compare_saes(a, b, threshold=0.4)
    scaled = compare_saes(a * np.arange(1, 7)[:, None], -b * 3, threshold=0.4, absolute=True)
    flipped = compare_saes(-a, -b, threshold=0.4)
    for got, want in zip(comparison_fields(flipped), comparison_fields(base)):
        np.testing.assert_array_equal(got, want)
    base_abs = compare_saes(a, b, threshold=0.4, absolute=True)
    for got, want in zip(comparison_fields(scaled), comparison_fields(base_abs)):
        np.testing.assert_array_equal(got, want)


def test_absolute_cosines_ignore_the_sign_of_each_unit():
    a, b = random_decoders(6, 8, seed=8)
    signs_a = np.where(np.random.default_rng(2).random(6) < 0.5, -1, 1)[:, None]
    signs_b = np.where(np.random.default_rng(3).random(8) < 0.5, -1, 1)[:, None]
    base = compare_saes(a, b, threshold=0.3, absolute=True)
    flipped = compare_saes(a * signs_a, b * signs_b, threshold=0.3, absolute=True)
    for got, want in zip(comparison_fields(flipped), comparison_fields(base)):
        np.testing.assert_array_equal(got, want)
    # signed cosines do see the flip: a unit and its negation are opposite features
    assert not np.array_equal(compare_saes(-a, b).assignment.cos_a, base.assignment.cos_a)


def toy_pair():
    """A: e0, (e1+e2)/√2, e3, e4, e5.  B: e0, e1, e2, (e3+e4)/√2, e6, e7."""
    eye = np.eye(8, dtype=np.float32)
    a = np.stack([eye[0], eye[1] + eye[2], eye[3], eye[4], eye[5]])
    b = np.stack([eye[0], eye[1], eye[2], eye[3] + eye[4], eye[6], eye[7]])
    return a, b


def test_units_are_sorted_into_shared_split_merge_and_new():
    a, b = toy_pair()
    result = compare_saes(a, b, threshold=0.6)
    assert list(result.kind_a) == ["shared", "split", "merge", "merge", "new"]
    assert list(result.kind_b) == ["shared", "split", "split", "merge", "new", "new"]
    assert result.counts("a") == {"shared": 1, "split": 1, "merge": 2, "new": 1}
    assert list(result.counts("b")) == list(KINDS)
    assert result.summary() == "1 shared, 1 split, 1 merged, 2 new (A units without a match: 1)"
    split = result.matches(1)
    assert (split.kind, split.side) == ("split", "a")
    np.testing.assert_array_equal(split.units[:2], [1, 2])
    np.testing.assert_allclose(split.cosines[:2], [2**-0.5] * 2, atol=1e-6)
    merged = result.matches(3, side="b")
    np.testing.assert_array_equal(merged.units[:2], [2, 3])
    assert merged.kind == "merge" and merged.hungarian in (2, 3)
    # above the pieces' cosine (0.707) nothing but e0 is shared
    strict = compare_saes(a, b, threshold=0.8)
    assert list(strict.kind_a) == ["shared", "new", "new", "new", "new"]
    assert strict.summary() == "1 shared, 0 split, 0 merged, 5 new (A units without a match: 4)"


def test_firing_frequencies_and_ratio_of_matched_pairs():
    a, b = toy_pair()
    rng = np.random.default_rng(0)
    codes_a = (rng.random((50, 5)) < [0.5, 0.4, 0.1, 0.1, 0.2]).astype(np.float32)
    codes_b = (rng.random((50, 6)) < [0.5, 0.2, 0.2, 0.2, 0.1, 0.1]).astype(np.float32)
    result = compare_saes(a, b, codes_a, codes_b, threshold=0.6)
    counts_a, counts_b = codes_a.sum(0), codes_b.sum(0)
    np.testing.assert_allclose(result.frequency_a, counts_a / 50)
    np.testing.assert_allclose(result.frequency_b, counts_b / 50)
    partner = result.assignment.b_of_a
    expected = np.log2((counts_a + 0.5) / (counts_b[partner] + 0.5))
    np.testing.assert_allclose(result.log2_ratio, expected)
    assert result.n_samples == 50
    for as_store in (CodeStore, sp.csr_matrix):
        again = compare_saes(a, b, as_store(codes_a), as_store(codes_b), threshold=0.6)
        np.testing.assert_allclose(again.log2_ratio, result.log2_ratio)
    assert compare_saes(a, b).log2_ratio is None


def test_a_fitted_sae_compared_with_itself_matches_every_unit_to_itself(digits_sae):
    sae, ds = digits_sae
    codes = sae.encode_sparse(ds.X)
    result = compare_saes(sae, sae, codes, codes, threshold=0.99)
    units = np.arange(sae.n_units)
    np.testing.assert_array_equal(result.assignment.b_of_a, units)
    np.testing.assert_array_equal(result.nearest.a_to_b[:, 0], units)
    np.testing.assert_allclose(result.assignment.cos_a, 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.log2_ratio, 0.0)
    assert set(result.kind_a) == {"shared"}
    with pytest.raises(ValueError, match="read-only"):
        result.kind_a[0] = "new"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"decoder_a": np.ones(4)}, ValueError, "decoder_a must be a non-empty 2-D"),
        ({"decoder_a": np.ones((0, 8))}, ValueError, "decoder_a must be a non-empty 2-D"),
        ({"decoder_b": np.ones((3, 7))}, ValueError, "decoder_b must have decoder_a's input"),
        ({"decoder_a": np.full((2, 8), np.nan)}, ValueError, "decoder_a must hold finite"),
        ({"decoder_b": np.array([["x"] * 8])}, TypeError, "decoder_b must be a real"),
        ({"decoder_a": "weights"}, TypeError, "decoder_a must be a real"),
        ({"threshold": 1.5}, ValueError, "threshold must be a cosine in"),
        ({"threshold": "high"}, TypeError, "threshold must be a float"),
        ({"n_matches": 0}, ValueError, "n_matches must be at least 1"),
        ({"codes_a": np.ones((4, 5))}, ValueError, "codes_b is missing"),
        (
            {"codes_a": np.ones((4, 5)), "codes_b": np.ones((4, 5))},
            ValueError,
            r"codes_b must have one column per unit \(6\)",
        ),
        (
            {"codes_a": np.ones((4, 5)), "codes_b": np.ones((3, 6))},
            ValueError,
            "codes_b must cover the same samples",
        ),
        ({"codes_a": np.ones(5), "codes_b": np.ones((4, 6))}, ValueError, "codes_a must be a 2-D"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    a, b = toy_pair()
    arguments = {"decoder_a": a, "decoder_b": b, **kwargs}
    with pytest.raises(error, match=match):
        compare_saes(**arguments)


def test_bad_unit_or_side_names_the_argument():
    result = compare_saes(*toy_pair())
    with pytest.raises(ValueError, match="unit must be in"):
        result.matches(5)
    with pytest.raises(ValueError, match="side must be 'a' or 'b'"):
        result.matches(0, side="c")
    with pytest.raises(ValueError, match="block_entries must be at least 1"):
        nearest_matches(*toy_pair(), block_entries=0)
