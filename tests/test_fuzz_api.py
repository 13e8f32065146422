"""Property-based tests of the SAE estimator (hypothesis): every generated input or parameter
value either works with finite results or raises one of our documented errors (ValueError,
TypeError or their subclasses) with a message naming the argument. Examples are bounded so
the file runs in well under a minute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sae_widgets as sw
from sae_widgets.sae.params import SAE_PARAMETERS
from sae_widgets.sae.training import NonFiniteLossError

FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
D = 6


@pytest.fixture(scope="module")
def fitted() -> sw.SAE:
    X = np.random.default_rng(0).standard_normal((64, D)).astype(np.float32)
    return sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(X, progress=False)


def _documented(error: BaseException, *names: str) -> None:
    """Our error contract: a ValueError/TypeError whose message names the argument."""
    assert isinstance(error, ValueError | TypeError), repr(error)
    assert any(name in str(error) for name in names), f"{error!r} does not name {names}"


# ---- fit / transform inputs ---------------------------------------------------------------

_dtypes = st.sampled_from(
    [np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64]
)
_elements = {
    np.float64: st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, 1e20, -1e20, 1e37, 3e38, 1e300, 5e-324, -0.0]),
    ),
    np.float32: st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.sampled_from([0.0, 1e20, -1e20, 1e37, 3e38, 1e-45, -0.0]),
    ),
}


def _arrays() -> st.SearchStrategy[Any]:
    numeric = _dtypes.flatmap(
        lambda dtype: hnp.arrays(
            dtype,
            st.tuples(st.integers(0, 5), st.sampled_from([0, 1, D, D + 1])),
            elements=_elements.get(dtype),
        )
    )
    odd = st.sampled_from(
        [
            np.full((3, D), "1.5"),
            np.array([["a"] * D] * 2, dtype=object),
            np.ones((2, D), dtype=object),
            [[1.0] * D, [2.0]],
            "not an array",
            None,
            3.0,
            np.zeros(D),
            np.zeros((2, 2, D)),
        ]
    )
    tensors = numeric.map(lambda a: torch.from_numpy(a) if a.dtype != np.float16 else a)
    return st.one_of(numeric, odd, tensors)


@FAST
@given(X=_arrays())
def test_transform_any_input_gives_finite_codes_or_a_clear_error(fitted: sw.SAE, X: Any) -> None:
    try:
        codes = fitted.transform(X)
    except Exception as err:
        _documented(err, "X")
        return
    codes = codes.cpu().numpy() if torch.is_tensor(codes) else codes
    assert codes.shape[1] == 8 and np.isfinite(codes).all()
    assert np.isfinite(np.asarray(fitted.inverse_transform(codes))).all()


@settings(FAST, max_examples=20)
@given(X=_arrays())
def test_fit_any_input_trains_a_finite_model_or_keeps_the_previous_fit(X: Any) -> None:
    sae = sw.SAE(n_units=4, k=2, epochs=1, min_steps_per_epoch=2, seed=0)
    previous = np.ones((8, D), dtype=np.float32) + np.eye(8, D, dtype=np.float32)
    sae.fit(previous, progress=False)
    before = sae.transform(previous)
    try:
        sae.fit(X, progress=False)
    except Exception as err:
        _documented(err, "X")
        np.testing.assert_array_equal(sae.transform(previous), before)  # previous fit kept
        return
    assert all(bool(torch.isfinite(w).all()) for w in sae.model_.weights().values())
    assert not sae.model_.training


# ---- SAE parameters (against sae_widgets.sae.params.SAE_PARAMETERS) -----------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.sampled_from([2**63, 2**64, -(2**70)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.7, 0.5, 1e6, -0.1, 2.0]),
    st.text(max_size=5),
    st.sampled_from(["relu", "topk", "batchtopk", "jumprelu", "cpu", "meta", "cuda", "no", "4"]),
    st.sampled_from([np.int64(3), np.float32(0.5), np.bool_(True)]),
    st.lists(st.integers(-2, 10), max_size=3),
)


@settings(FAST, max_examples=60)
@given(name=st.sampled_from(sorted(SAE_PARAMETERS)), value=_values)
def test_any_parameter_value_trains_or_is_refused_naming_the_parameter(
    name: str, value: Any
) -> None:
    X = np.random.default_rng(1).standard_normal((24, D)).astype(np.float32)
    base: dict[str, Any] = {"n_units": 8, "k": 2, "epochs": 1, "batch_size": 8}
    params = {**base, name: value}
    if name in ("epochs", "batch_size", "n_units", "dead_window") and isinstance(value, int):
        params[name] = min(value, 40)  # keep the accepted ones fast
    sae = sw.SAE(**params)
    try:
        sae.fit(X, progress=False)
    except NonFiniteLossError:
        return  # a documented outcome: the loss diverged (e.g. lr=1 with no clipping)
    except Exception as err:
        _documented(err, name, "k", "n_units", "prefix_sizes")
        return
    assert all(bool(torch.isfinite(w).all()) for w in sae.model_.weights().values())
    assert np.isfinite(sae.transform(X)).all()
