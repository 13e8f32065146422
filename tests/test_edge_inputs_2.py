"""A second sweep of the public API with odd inputs (after tests/test_edge_inputs.py): valid
but unusual arrays (reversed views, read-only arrays, bfloat16 tensors) that raised a raw
torch error or warning, and bad ones that escaped as numpy/torch/builtin errors. Each case
failed before its fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sae_widgets as sw

FAST = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
D = 6


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((40, D)).astype(np.float32)


@pytest.fixture(scope="module")
def sae(X: np.ndarray) -> sw.SAE:
    return sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(X, progress=False)


def _read_only(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out.setflags(write=False)
    return out


# Views numpy makes without copying: torch.from_numpy refuses negative strides ("At least
# one stride in the given numpy array is negative") and warns on read-only memory.
VIEWS = {
    "rows reversed": lambda a: a[::-1],
    "columns reversed": lambda a: a[:, ::-1],
    "both reversed, strided": lambda a: np.repeat(a, 2, axis=0)[::-2, ::-1],
    "read-only": _read_only,
    "read-only float64": lambda a: _read_only(a.astype(np.float64)),
    "read-only reversed": lambda a: _read_only(a)[::-1],
}


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
def test_numpy_views_work_like_their_copies(sae: sw.SAE, X: np.ndarray, view: str) -> None:
    A = VIEWS[view](X)
    copy = np.array(A, dtype=np.float32)
    np.testing.assert_array_equal(sae.transform(A), sae.transform(copy))
    assert (sae.encode_sparse(A) != sae.encode_sparse(copy)).nnz == 0
    assert sae.score(A) == pytest.approx(sae.score(copy))
    Z = sae.transform(copy)
    Z_view = VIEWS[view](Z) if view.startswith("read-only") else Z[::-1]
    np.testing.assert_allclose(
        sae.inverse_transform(Z_view), sae.inverse_transform(np.array(Z_view)), rtol=1e-6
    )
    fitted = sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(A, progress=False)
    again = sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(copy, progress=False)
    np.testing.assert_array_equal(fitted.components_, again.components_)
    sw.SAE(n_units=8, k=2, epochs=1, seed=0).partial_fit(A)
    ex = sw.Explorer(sae, A)
    assert ex.unit_summary(0).unit == 0


def test_a_read_only_memory_map_is_read_in_place(
    sae: sw.SAE, X: np.ndarray, tmp_path: Path
) -> None:
    # pages mapped read-only: a write through the shared tensor would crash the kernel
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(sae.transform(mapped), sae.transform(X))
    fitted = sw.SAE(n_units=8, k=2, epochs=2, seed=0).fit(mapped, progress=False)
    fitted.partial_fit(mapped)
    assert np.isfinite(sw.metrics.evaluate(fitted, mapped)["fvu"])
    assert sw.Explorer(fitted, sw.Dataset(mapped)).unit_summary(1).unit == 1


def _values(data: Any) -> np.ndarray:
    return data.detach().numpy().copy() if torch.is_tensor(data) else data.copy()


def test_inputs_are_never_written_to(X: np.ndarray) -> None:
    # read-only arrays are read without a copy: fit must not write into what it was given
    tensor = torch.from_numpy(X.copy()).requires_grad_(True)
    array = X.copy()
    for data in (tensor, array):
        before = _values(data)
        sae = sw.SAE(n_units=8, k=2, epochs=2, seed=0).fit(data, progress=False)
        sae.partial_fit(data)
        sae.transform(data)
        np.testing.assert_array_equal(_values(data), before)


@FAST
@given(
    dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float64, torch.int32]),
    transpose=st.booleans(),
    grad=st.booleans(),
)
def test_any_real_tensor_works_everywhere(
    X: np.ndarray, sae: sw.SAE, dtype: torch.dtype, transpose: bool, grad: bool
) -> None:
    # bfloat16 tensors: "TypeError: Got unsupported ScalarType BFloat16" from Dataset,
    # metrics.fvu / mse / l0 and mmcs (fit, transform and evaluate took them)
    base = torch.from_numpy(np.ascontiguousarray(X.T)).T if transpose else torch.from_numpy(X)
    tensor = (base * 4).to(dtype)
    if grad and tensor.is_floating_point():
        tensor.requires_grad_(True)
    expected = tensor.detach().float().numpy()
    np.testing.assert_array_equal(sw.Dataset(tensor).X, expected)
    assert sw.metrics.fvu(tensor, tensor) == 0.0
    assert sw.metrics.mse(tensor, tensor) == 0.0
    assert sw.metrics.l0(tensor) == pytest.approx(np.count_nonzero(expected) / len(expected))
    assert 0.0 <= sw.metrics.mmcs(sae, tensor[:3]) <= 1.0
    codes = sae.transform(tensor)
    assert torch.is_tensor(codes) and codes.dtype == torch.float32
    assert torch.isfinite(sae.inverse_transform(codes.to(dtype))).all()
    assert np.isfinite(sw.metrics.evaluate(sae, tensor)["fvu"])


@FAST
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1.0, 3.0, 0.1]))
def test_a_direction_matched_by_itself_scores_exactly_one(seed: int, scale: float) -> None:
    # |cosine| came out as 1.0000000000000002: an mcc / mmcs above its documented maximum
    rows = np.random.default_rng(seed).standard_normal((3, 5))
    for metric in (sw.metrics.mcc, sw.metrics.mmcs):
        score = metric(rows, rows * scale)
        assert score == pytest.approx(1.0) and score <= 1.0
    assert sw.metrics.mcc(np.ones((1, 3)), np.ones((1, 3))) == 1.0


@pytest.mark.parametrize(
    ("Z", "error", "fragment"),
    [
        # the imaginary part was dropped with numpy's ComplexWarning (dense Z is refused)
        (sp.csr_matrix(np.ones((2, 8), np.complex64)), TypeError, "Z must hold real numbers"),
        # 1e39 overflowed float32: inf reconstructions and a RuntimeWarning (dense: refused)
        (sp.csr_matrix(np.full((2, 8), 1e39)), ValueError, "Z holds values as large as"),
        (sp.csr_matrix(np.full((2, 8), 1e31, np.float32)), ValueError, "at most 1e+30"),
    ],
    ids=["complex", "1e39", "1e31 float32"],
)
def test_sparse_codes_are_checked_like_dense_ones(
    sae: sw.SAE, Z: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=None) as info:
        sae.inverse_transform(Z)
    assert fragment in str(info.value), repr(info.value)
    with pytest.raises(error):
        sae.inverse_transform(Z.toarray())


def test_sparse_codes_of_any_format_and_real_dtype_work(sae: sw.SAE, X: np.ndarray) -> None:
    Z = sae.encode_sparse(X)
    expected = sae.inverse_transform(Z.toarray())
    for sparse in (
        Z.astype(np.float64),
        Z.astype(np.int64),
        sp.csr_array(Z),
        Z.tocoo(),
        Z.todok(),
        Z.tolil(),
    ):
        want = expected if sparse.dtype != np.int64 else sae.inverse_transform(sparse.toarray())
        np.testing.assert_allclose(sae.inverse_transform(sparse), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [2**62, 2**70, np.uint64(2**64 - 1)])
def test_a_chunk_larger_than_any_data_is_the_whole_data(
    sae: sw.SAE, X: np.ndarray, chunk_size: Any
) -> None:
    # torch's "Overflow when unpacking long long" from Tensor.split
    np.testing.assert_array_equal(sae.transform(X, chunk_size=chunk_size), sae.transform(X))
    assert sae.encode_sparse(X, chunk_size=chunk_size).shape == (40, 8)


# ---- TrainingMonitor.fit takes what SAE.fit takes -----------------------------------------


@pytest.fixture
def monitor() -> Iterator[Any]:
    made = sw.TrainingMonitor(sw.SAE(n_units=4, k=1, epochs=1, seed=0))
    yield made
    made.close()


@pytest.mark.parametrize("callbacks", ["none", "one callable", "a tuple"])
def test_monitor_fit_takes_the_callbacks_sae_fit_takes(
    monitor: Any, X: np.ndarray, callbacks: str
) -> None:
    # "TypeError: Value after * must be an iterable, not NoneType" (or "not function")
    seen: list[int] = []

    def record(metrics: dict[str, Any]) -> bool:
        seen.append(int(metrics["step"]))
        return True

    value = {"none": None, "one callable": record, "a tuple": (record,)}[callbacks]
    monitor.fit(X, callbacks=value)
    assert monitor.join() is monitor.sae
    assert monitor.history and monitor.sae.n_steps_ > 0
    assert bool(seen) == (callbacks != "none")


@pytest.mark.parametrize(
    ("X_bad", "callbacks", "error", "fragment"),
    [
        (np.array(3.0), None, ValueError, "X must be 2-D"),  # len() of unsized object
        (np.zeros((4, D)), "abc", TypeError, "callbacks"),
        (np.zeros((4, D)), [print, 3], TypeError, "callbacks"),
    ],
    ids=["0-d X", "callbacks str", "callbacks non-callable"],
)
def test_monitor_fit_refuses_bad_input_before_starting(
    monitor: Any, X_bad: Any, callbacks: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=None) as info:
        monitor.fit(X_bad, callbacks=callbacks)
        monitor.join()
    assert fragment in str(info.value), repr(info.value)
    assert not monitor.running
