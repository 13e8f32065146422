"""Fuzz round 6 of the public API: inputs earlier rounds did not try (huge generator sizes,
saving into the working folder, ...). Each test pins a defect a user hit; the fix is in the
commit that added it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sae_widgets as sw
from sae_widgets import analysis as A


@pytest.fixture(scope="module")
def fitted() -> sw.SAE:
    X = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
    return sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(X, progress=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sw.datasets.firing_probabilities(10**13, 1.0),
        lambda: sw.datasets.firing_probabilities(10**13, 1.0, firing="zipf"),
        lambda: sw.datasets.superposition(n=4, n_features=10**13, dim=1, active=1.0),
    ],
    ids=["uniform", "zipf", "superposition"],
)
def test_more_features_than_memory_are_refused_naming_n_features(call: object) -> None:
    # was numpy's raw MemoryError ("Unable to allocate 72.8 TiB") from np.full(n_features)
    with pytest.raises(ValueError, match="n_features would need"):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("spelling", [".", "", "abs", "parent"])
def test_saving_into_the_working_folder_is_refused_and_leaves_it_in_place(
    fitted: sw.SAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # The swap renamed the working folder away: the process was left in a deleted folder
    # (os.getcwd() then raised FileNotFoundError, and so did the next save("")).
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    monkeypatch.chdir(work / "inner" if spelling == "parent" else work)
    folder = {".": ".", "": "", "abs": str(work), "parent": ".."}[spelling]
    with pytest.raises(ValueError, match=r"folder: .* is the working folder or one above it"):
        fitted.save(folder)
    assert Path(os.getcwd()).exists() and Path.cwd().samefile(os.getcwd())
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging left
    fitted.save("run")  # a subfolder of the working folder still saves
    assert sw.SAE.load("run").n_features_in_ == 5


def test_saving_over_a_checkpoint_that_is_the_working_folder_keeps_it(
    fitted: sw.SAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted.save(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(ValueError, match="working folder"):
        fitted.save(".")
    assert sorted(os.listdir(".")) == ["cfg.json", "sae_weights.safetensors"]
    assert Path.cwd().samefile(tmp_path / "run")


# ----------------------------------------------------------------- analysis


def _codes(n: int = 50, units: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.abs(rng.normal(size=(n, units))) * (rng.random((n, units)) < 0.5)


@pytest.mark.parametrize("as_sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("fit_rows", [None, 10], ids=["all", "sampled"])
def test_projection_past_float32_is_refused_not_inf(as_sparse: bool, fit_rows: int | None) -> None:
    # float64 codes of 1e300: dense gave inf coordinates, sparse an OverflowError
    data = _codes() * 1e300
    given = sp.csr_matrix(data) if as_sparse else data
    with pytest.raises(ValueError, match="beyond float32's range"):
        A.pca_projection(given, fit_rows=fit_rows)


def test_projection_of_float32_data_near_its_maximum_is_right() -> None:
    # the scale rounded up to 2**128 (inf in float32): the data became 0, the mean NaN
    base = _codes().astype(np.float32)
    factor = np.float32(3.3e38 / base.max())  # the largest value is 3.3e38 > 2**127.5
    small, huge = A.pca_projection(base), A.pca_projection(base * factor)
    assert np.isfinite(huge.coords).all() and np.isfinite(huge.mean).all()
    for j in range(2):
        expected = small.coords[:, j].astype(np.float64) * float(factor)
        sign = np.sign(huge.coords[:, j].astype(np.float64) @ expected) or 1.0
        np.testing.assert_allclose(sign * huge.coords[:, j], expected, rtol=1e-3, atol=1e30)


def test_projection_takes_a_codestore_and_names_nan_in_sparse_data() -> None:
    codes = _codes()
    via_store = A.pca_projection(A.CodeStore(codes))  # was "object ... has no len()"
    np.testing.assert_allclose(via_store.coords, A.pca_projection(sp.csr_matrix(codes)).coords)
    bad = sp.csr_matrix(codes)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="data must be finite"):
        A.pca_projection(bad)  # was ARPACK's error
    with pytest.raises(TypeError, match="data must be an"):
        A.pca_projection(object())


@pytest.mark.parametrize("odd", ["nan", "inf", "huge"])
def test_display_subset_of_odd_coordinates_gives_distinct_indices(odd: str) -> None:
    # NaN, inf and coordinates of 1e308 (whose span overflows) gave a negative grid cell:
    # numpy's "'list' argument must have no negative elements" from bincount
    rng = np.random.default_rng(0)
    coords = rng.uniform(-1.0, 1.0, size=(200, 2))
    if odd == "huge":
        coords *= 1.5e308  # max - min overflows float64
    else:
        coords[rng.random((200, 2)) < 0.1] = {"nan": np.nan, "inf": np.inf}[odd]
    subset = A.display_subset(coords, 50)
    assert subset.shape == (50,) and len(set(subset.tolist())) == 50
    assert subset.min() >= 0 and subset.max() < 200


def test_unit_summary_sizes_past_memory_are_refused_and_many_intervals_are_linear() -> None:
    store, decoder = A.CodeStore(_codes(500)), np.random.default_rng(1).normal(size=(6, 4))
    with pytest.raises(ValueError, match=r"n_bins=10+\) would need"):
        A.unit_summary(store, 0, decoder, n_bins=10**12)  # was numpy's MemoryError
    with pytest.raises(ValueError, match=r"n_intervals=10+\) would need"):
        A.unit_summary(store, 0, decoder, n_intervals=10**9)  # was a loop of 1e9 scans
    summary = A.unit_summary(store, 0, decoder, n_intervals=20_000, per_interval=3)
    assert len(summary.intervals) == 20_000
    assert sum(i.count for i in summary.intervals) == summary.count
    for interval in summary.intervals:
        assert len(interval.samples) == min(3, interval.count)
        assert ((interval.values > interval.low) | (interval.low == summary.intervals[0].low)).all()
        assert (interval.values <= interval.high).all()


@pytest.mark.parametrize("as_sparse", [False, True], ids=["dense", "sparse"])
def test_compare_saes_refuses_nan_codes(as_sparse: bool) -> None:
    # NaN != 0: a unit of NaN codes was counted as firing on every sample
    rng = np.random.default_rng(0)
    decoder_a, decoder_b = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    codes_a = np.ones((3, 6))
    codes_a[1, 2] = np.nan
    given = sp.csr_matrix(codes_a) if as_sparse else codes_a
    with pytest.raises(ValueError, match="codes_a contains NaN"):
        A.compare_saes(decoder_a, decoder_b, codes_a=given, codes_b=np.ones((3, 5)))


# ----------------------------------------------------------------- checkpoints


def test_a_relu_checkpoint_with_a_corrupt_saved_k_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    # relu ignores k, so metadata.params.k="x" "described" the weights and was kept unchecked:
    # the SAE loaded, then every partial_fit raised "k must be None or a positive integer"
    import json

    X = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    sw.SAE(n_units=6, activation="relu", k=3, epochs=1).fit(X, progress=False).save(tmp_path)
    cfg_path = tmp_path / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metadata"]["params"]["k"] = "x"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"metadata\.params\.k is not a valid SAE parameter"):
        sw.SAE.load(tmp_path)
    cfg["metadata"]["params"]["k"] = 5  # a valid, unused k still loads, kept, and trains
    cfg_path.write_text(json.dumps(cfg))
    loaded = sw.SAE.load(tmp_path)
    assert loaded.k == 5
    loaded.partial_fit(X)


# ----------------------------------------------------------------- modules built by hand


def _weights(d: int = 4, units: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "W_enc": rng.normal(size=(d, units)),
        "b_enc": np.zeros(units),
        "W_dec": rng.normal(size=(units, d)),
        "b_dec": np.zeros(d),
    }


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300], ids=["nan", "inf", "past-float32"])
@pytest.mark.parametrize("name", ["W_enc", "b_enc", "W_dec", "b_dec"])
def test_from_weights_refuses_weights_that_are_not_finite_in_float32(name: str, bad: float) -> None:
    # taken as they were: every code (or reconstruction) of the module was NaN
    weights = _weights()
    weights[name].flat[0] = bad
    cfg = sw.SAEConfig(d_in=4, n_units=8, k=2)
    with pytest.raises(ValueError, match=f"{name} holds NaN or infinite values"):
        sw.SparseAutoencoder.from_weights(cfg, **weights)


def test_from_weights_names_a_bad_threshold_and_non_numbers() -> None:
    cfg = sw.SAEConfig(d_in=4, n_units=8, activation="jumprelu")
    with pytest.raises(ValueError, match="threshold holds NaN"):
        sw.SparseAutoencoder.from_weights(cfg, **_weights(), threshold=np.full(8, np.nan))
    weights = {**_weights(), "W_dec": np.full((8, 4), "a")}
    with pytest.raises(TypeError, match="W_dec must hold real numbers"):  # was torch's error
        sw.SparseAutoencoder.from_weights(cfg, **weights, threshold=0.1)
    module = sw.SparseAutoencoder.from_weights(  # torch float64 and numpy weights still work
        cfg, **{k: torch.from_numpy(v) for k, v in _weights().items()}, threshold=0.1
    )
    assert module.W_enc.dtype == torch.float32
    assert torch.allclose(module.threshold, torch.full((8,), 0.1))


@pytest.mark.parametrize("name", ["bandwidth", "init_threshold"])
def test_config_floats_take_numpy_scalars(name: str) -> None:
    # np.float32(0.1) (e.g. from a parameter grid) was "must be a positive finite number"
    cfg = sw.SAEConfig(d_in=4, n_units=8, activation="jumprelu", **{name: np.float32(0.25)})
    assert getattr(cfg, name) == 0.25 and type(getattr(cfg, name)) is float
    with pytest.raises(ValueError, match=name):
        sw.SAEConfig(d_in=4, n_units=8, activation="jumprelu", **{name: np.float32(np.nan)})


# ----------------------------------------------------------------- interventions


@pytest.fixture(scope="module")
def spliced() -> tuple[torch.nn.Module, sw.SAE]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    acts = sw.collect_activations(model, layer="1", data=X)
    return model, sw.SAE(n_units=16, k=3, epochs=1, seed=0).fit(acts, progress=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_edit_rows_takes_numpy_and_answers_numpy(
    spliced: tuple[torch.nn.Module, sw.SAE], dtype: type
) -> None:
    # was AttributeError: 'numpy.ndarray' object has no attribute 'to'
    model, sae = spliced
    edit = sw.Intervention(model, "1", sae, set={0: 1.0})
    rows = (np.random.default_rng(1).random((3, 8)) * 3).astype(dtype)
    got = edit.edit_rows(rows)
    expected = edit.edit_rows(
        torch.from_numpy(rows.astype(np.float32) if dtype is np.int64 else rows)
    )
    assert isinstance(got, np.ndarray) and got.shape == (3, 8)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="x must be a torch tensor or numpy array"):
        edit.edit_rows(rows.tolist())


@pytest.mark.parametrize("edit", ["set", "add", "steer"])
def test_an_edit_value_given_as_text_is_a_type_error(
    spliced: tuple[torch.nn.Module, sw.SAE], edit: str
) -> None:
    # float("1") took the text: set={0: "1"} ran as set={0: 1.0}
    model, sae = spliced
    with pytest.raises(TypeError, match=rf"{edit}\[0\] must be a number; got '1'"):
        sw.Intervention(model, "1", sae, **{edit: {0: "1"}})


# ----------------------------------------------------------------- explorer


@pytest.fixture(scope="module")
def explorer() -> sw.Explorer:
    ds = sw.datasets.superposition(n=60, n_features=8, dim=5, active=2, seed=0)
    sae = sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(ds, progress=False)
    return sw.Explorer(sae, ds)


@pytest.mark.parametrize("kind", ["mask", "slice", "negative", "negative int"])
def test_probe_takes_what_dataset_indexing_takes(explorer: sw.Explorer, kind: str) -> None:
    # a boolean mask was "samples must hold integer indices; got dtype bool", a negative
    # index "must be in [0, 60)", though ds[...] and Explorer.reconstruct take both
    n = explorer.n_samples
    index = {
        "mask": np.arange(n) % 7 == 0,
        "slice": slice(-10, None, 3),
        "negative": [-1, -2],
        "negative int": -1,
    }[kind]
    rows = np.atleast_1d(np.arange(n)[index])
    got = explorer.probe(index, "feature_1")
    expected = explorer.probe(rows.tolist(), "feature_1")
    np.testing.assert_array_equal(got.samples, rows)
    np.testing.assert_array_equal(got.response, expected.response)
    assert len(explorer.dataset[index]) == len(rows)
    with pytest.raises(ValueError, match="samples"):
        explorer.probe(np.zeros(n, dtype=bool), "feature_1")


# ----------------------------------------------------------------- analysis of tensors


_TENSOR_KINDS = {
    "requires_grad": lambda x: x.clone().requires_grad_(True),  # torch's RuntimeError
    "bfloat16": lambda x: x.bfloat16(),  # "Got unsupported ScalarType BFloat16"
}


@pytest.mark.parametrize("kind", sorted(_TENSOR_KINDS))
def test_analysis_functions_read_tensors_numpy_cannot_take_directly(kind: str) -> None:
    from sae_widgets.analysis.selection import samples_in_polygon

    convert = _TENSOR_KINDS[kind]
    torch.manual_seed(0)
    codes = torch.rand(30, 6) * (torch.rand(30, 6) < 0.5)
    coords, decoder = torch.randn(30, 2), torch.randn(6, 5)
    exact = codes.bfloat16().float() if kind == "bfloat16" else codes
    plain = A.CodeStore(exact.numpy())
    assert (A.CodeStore(convert(codes)).csr != plain.csr).nnz == 0
    np.testing.assert_allclose(
        A.pca_projection(convert(codes)).coords, A.pca_projection(exact.numpy()).coords, atol=1e-5
    )
    near = coords.bfloat16().float() if kind == "bfloat16" else coords
    np.testing.assert_array_equal(
        A.samples_in_rect(convert(coords), (0, 1), (0, 1)),
        A.samples_in_rect(near.numpy(), (0, 1), (0, 1)),
    )
    triangle = [(0, 0), (1, 0), (0, 1)]
    np.testing.assert_array_equal(
        samples_in_polygon(convert(coords), triangle), samples_in_polygon(near.numpy(), triangle)
    )
    assert A.display_subset(convert(coords), 5).shape == (5,)
    assert A.unit_summary(plain, 0, convert(decoder)).count == plain.counts[0]
    A.compare_saes(decoder, torch.randn(3, 5), codes_a=convert(codes), codes_b=np.ones((30, 3)))
    with pytest.raises(TypeError, match="codes must be a dense tensor"):
        A.CodeStore(codes.to_sparse())
