"""Fuzz round 5 of the public API: inputs earlier rounds did not try (torch dtypes numpy
lacks, ...). Each test pins a defect a user hit; the fix is in the commit that added it."""

from __future__ import annotations

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


@pytest.mark.parametrize("dtype", _ODD_TORCH_DTYPES, ids=str)
def test_odd_dtype_tensors_with_bad_values_are_still_refused(
    fitted: sw.SAE, dtype: torch.dtype
) -> None:
    if not dtype.is_floating_point:
        pytest.skip("integers hold no NaN")
    X = torch.tensor([[float("nan")] * D]).to(dtype)
    if not bool(torch.isnan(X.float()).any()):
        pytest.skip(f"{dtype} has no NaN")
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.transform(X)
