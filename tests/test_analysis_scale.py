"""Large-data paths of the analysis layer: PCA fitted on a sample, decimated scatter points."""

import mmap

import numpy as np
import pytest
import scipy.sparse as sp

from sae_widgets.analysis import display_subset, pca_projection
from sae_widgets.data.store import ActivationStore, StoreWriter


def _data(n=6000, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * np.r_[5.0, 3.0, np.ones(d - 2)]).astype(np.float32)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_pca_fitted_on_a_sample_projects_every_row(kind):
    X = _data()
    data = sp.csr_matrix(np.where(X > 1, X, 0)) if kind == "sparse" else X
    full = pca_projection(data, 2, fit_rows=None)
    sampled = pca_projection(data, 2, fit_rows=1500, seed=4)
    dense = data.toarray() if kind == "sparse" else data
    expected = (dense - sampled.mean) @ sampled.components.T
    np.testing.assert_allclose(sampled.coords, expected, rtol=1e-4, atol=1e-4)
    for j in range(2):  # the sample finds the same directions (up to sign)
        assert abs(np.corrcoef(full.coords[:, j], sampled.coords[:, j])[0, 1]) > 0.99
    assert sampled.coords.shape == (6000, 2) and sampled.coords.dtype == np.float32


def test_pca_of_a_store_reads_it_in_chunks(tmp_path):
    X = _data()
    with StoreWriter(tmp_path / "s", X.shape[1], shard_size=1000) as writer:
        writer.append(X)
    store = ActivationStore(tmp_path / "s")
    from_store = pca_projection(store.X, 2, source="inputs", fit_rows=2000, seed=1)
    from_array = pca_projection(X, 2, source="inputs", fit_rows=2000, seed=1)
    np.testing.assert_allclose(from_store.coords, from_array.coords, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="fit_rows must be at least 2"):
        pca_projection(X, 2, fit_rows=1)


def test_display_subset_is_bounded_stable_and_keeps_sparse_regions():
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(size=(50_000, 2)), [[40.0, 40.0], [-30.0, 25.0]]])
    keep = display_subset(coords, 2000, seed=3)
    assert len(keep) == 2000
    assert np.all(np.diff(keep) > 0)
    assert {50_000, 50_001} <= set(keep.tolist())  # outliers are drawn
    np.testing.assert_array_equal(keep, display_subset(coords, 2000, seed=3))
    np.testing.assert_array_equal(display_subset(coords[:100], 2000), np.arange(100))
    with pytest.raises(ValueError, match="coords must have shape"):
        display_subset(np.zeros(5), 3)


def _file_backed(array):
    while array is not None:
        if isinstance(array, np.memmap | mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


def test_codes_encoded_into_memory_mapped_files_equal_the_in_memory_store(tmp_path):
    import sae_widgets as sw
    from sae_widgets.analysis import CodeStore
    from sae_widgets.analysis.code_files import encode_to_folder, open_folder

    ds = sw.datasets.digits()
    sae = sw.SAE(n_units=48, k=5, epochs=1, seed=0).fit(ds.X, progress=False)
    memory = CodeStore.from_sae(sae, ds.X)
    mapped = encode_to_folder(sae, ds.X, tmp_path / "codes", chunk_size=500)
    for array in (mapped.csr.data, mapped.csr.indices, mapped.csc.data, mapped.csc.indices):
        assert _file_backed(array)  # not copied into memory
    for a, b in ((memory.csr, mapped.csr), (memory.csc, mapped.csc)):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(memory.counts, mapped.counts)
    np.testing.assert_allclose(memory.sums, mapped.sums)
    np.testing.assert_array_equal(memory.max_activation, mapped.max_activation)
    reopened = open_folder(tmp_path / "codes")
    np.testing.assert_array_equal(reopened.dense([0, 7]), memory.dense([0, 7]))
    ex = sw.Explorer(sae, ds, codes_dir=tmp_path / "ex")
    a, b = ex.unit_summary(3), sw.Explorer(sae, ds).unit_summary(3)
    np.testing.assert_array_equal(a.top_samples, b.top_samples)
    np.testing.assert_array_equal(a.histogram_counts, b.histogram_counts)
    np.testing.assert_array_equal(a.cofiring_units, b.cofiring_units)
    assert len(ex.display_samples(300)) <= 300
    with pytest.raises(ValueError, match="holds no encoded codes"):
        open_folder(tmp_path / "nothing")
