"""Fuzz round 5 of the public API: inputs earlier rounds did not try (torch dtypes numpy
lacks, ...). Each test pins a defect a user hit; the fix is in the commit that added it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw

D = 6

# torch dtypes whose min/max torch itself refuses on CPU ("min_all" not implemented for
# 'UInt16'), and float8, which numpy cannot hold either
_ODD_TORCH_DTYPES = [
    getattr(torch, name)
    for name in ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "bfloat16")
    if hasattr(torch, name)
]


@pytest.fixture(scope="module")
def fitted() -> sw.SAE:
    X = np.random.default_rng(0).standard_normal((32, D)).astype(np.float32)
    return sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(X, progress=False)


@pytest.mark.parametrize("dtype", _ODD_TORCH_DTYPES, ids=str)
def test_tensors_of_any_real_torch_dtype_fit_transform_and_evaluate(
    fitted: sw.SAE, dtype: torch.dtype
) -> None:
    values = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    X = values.to(dtype)
    expected = fitted.transform(values)
    np.testing.assert_allclose(fitted.transform(X), expected, rtol=1e-6, atol=1e-6)
    assert np.isfinite(sw.metrics.evaluate(fitted, X)["mse"])
    sae = sw.SAE(n_units=4, k=1, epochs=1, seed=0).fit(X, progress=False)
    assert sae.n_features_in_ == D
    labels = sw.Dataset(values, labels=torch.tensor([0.0, 1.0]).to(dtype)).labels
    assert labels is not None and labels.tolist() == [0, 1]


@pytest.mark.parametrize("dtype", [t for t in _ODD_TORCH_DTYPES if t.is_floating_point], ids=str)
def test_odd_dtype_tensors_with_bad_values_are_still_refused(
    fitted: sw.SAE, dtype: torch.dtype
) -> None:
    X = torch.tensor([[float("nan")] * D]).to(dtype)
    if not bool(torch.isnan(X.float()).any()):
        pytest.skip(f"{dtype} has no NaN")
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.transform(X)


# ---- collect_activations: layers whose outputs are not plain real rows ----------------------


class _Layer(torch.nn.Module):
    """A layer applying `fn` to its input (a model is nn.Sequential(_Layer(fn)))."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


def _collect(fn: Any, **kw: Any) -> sw.Dataset:
    ds = sw.Dataset(np.random.default_rng(0).random((20, 4)).astype(np.float32))
    return sw.collect_activations(torch.nn.Sequential(_Layer(fn)), layer="0", data=ds, **kw)


def test_a_sparse_layer_output_is_read_densely() -> None:
    # torch's "reshape is not implemented for sparse tensors" escaped
    acts = _collect(lambda x: (x * 2).to_sparse())
    expected = _collect(lambda x: x * 2).X
    np.testing.assert_array_equal(acts.X, expected)


def test_a_complex_layer_output_is_refused_naming_the_layer() -> None:
    # the imaginary part was dropped with only numpy's ComplexWarning
    with pytest.raises(TypeError, match=r"layer '0' output holds complex numbers"):
        _collect(lambda x: x.to(torch.complex64) * 1j)


def test_a_layer_whose_width_changes_between_batches_is_named() -> None:
    # numpy's "could not broadcast input array from shape (4,4) into shape (4,8)" escaped
    with pytest.raises(ValueError, match=r"layer '0' output has shape \(4, 4\).*first batch"):
        _collect(lambda x: torch.cat([x] * (2 if len(x) == 16 else 1), dim=1), batch_size=16)


def test_a_layer_with_no_values_per_sample_is_named() -> None:
    with pytest.raises(ValueError, match=r"layer '0' output has shape \(20, 0\)"):
        _collect(lambda x: x[:, :0])


def test_float64_outputs_beyond_float32_are_named_not_turned_into_inf() -> None:
    # they became inf and Dataset said only "X contains NaN or infinite values"
    with pytest.raises(ValueError, match=r"layer '0' produced float64 activations beyond"):
        _collect(lambda x: x.double() * 1e300)
    acts = _collect(lambda x: x.double() * 1e30)  # within float32: kept
    assert np.isfinite(acts.X).all() and acts.X.max() > 1e29


def test_a_store_of_a_layer_whose_width_changes_is_refused_and_not_left_behind(
    tmp_path: Any,
) -> None:
    out = tmp_path / "acts"
    with pytest.raises(ValueError, match=r"layer '0' output has shape"):
        _collect(
            lambda x: torch.cat([x] * (2 if len(x) == 16 else 1), dim=1), batch_size=16, out=out
        )
    assert not out.exists()


# ---- metrics given a Dataset where ground-truth directions are expected ---------------------


@pytest.mark.parametrize("metric", ["mmcs", "mcc", "uniqueness"])
def test_cosine_metrics_of_a_dataset_read_its_true_features_not_its_samples(metric: str) -> None:
    # mmcs(sae, ds) scored the decoder against the samples ds.X, silently
    ds = sw.datasets.superposition(n=200, n_features=8, dim=6, active=2.0, seed=0)
    sae = sw.SAE(n_units=16, k=2, epochs=1, seed=0).fit(ds, progress=False)
    score = getattr(sw.metrics, metric)
    assert score(sae, ds) == score(sae, ds.true_features)
    with pytest.raises(ValueError, match="true_features: the Dataset given has no true_features"):
        score(sae, sw.Dataset(ds.X))


# ---- pandas frames with pandas' own dtypes ---------------------------------------------------

_PANDAS_DTYPES = ["Float32", "Float64", "Int64", "UInt8", "boolean", "float64[pyarrow]"]


@pytest.mark.parametrize("dtype", _PANDAS_DTYPES)
def test_frames_of_nullable_or_pyarrow_numbers_work_like_numpy(fitted: sw.SAE, dtype: str) -> None:
    # fit(df) of read_csv(dtype_backend="pyarrow") said "X must hold numbers; got dtype object"
    pd = pytest.importorskip("pandas")
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    values = np.array([[0, 1, 0, 1, 1, 0], [1, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 1]], np.float32)
    frame = pd.DataFrame(values).astype(dtype)
    np.testing.assert_array_equal(fitted.transform(frame), fitted.transform(values))
    assert sw.metrics.evaluate(fitted, frame) == sw.metrics.evaluate(fitted, values)
    np.testing.assert_array_equal(sw.Dataset(frame).X, values)
    assert sw.SAE(n_units=4, k=1, epochs=1, seed=0).fit(frame, progress=False).n_features_in_ == D


def test_missing_values_in_a_frame_are_named_as_nan(fitted: sw.SAE) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.ones((2, D))).astype("Float64")
    frame.iloc[1, 2] = pd.NA
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.transform(frame)
    with pytest.raises(ValueError, match="X contains NaN"):
        sw.Dataset(frame)
    with pytest.raises(ValueError, match="X contains NaN"):
        sw.metrics.evaluate(fitted, frame)


def test_frames_of_strings_are_still_refused_not_parsed(fitted: sw.SAE) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.ones((2, D))).astype(str)  # "1.0": numbers only in appearance
    with pytest.raises(TypeError, match="X must hold numbers"):
        fitted.transform(frame)
    with pytest.raises(TypeError, match="X"):
        sw.Dataset(frame)
