"""Property-based tests of the public API (hypothesis): every generated input either works
with finite results or raises one of our documented errors (ValueError, TypeError or their
subclasses; OSError for files) with a message naming the argument. Examples are bounded so
the file runs in about a minute."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sae_widgets as sw
from sae_widgets.cli import main
from sae_widgets.explore.selection import Selection
from sae_widgets.sae.params import SAE_PARAMETERS
from sae_widgets.sae.training import NonFiniteLossError

# derandomize: CI runs the same examples every time (a failure reproduces; no flaky red run).
FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
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


# Finite float32 values of every magnitude fit accepts: subnormals, zeros, tiny and huge.
_magnitudes = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e-40, 1e-38, 1e-30, 1e-10, 1.0, 1e20, -1e29]),
    st.floats(-(2.0**96), 2.0**96, width=32),  # ~7.9e28, exact in float32
)


@settings(FAST, max_examples=25)
@given(
    X=hnp.arrays(
        np.float32, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=_magnitudes
    ),
    batch_size=st.sampled_from([1, 2, 8]),
)
def test_fit_trains_on_any_mix_of_magnitudes_it_accepts(X: np.ndarray, batch_size: int) -> None:
    # e.g. rows [1.0] and [1e-45]: a scale fitted on the subnormal row alone made the loss NaN
    sae = sw.SAE(n_units=8, k=2, epochs=2, batch_size=batch_size, seed=0)
    try:
        sae.fit(X, progress=False)
    except ValueError as err:  # rows too small for float32 training as a whole: refused
        assert "too small to train on in float32" in str(err)
        assert 0 < np.linalg.norm(X.astype(np.float64), axis=1).mean() < 1e-27
        return
    assert all(bool(torch.isfinite(w).all()) for w in sae.model_.weights().values())
    assert np.isfinite(sae.transform(X)).all()


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


# ---- Dataset / Attribute / Selection -------------------------------------------------------


@FAST
@given(X=_arrays(), labels=st.one_of(st.none(), st.lists(st.integers(-1, 3), max_size=6)))
def test_dataset_construction_works_or_names_the_field(X: Any, labels: Any) -> None:
    try:
        ds = sw.Dataset(X, labels=labels)
    except Exception as err:
        _documented(err, "X", "labels")
        return
    assert ds.X.ndim == 2 and np.isfinite(ds.X).all()


_indices = st.one_of(
    st.integers(-12, 12),
    st.lists(st.integers(-12, 12), max_size=5),
    st.lists(st.booleans(), min_size=10, max_size=10),
    st.sampled_from([slice(None, 3), slice(-2, None), np.array([1.5]), "a", None, [[1, 2]]]),
)


@FAST
@given(index=_indices, value=st.one_of(st.floats(), st.integers(), st.text(max_size=3)))
def test_dataset_indexing_and_attributes_work_or_name_the_argument(index: Any, value: Any) -> None:
    ds = sw.datasets.digits()[:10]
    try:
        part = ds[index]
    except Exception as err:
        _documented(err, "ind", "index", "key", "sample")
        return
    attr = part.attributes["thickness"]
    try:
        rows = attr.apply(list(range(min(2, len(part.X)))), value)
    except Exception as err:
        _documented(err, "value", "indices")
        return
    assert np.isfinite(rows).all()


@FAST
@given(
    trait=st.sampled_from(["unit", "samples", "probe_sample", "probe_attribute", "probe_value"]),
    value=st.one_of(_values, _indices),
)
def test_selection_accepts_a_value_or_raises_a_selection_error(trait: str, value: Any) -> None:
    selection = Selection(n_units=8, n_samples=10, attributes=["rotation"])
    before = getattr(selection, trait)
    try:
        setattr(selection, trait, value)
    except (ValueError, TypeError) as err:
        assert trait in str(err) or "expects" in str(err) or "index" in str(err), err
        assert getattr(selection, trait) == before  # unchanged
        return


# ---- checkpoint files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(fitted: sw.SAE, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("ckpt") / "run"
    fitted.save(folder)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _json_value() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@settings(FAST, max_examples=60)
@given(data=st.data())
def test_a_corrupted_checkpoint_loads_or_raises_an_error_naming_the_file(
    saved: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("corrupt")
    files = dict(saved)
    name = data.draw(st.sampled_from(sorted(files)))
    how = data.draw(st.sampled_from(["truncate", "flip", "json"]))
    blob = bytearray(files[name])
    if how == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    else:
        cfg = json.loads(files["cfg.json"])
        key = data.draw(st.sampled_from([*sorted(cfg), "metadata"]))
        if key == "metadata":
            section = data.draw(st.sampled_from(["params", "training", "model_config"]))
            cfg["metadata"][section] = data.draw(
                st.dictionaries(st.text(max_size=8), _json_value(), max_size=3)
                | st.sampled_from([None, 1, "x", []])
            )
        else:
            cfg[key] = data.draw(_json_value())
        name, blob = "cfg.json", bytearray(json.dumps(cfg).encode())
    files[name] = bytes(blob)
    for file_name, content in files.items():
        (folder / file_name).write_bytes(content)
    try:
        sae = sw.SAE.load(folder)
    except (ValueError, TypeError, OSError) as err:
        assert str(folder) in str(err), repr(err)
        return
    X = np.random.default_rng(2).standard_normal((5, sae.n_features_in_)).astype(np.float32)
    assert np.isfinite(sae.transform(X)).all()


# ---- CLI arguments -------------------------------------------------------------------------

_argument = st.sampled_from(
    [
        "--units",
        "--k",
        "--epochs",
        "--batch-size",
        "--lr",
        "--l1-coeff",
        "--device",
        "--n-samples",
        "--seed",
        "--activation",
        "--data",
        "--key",
        "--quiet",
        "--json",
    ]
)
_argument_value = st.sampled_from(
    [
        "0",
        "-1",
        "2",
        "8",
        "1e9",
        "nan",
        "inf",
        "abc",
        "",
        "meta",
        "cpu",
        "relu",
        "topk",
        "digits",
        "shapes",
        "x.npy",
        "99999999999999999999",
    ]
)


@settings(FAST, max_examples=40)
@given(pairs=st.lists(st.tuples(_argument, _argument_value), max_size=4))
def test_cli_train_arguments_run_or_give_one_line_errors(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[str, str]]
) -> None:
    out_dir = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--data", "superposition", "--n-samples", "64", "--units", "8"]
    argv += ["--epochs", "1", "--quiet", "--out", str(out_dir)]
    for option, value in pairs:
        argv += [option] if option in ("--quiet", "--json") else [option, value]
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(argv)
    if code == 0:
        assert sw.SAE.load(out_dir).n_features_in_ > 0
        return
    assert code == 2, stderr.getvalue()
    lines = stderr.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae-widgets: error: "), lines
    assert "Traceback" not in stderr.getvalue()
