"""CodeStore against brute-force reads of the dense codes it was built from."""

import numpy as np
import pytest
import scipy.sparse as sp

from sae_widgets.analysis.codes import CodeStore, gather_rows


def topk_codes(n=300, n_units=40, k=5, seed=0):
    """Dense TopK-like codes: k non-negative values per row, one dead unit, one dense unit."""
    rng = np.random.default_rng(seed)
    codes = np.zeros((n, n_units), dtype=np.float32)
    for i in range(n):
        units = rng.choice(n_units - 1, size=k - 1, replace=False)  # unit n_units-1 stays dead
        codes[i, units] = rng.random(k - 1, dtype=np.float32) + 0.01
    codes[:, 0] = rng.random(n, dtype=np.float32) + 0.5  # unit 0 fires everywhere
    return codes


def test_per_unit_vectors_match_dense():
    Z = topk_codes()
    store = CodeStore(Z)
    fired = Z != 0
    assert (store.n_samples, store.n_units) == Z.shape
    assert store.nnz == fired.sum()
    np.testing.assert_array_equal(store.counts, fired.sum(0))
    np.testing.assert_allclose(store.sums, Z.sum(0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_array_equal(store.max_activation, Z.max(0))
    np.testing.assert_allclose(store.frequency, fired.mean(0))
    mean = np.where(fired.any(0), Z.sum(0) / np.maximum(fired.sum(0), 1), 0)
    np.testing.assert_allclose(store.mean_activation, mean, rtol=1e-6)
    assert store.counts[-1] == 0 and store.max_activation[-1] == 0
    assert store.counts[0] == Z.shape[0]


def test_reads_by_unit_and_by_sample_match_dense():
    Z = topk_codes()
    store = CodeStore(Z)
    for unit in (0, 3, 39):
        samples, values = store.unit_samples(unit)
        np.testing.assert_array_equal(samples, np.flatnonzero(Z[:, unit]))
        np.testing.assert_array_equal(values, Z[samples, unit])
    for sample in (0, 17, 299):
        units, values = store.sample_units(sample)
        np.testing.assert_array_equal(units, np.flatnonzero(Z[sample]))
        np.testing.assert_array_equal(values, Z[sample, units])


def test_dense_and_rows_entries_match_dense_indexing():
    Z = topk_codes()
    store = CodeStore(Z)
    rows = np.array([5, 2, 5, 299])
    units = np.array([3, 0, 3, 39, 7])  # repeated unit and dead unit
    np.testing.assert_array_equal(store.dense(rows), Z[rows])
    np.testing.assert_array_equal(store.dense(rows, units), Z[rows][:, units])
    owner, unit, value = store.rows_entries(rows)
    rebuilt = np.zeros((len(rows), Z.shape[1]), dtype=np.float32)
    rebuilt[owner, unit] = value
    np.testing.assert_array_equal(rebuilt, Z[rows])
    assert store.dense([], units).shape == (0, len(units))


def test_gather_rows_handles_empty_rows():
    indptr = np.array([0, 2, 2, 5, 6])
    positions, owner = gather_rows(indptr, np.array([3, 1, 2, 0]))
    np.testing.assert_array_equal(positions, [5, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(owner, [0, 2, 2, 2, 3, 3])


def test_explicit_zeros_are_dropped_and_input_is_not_modified():
    Z = topk_codes()
    csr = sp.csr_matrix(Z)
    csr.data[::3] = 0.0  # explicit zeros, as TopK gives when a kept preactivation is <= 0
    before = csr.copy()
    store = CodeStore(csr)
    assert store.nnz == np.count_nonzero(csr.toarray())
    np.testing.assert_array_equal(store.counts, (csr.toarray() != 0).sum(0))
    assert csr.nnz == before.nnz and np.array_equal(csr.data, before.data)


def test_nbytes_counts_both_views_and_is_far_below_dense():
    Z = topk_codes(n=2000, n_units=512, k=8)
    store = CodeStore(Z)
    nnz_bytes = store.nnz * (4 + 4)  # float32 value + int32 index, per view
    assert 2 * nnz_bytes <= store.nbytes <= 2 * nnz_bytes + 2 * 4 * (2001 + 513) + 20 * 512
    assert store.nbytes < Z.nbytes / 10


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        (np.zeros(5), ValueError),
        (np.zeros((0, 3)), ValueError),
        (np.array([[1.0, np.nan]]), ValueError),
    ],
)
def test_bad_codes_raise(codes, error):
    with pytest.raises(error, match="codes"):
        CodeStore(codes)


def test_bad_indices_name_the_argument():
    store = CodeStore(topk_codes())
    with pytest.raises(ValueError, match=r"unit must be in \[0, 40\); got 40"):
        store.unit_samples(40)
    with pytest.raises(TypeError, match="unit must be an int"):
        store.unit_samples(1.5)
    with pytest.raises(ValueError, match=r"samples must hold indices in \[0, 300\); got -1"):
        store.dense([-1])
    with pytest.raises(TypeError, match="samples must hold integer indices"):
        store.dense([0.5])
