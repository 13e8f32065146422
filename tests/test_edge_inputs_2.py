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
        # codes above 1e30 are taken (transform gives them), a reconstruction past float32 not
        (sp.csr_matrix(np.full((2, 8), 3e38, np.float32)), ValueError, "overflows float32"),
    ],
    ids=["complex", "1e39", "3e38 float32"],
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


def test_image_grid_reads_uint8_as_0_to_255_and_any_tensor() -> None:
    from sae_widgets.widgets._render import decode_png

    grey = np.linspace(0.0, 1.0, 32).reshape(2, 4, 4)
    expected = decode_png(sw.image_grid(grey).value)
    # uint8 pixels were clipped to [0, 1]: every pixel from 1 to 255 drew as full ink
    as_bytes = np.rint(grey * 255).astype(np.uint8)
    np.testing.assert_allclose(decode_png(sw.image_grid(as_bytes).value), expected, atol=1)
    # bfloat16: "TypeError: Got unsupported ScalarType BFloat16"
    for tensor in (torch.from_numpy(grey).bfloat16(), torch.from_numpy(grey).requires_grad_()):
        got = decode_png(sw.image_grid(tensor).value)
        np.testing.assert_allclose(got, expected, atol=2)


class _Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_collect_activations_takes_read_only_rows_and_numpy_shapes() -> None:
    torch.manual_seed(0)
    model, X = _Conv(), sw.datasets.digits().X[:20]
    expected = sw.collect_activations(model, "conv", X, input_shape=(1, 8, 8)).X
    # torch's "The given NumPy array is not writable" UserWarning
    got = sw.collect_activations(model, "conv", _read_only(X), input_shape=(1, 8, 8)).X
    np.testing.assert_array_equal(got, expected)
    # numpy integers (an array's shape after arithmetic): "input_shape must be ... a tuple
    # of ints; got (np.int64(1), 8, 8)"
    shape = (np.int64(1), *np.array([8, 8]))
    np.testing.assert_array_equal(
        sw.collect_activations(model, "conv", X, input_shape=shape).X, expected
    )
    with pytest.raises(ValueError, match="input_shape"):
        sw.collect_activations(model, "conv", X, input_shape=(True, 8, 8))


def _set(key: str, value: Any) -> Any:
    return lambda m: m.__setitem__(key, value)


def _set_shard(key: str, value: Any) -> Any:
    return lambda m: m["shards"][0].__setitem__(key, value)


# A hand-edited or foreign manifest.json: KeyError 'd', "invalid literal for int()",
# "negative dimensions are not allowed", "'list' object has no attribute 'items'", numpy's
# "data type 'nope' not understood", "unsupported operand type(s) for /: 'PosixPath' and
# 'NoneType'"; a shard named '../x' was read from outside the store
MANIFEST_EDITS = {
    "no d": lambda m: m.pop("d"),
    "d=-1": _set("d", -1),
    "d='16'": _set("d", "16"),
    "dtype 'nope'": _set("dtype", "nope"),
    "fields []": _set("fields", []),
    "field dtype 'nope'": _set("fields", {"labels": "nope"}),
    "files [1]": _set("files", [1]),
    "shards [1]": _set("shards", [1]),
    "rows 'x'": _set_shard("rows", "x"),
    "file None": _set_shard("file", None),
    "file '../x'": lambda m: _set_shard("file", "../" + m["shards"][0]["file"])(m),
    "label_names 3": _set("label_names", 3),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS), ids=list(MANIFEST_EDITS))
def test_a_malformed_store_manifest_is_a_store_error(tmp_path: Path, edit: str) -> None:
    import json

    from sae_widgets.data.store_files import StoreError

    ds = sw.Dataset(np.eye(4, 3, dtype=np.float32), labels=[0, 1, 0, 1])
    sw.collect_activations(torch.nn.Sequential(torch.nn.Linear(3, 2)), "0", ds, out=tmp_path / "s")
    assert len(sw.ActivationStore(tmp_path / "s")) == 4
    path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(path.read_text())
    MANIFEST_EDITS[edit](manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"manifest\.json is malformed"):
        sw.ActivationStore(tmp_path / "s")


@pytest.fixture(scope="module")
def spliced() -> dict[str, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    rows = np.random.default_rng(1).standard_normal((32, 5)).astype(np.float32)
    sae5 = sw.SAE(n_units=4, k=2, epochs=1, seed=0).fit(rows, progress=False)
    return {"model": model, "sae": sae5, "x": torch.randn(6, D)}


def _spliced_output(s: dict[str, Any], **edits: Any) -> torch.Tensor:
    with sw.Intervention(s["model"], "0", s["sae"], **edits):
        out: torch.Tensor = s["model"](s["x"])
    return out


def test_an_unbounded_clamp_changes_nothing(spliced: dict[str, Any]) -> None:
    # (None, None) means no bound on either side: torch.clamp's RuntimeError "At least one
    # of 'min' or 'max' must not be None"
    plain = spliced["model"](spliced["x"])
    torch.testing.assert_close(_spliced_output(spliced, clamp={1: (None, None)}), plain)
    lower = _spliced_output(spliced, clamp={1: (None, None), 2: (None, 0.0)})
    torch.testing.assert_close(lower, _spliced_output(spliced, clamp={2: (None, 0.0)}))


@pytest.mark.parametrize(
    ("edits", "error", "fragment"),
    [
        # torch's "new(): invalid data type 'str'"
        ({"ablate": "mean", "mean": "abc"}, TypeError, "mean must be"),
        ({"ablate": "mean", "mean": [object()]}, TypeError, "mean must be"),
        # taken by its truth value: "no" kept the error
        ({"set": {1: 2.0}, "keep_error": "no"}, TypeError, "keep_error"),
        ({"keep_error": 0.5}, TypeError, "keep_error"),
    ],
)
def test_intervention_arguments_are_checked(
    spliced: dict[str, Any], edits: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        _spliced_output(spliced, **edits)
    torch.testing.assert_close(  # np.bool_ is a bool
        _spliced_output(spliced, set={1: 2.0}, keep_error=np.bool_(True)),
        _spliced_output(spliced, set={1: 2.0}),
    )
