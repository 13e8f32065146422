"""Edge cases and bad inputs an independent sweep of the public API found escaping the error
contract (tests/test_bad_inputs.py and tests/test_fuzz_api.py hold the earlier ones): a raw
numpy/torch/builtin error, an argument accepted and ignored, a NaN result or a traceback from
the CLI. Each case failed before its fix."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import sae_widgets as sw
from sae_widgets.cli import main
from sae_widgets.data import StoreWriter
from sae_widgets.data.datasets import render_shapes

FAST = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ds = sw.datasets.digits()[:60]
    sae = sw.SAE(n_units=12, k=3, epochs=1, seed=0).fit(ds.X, progress=False)
    sae_b = sw.SAE(n_units=5, k=1, epochs=1, seed=1).fit(ds.X, progress=False)
    ex = sw.Explorer(sae, ds)
    cmp = sw.compare(ex, sw.Explorer(sae_b, ds))
    classifier = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    rows = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    sae16 = sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(rows, progress=False)
    acts = sw.collect_activations(classifier, "0", ds)
    steer = sw.Explorer(sae16, acts, model=classifier, layer="0", inputs=ds)
    made = {
        "tmp": tmp_path_factory.mktemp("edge"),
        "writers": [],
        "ds": ds,
        "ex": ex,
        "cmp": cmp,
        "classifier": classifier,
        "sae16": sae16,
        "acts": acts,
        "steer": steer,
    }
    yield made
    for writer in made["writers"]:
        writer.abort()


def _meta_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 16, device="meta"), nn.ReLU(), nn.Linear(16, 3, device="meta")
    )


def _writer(env: dict[str, Any]) -> StoreWriter:
    writer = StoreWriter(env["tmp"] / f"store{len(env['writers'])}", 4)
    env["writers"].append(writer)
    return writer


def _steering_explorer(env: dict[str, Any], inputs: Any) -> Any:
    ex = sw.Explorer(env["sae16"], env["acts"], model=env["classifier"], layer="0", inputs=inputs)
    return ex.steerer


def _intervene(env: dict[str, Any], **edits: Any) -> Any:
    with sw.Intervention(env["classifier"], "0", env["sae16"], **edits):
        return env["classifier"](torch.from_numpy(env["ds"].X[:2]))


@pytest.fixture(scope="module")
def views(env: dict[str, Any]) -> Iterator[dict[str, Any]]:
    ex = env["ex"]
    made = {
        "heatmap": sw.ActivationHeatmap(ex),
        "probe": sw.ProbeSlider(ex),
        "table": sw.UnitTable(ex),
        "compare": sw.CompareView(env["cmp"]),
    }
    yield made
    for view in made.values():
        view.close()


def _evaluate_with_labels(env: dict[str, Any], labels: np.ndarray) -> Any:
    X = env["ds"].X
    return sw.metrics.evaluate(
        env["sae16"], X, model=env["classifier"], layer="0", labels=labels[: len(X)]
    )


Case = tuple[str, Callable[[dict[str, Any], dict[str, Any]], Any], type[Exception], str]
CASES: list[Case] = [
    # a label past the classifier's outputs: torch's "IndexError: Target 7 is out of bounds."
    (
        "evaluate labels >= n_classes",
        lambda e, v: _evaluate_with_labels(e, np.full(60, 7)),
        ValueError,
        "labels must be class indices in [0, 3)",
    ),
    # numpy's "could not convert string to float: 'abc'"
    (
        "samples_in_polygon 'abc'",
        lambda e, v: e["ex"].samples_in_polygon("abc"),
        TypeError,
        "polygon",
    ),
    (
        "samples_in_polygon ragged",
        lambda e, v: e["ex"].samples_in_polygon([(0, 0), (1,), (1, 1)]),
        TypeError,
        "polygon",
    ),
    # "OverflowError: cannot convert float infinity to integer" / numpy's ufunc 'floor' error
    ("cell_at 'a'", lambda e, v: v["heatmap"].cell_at("a", 0.5), TypeError, "x must be a number"),
    ("cell_at y=None", lambda e, v: v["heatmap"].cell_at(0.5, None), TypeError, "y must be"),
    # KeyError: 'nope' / IndexError: index 99 is out of bounds for axis 0
    ("unit_at kind", lambda e, v: v["compare"].unit_at("nope", 0), ValueError, "kind"),
    ("unit_at index", lambda e, v: v["compare"].unit_at("shared", 10**6), ValueError, "index"),
    ("unit_at 1.5", lambda e, v: v["compare"].unit_at("shared", 1.5), TypeError, "index"),
    # "'<' not supported between instances of 'str' and 'int'"; a position past the curves
    # was ignored and -1 focused the last curve
    ("click_curve 'a'", lambda e, v: v["probe"].click_curve("a"), TypeError, "position"),
    ("click_curve 10**6", lambda e, v: v["probe"].click_curve(10**6), ValueError, "position"),
    ("click_curve -1", lambda e, v: v["probe"].click_curve(-1), ValueError, "position"),
    # "unsupported operand type(s) for +: 'int' and 'str'"; 1.5 was accepted
    ("UnitTable.step 'a'", lambda e, v: v["table"].step("a"), TypeError, "offset"),
    ("UnitTable.step 1.5", lambda e, v: v["table"].step(1.5), TypeError, "offset"),
    # accepted whatever it was on a small dataset (it is read only above the WebGL threshold)
    (
        "PCABrush max_points='a'",
        lambda e, v: sw.PCABrush(e["ex"], max_points="a"),
        TypeError,
        "max_points",
    ),
    (
        "PCABrush max_points=0",
        lambda e, v: sw.PCABrush(e["ex"], max_points=0),
        ValueError,
        "max_points",
    ),
    # "rgb_HW3: expected a non-empty (h, w, 3) ..." (an internal name)
    ("image_grid 0 x 8", lambda e, v: sw.image_grid(np.ones((2, 0, 8))), ValueError, "images"),
    # complex pixels were cast to float32 with a ComplexWarning, the imaginary part dropped
    (
        "image_grid complex",
        lambda e, v: sw.image_grid(np.ones((2, 4, 4), complex)),
        TypeError,
        "images",
    ),
    # accepted and truth-tested / "'int' object is not callable" at the first draw
    (
        "TrainingMonitor trailing='no'",
        lambda e, v: sw.TrainingMonitor(sw.SAE(), trailing="no"),
        TypeError,
        "trailing",
    ),
    (
        "TrainingMonitor clock=3",
        lambda e, v: sw.TrainingMonitor(sw.SAE(), clock=3),
        TypeError,
        "clock",
    ),
    # threading's "'>' not supported between instances of 'int' and 'str'"
    (
        "TrainingMonitor.join timeout='a'",
        lambda e, v: sw.TrainingMonitor(sw.SAE()).join("a"),
        TypeError,
        "timeout",
    ),
    # numpy's "expected a sequence of integers or a single integer, got 'True'"
    ("shapes n=True", lambda e, v: sw.datasets.shapes(n=True, size=8), TypeError, "n must be"),
    ("shapes size=True", lambda e, v: sw.datasets.shapes(n=2, size=True), TypeError, "size must"),
    # torch's "Overflow when unpacking long long"
    ("digits_mlp seed=2**70", lambda e, v: sw.datasets.digits_mlp(seed=2**70), ValueError, "seed"),
    # a radius of 0: every pixel NaN
    (
        "render_shapes scale=0",
        lambda e, v: render_shapes([0], [0.0], [0.0], [0.5], [0.5], 8),
        ValueError,
        "scale",
    ),
    (
        "render_shapes scale<0",
        lambda e, v: render_shapes([1], [-0.5], [0.0], [0.5], [0.5], 8),
        ValueError,
        "scale",
    ),
    # mean of no units: NaN with numpy's "Mean of empty slice" warning
    (
        "dead_fraction 0 units",
        lambda e, v: sw.metrics.dead_fraction(np.zeros((3, 0))),
        ValueError,
        "codes",
    ),
    # the squares overflow: inf instead of an error
    (
        "mse 1e300",
        lambda e, v: sw.metrics.mse([[1e300], [-1e300]], [[0.0], [0.0]]),
        ValueError,
        "mse",
    ),
    # pathlib's "FileExistsError: [Errno 17] File exists" when the codes were first built
    # the bare torch module: torch's "mat1 and mat2 shapes cannot be multiplied", "must have
    # the same dtype", AttributeError "'str' object has no attribute 'activation'"
    ("SparseAutoencoder('x')", lambda e, v: sw.SparseAutoencoder("x"), TypeError, "cfg"),
    (
        "SparseAutoencoder.encode (2, 5)",
        lambda e, v: e["sae16"].model_.encode(torch.zeros(2, 5)),
        ValueError,
        "x must have shape (batch, 16)",
    ),
    (
        "SparseAutoencoder.encode 1-D",
        lambda e, v: e["sae16"].model_.encode(torch.zeros(16)),
        ValueError,
        "x must have shape",
    ),
    (
        "SparseAutoencoder.encode float64",
        lambda e, v: e["sae16"].model_.encode(torch.zeros(2, 16, dtype=torch.float64)),
        TypeError,
        "dtype",
    ),
    (
        "SparseAutoencoder.decode (2, 3)",
        lambda e, v: e["sae16"].model_.decode(torch.zeros(2, 3)),
        ValueError,
        "codes must have shape (batch, 8)",
    ),
    (
        "SparseAutoencoder(numpy)",
        lambda e, v: e["sae16"].model_(np.zeros((2, 16), np.float32)),
        TypeError,
        "torch.Tensor",
    ),
    # list's "IndexError: list index out of range" / "list indices must be integers"
    ("TextCorpus[5]", lambda e, v: sw.TextCorpus(["a", "b"])[5], ValueError, "index"),
    ("TextCorpus['a']", lambda e, v: sw.TextCorpus(["a", "b"])["a"], TypeError, "index"),
    # bind(-1) was accepted, bind('a') raised int()'s message; map(3) failed at first use
    (
        "Attribute.bind(-1)",
        lambda e, v: e["ds"].attributes["rotation"].bind(-1),
        ValueError,
        "n_samples",
    ),
    (
        "Attribute.bind('a')",
        lambda e, v: e["ds"].attributes["rotation"].bind("a"),
        TypeError,
        "n_samples",
    ),
    ("Attribute.map(3)", lambda e, v: e["ds"].attributes["rotation"].map(3), TypeError, "fn"),
    # steering: numpy's "could not convert string to float"; 1e300 overflowed float32 and
    # every class probability came back NaN; NaN inputs gave NaN probabilities
    (
        "Steerer.sweep alphas='ab'",
        lambda e, v: e["steer"].steerer.sweep(0, "ab", [0]),
        TypeError,
        "alphas",
    ),
    (
        "Steerer.sweep alphas=[1e300]",
        lambda e, v: e["steer"].steerer.sweep(0, [1e300], [0]),
        ValueError,
        "at most 1e+30",
    ),
    (
        "Steerer.intervention alpha='a'",
        lambda e, v: e["steer"].steerer.intervention(0, "a"),
        TypeError,
        "must be a number",
    ),
    (
        "Intervention steer=1e300",
        lambda e, v: _intervene(e, steer={1: 1e300}),
        ValueError,
        "steer[1]",
    ),
    (
        "Intervention set=-1e38",
        lambda e, v: _intervene(e, set={1: -1e38}),
        ValueError,
        "set[1]",
    ),
    (
        "Explorer inputs=NaN",
        lambda e, v: _steering_explorer(e, np.full((60, 64), np.nan)),
        ValueError,
        "inputs",
    ),
    ("Explorer inputs='abc'", lambda e, v: _steering_explorer(e, "abc"), TypeError, "inputs"),
    # a label of 10**12: numpy's MemoryError (7 TiB) in the first unit summary; 2**63 as
    # uint64 (or an integer-valued 1e300) wrapped to a negative "got -9223372036854775808"
    (
        "Dataset labels=10**12",
        lambda e, v: sw.Dataset(e["ds"].X, labels=np.full(60, 10**12)),
        ValueError,
        "labels must be class indices below",
    ),
    (
        "Dataset labels=2**63 uint64",
        lambda e, v: sw.Dataset(e["ds"].X, labels=np.full(60, 2**63, np.uint64)),
        ValueError,
        "got 9223372036854775808",
    ),
    (
        "Dataset labels=1e300",
        lambda e, v: sw.Dataset(e["ds"].X, labels=np.full(60, 1e300)),
        ValueError,
        "labels must be class indices below",
    ),
    # StoreWriter: ZeroDivisionError / int()'s message; a list of fields: AttributeError
    # 'items'; a file outside the store: FileNotFoundError; strings: numpy's conversion
    # error; a non-JSON info: json's TypeError at close(), after every row was written
    ("StoreWriter d=0", lambda e, v: StoreWriter(e["tmp"] / "d0", 0), ValueError, "d must be"),
    ("StoreWriter d='a'", lambda e, v: StoreWriter(e["tmp"] / "da", "a"), TypeError, "d must be"),
    (
        "StoreWriter d=2**62",
        lambda e, v: StoreWriter(e["tmp"] / "dhuge", 2**62),
        ValueError,
        "StoreWriter(d, shard_size) would need",
    ),
    (
        "StoreWriter info=object",
        lambda e, v: StoreWriter(e["tmp"] / "info", 2, info={"a": object()}),
        TypeError,
        "info",
    ),
    (
        "StoreWriter.append fields=[1]",
        lambda e, v: _writer(e).append(np.ones((2, 4)), fields=[1]),
        TypeError,
        "fields",
    ),
    (
        "StoreWriter.append 'abc'",
        lambda e, v: _writer(e).append(np.full((2, 4), "abc")),
        TypeError,
        "X must hold numbers",
    ),
    (
        "StoreWriter.append 1e300",
        lambda e, v: _writer(e).append(np.full((2, 4), 1e300)),
        ValueError,
        "beyond float32",
    ),
    (
        "StoreWriter.add_file '../x'",
        lambda e, v: _writer(e).add_file("x", "../x"),
        ValueError,
        "relative",
    ),
    (
        "StoreWriter.add_file missing",
        lambda e, v: _writer(e).add_file("x", "missing.bin"),
        ValueError,
        "relative",
    ),
    # a model whose weights are on the meta device: torch's "Tensor.item() cannot be called
    # on meta tensors" (collect) / NotImplementedError from torch.nonzero's meta kernel (evaluate)
    (
        "collect_activations meta model",
        lambda e, v: sw.collect_activations(_meta_model(), "0", e["ds"]),
        ValueError,
        "'meta' device",
    ),
    (
        "evaluate meta model",
        lambda e, v: sw.metrics.evaluate(e["sae16"], e["ds"], model=_meta_model(), layer="0"),
        ValueError,
        "'meta' device",
    ),
    (
        "Explorer codes_dir=file",
        lambda e, v: sw.Explorer(e["ex"].sae, e["ds"], codes_dir=__file__),
        ValueError,
        "codes_dir",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(
    env: dict[str, Any], views: dict[str, Any], case: Case
) -> None:
    _, call, error, fragment = case
    with pytest.raises(error) as info:
        call(env, views)
    assert fragment in str(info.value), repr(info.value)
    assert type(info.value) in (ValueError, TypeError) or type(info.value).__module__.startswith(
        "sae_widgets"
    ), repr(info.value)


def test_a_labelled_sample_past_the_outputs_fails_before_any_figure(env: dict[str, Any]) -> None:
    labels = np.arange(60) % 3
    labels[41] = 3  # in the second batch of 32: the first batch's figures must not count
    with pytest.raises(ValueError, match=r"\[0, 3\).*got 3"):
        sw.metrics.evaluate(
            env["sae16"],
            env["ds"].X,
            model=env["classifier"],
            layer="0",
            labels=labels,
            batch_size=32,
        )
    ok = _evaluate_with_labels(env, np.where(np.arange(60) % 7 == 0, -1, np.arange(60) % 3))
    assert np.isfinite(ok["ce_original"]) and 0.0 <= ok["accuracy_spliced"] <= 1.0


def test_a_text_index_out_of_range_is_also_an_index_error() -> None:
    corpus = sw.TextCorpus(["a", "b"])
    with pytest.raises(IndexError):  # the sequence protocol still holds
        corpus[2]
    assert corpus[-1] == "b" and corpus[np.int64(0)] == "a" and list(corpus) == ["a", "b"]


def test_steering_within_range_still_works(env: dict[str, Any]) -> None:
    result = env["steer"].steerer.sweep(0, [0.0, 1e3], [0, 1])
    assert np.isfinite(result.probabilities).all()
    assert np.isfinite(_intervene(env, steer={1: np.float32(2.5)}).detach().numpy()).all()


def test_a_refused_store_writer_leaves_nothing_on_disk(tmp_path: Path) -> None:
    # d=-1 or d=2**62 failed in numpy after the staging folder was created, and left it
    for d in (-1, 0, 2**62, "a"):
        with pytest.raises((ValueError, TypeError)):
            StoreWriter(tmp_path / "out", d)
    assert list(tmp_path.iterdir()) == []


def test_large_sparse_labels_within_the_limit_still_work(env: dict[str, Any]) -> None:
    labels = np.where(np.arange(60) % 2 == 0, 2**20 - 1, 7)
    ds = sw.Dataset(env["ds"].X, labels=labels)
    ex = sw.Explorer(env["ex"].sae, ds)
    assert ex.unit_summary(0).label_counts.sum() <= 60
    table = sw.UnitTable(ex)  # per-unit label counts: sparse, not 12 x 2**20 dense
    try:
        firing = ex.codes.frequency > 0
        assert set(table.stats.top_label[firing].tolist()) <= {7, 2**20 - 1}
        assert np.all(table.stats.top_label[~firing] == -1)
        assert np.all(np.isfinite(table.stats.selectivity[firing]))
    finally:
        table.close()


def test_non_finite_coordinates_are_outside_the_heatmap(views: dict[str, Any]) -> None:
    heatmap = views["heatmap"]
    for x, y in [(NAN, 0.5), (0.5, INF), (-INF, -INF), (1e300, 1e300)]:
        assert heatmap.cell_at(x, y) is None
    assert heatmap.cell_at(0.5, 0.5) is not None


def test_clicked_curves_and_points_focus_their_units(
    env: dict[str, Any], views: dict[str, Any]
) -> None:
    probe, compare = views["probe"], views["compare"]
    last = len(probe.shown_units) - 1
    probe.click_curve(np.int64(last))
    assert env["ex"].selection.unit == int(probe.shown_units[last])
    kind = next(k for k, units in compare.units.items() if len(units))
    assert compare.unit_at(kind, 0) == int(compare.units[kind][0])


@FAST
@given(
    scale=st.sampled_from([1.0, 1e-300, 1e100, 1e200, 1e300, 1e307]),
    base=st.lists(st.floats(-4, 4), min_size=4, max_size=4),
    error=st.lists(st.floats(-1, 1), min_size=4, max_size=4),
)
def test_fvu_is_the_same_at_any_scale(scale: float, base: list[float], error: list[float]) -> None:
    # 1e300-sized data made FVU inf/inf = NaN: the squares overflowed float64
    X = np.array(base).reshape(2, 2)
    X_hat = X + np.array(error).reshape(2, 2)
    if float(((X - X.mean(0)) ** 2).sum()) < 1e-6:
        return  # no variance to explain: NaN by definition
    expected = sw.metrics.fvu(X, X_hat)
    got = sw.metrics.fvu(X * scale, X_hat * scale)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    mse = sw.metrics.mse(X * scale, X_hat * scale) if 1e-100 <= scale <= 1e150 else None
    if mse is not None:
        np.testing.assert_allclose(mse, sw.metrics.mse(X, X_hat) * scale**2, rtol=1e-9)


def test_a_failing_model_factory_gives_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "edge_inputs_models.py").write_text(
        "def broken():\n    raise RuntimeError('no weights here')\nraise_on_import = None\n"
    )
    (tmp_path / "edge_inputs_bad_import.py").write_text("raise KeyError('config')\n")
    monkeypatch.chdir(tmp_path)
    try:
        for spec, fragment in [
            ("edge_inputs_models:broken", "broken() raised RuntimeError: no weights here"),
            ("edge_inputs_bad_import:f", "cannot import 'edge_inputs_bad_import' (KeyError"),
        ]:
            argv = ["train", "--data", "digits", "--n-samples", "64", "--units", "8"]
            argv += ["--quiet", "--out", str(tmp_path / "run"), "--model", spec, "--layer", "a"]
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 2, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and fragment in lines[0], err
            assert not (tmp_path / "run").exists()
    finally:
        for name in ("edge_inputs_models", "edge_inputs_bad_import"):
            sys.modules.pop(name, None)


def test_valid_odd_inputs_still_work(env: dict[str, Any]) -> None:
    images = render_shapes(
        np.arange(4), np.full(4, 0.75), np.zeros(4), np.full(4, 0.5), np.full(4, 0.5), 8
    )
    assert np.isfinite(images).all() and images.max() > 0
    assert len(sw.datasets.shapes(n=np.int64(2), size=np.int32(8), seed=np.int64(1))) == 2
    assert len(sw.datasets.digits_mlp(hidden=4, steps=0, seed=2**63 - 1).train_indices) > 0
    assert sw.metrics.dead_fraction(np.ones((2, 3))) == 0.0
    grid = sw.image_grid(torch.rand(3, 4, 4) > 0.5)
    assert len(grid.value) > 0
    monitor = sw.TrainingMonitor(sw.SAE(), trailing=np.bool_(False))
    assert monitor.join(timeout=0) is monitor.sae
    monitor.close()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("", "--data is empty"),  # read as the current folder: "path: '.' has no manifest"
        ("{tmp}", "is a folder but not an activation store"),
    ],
)
def test_cli_data_that_is_not_a_store_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: str, fragment: str
) -> None:
    argv = ["train", "--data", data.format(tmp=tmp_path), "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_a_unit_table_with_no_sort_chosen_keeps_its_order(env: dict[str, Any]) -> None:
    # ToggleButtons accept value=None; the table's redraw raised KeyError: None
    table = sw.UnitTable(env["ex"], sort_by="max activation")
    try:
        order = table.order.copy()
        table.sort_by.value = None
        assert table.sort_by.value == "max activation"
        np.testing.assert_array_equal(table.order, order)
        table.sort_by.value = "frequency"
        assert table.sort_by.value == "frequency"
    finally:
        table.close()


def _token_rows(doc: Any, pos: Any, token_id: Any) -> sw.TokenRows:
    from sae_widgets.data.tokens import Documents

    documents = Documents(
        texts=["hello world"], token_ids=[np.array([1, 2])], offsets=[np.array([[0, 5], [6, 11]])]
    )
    return sw.TokenRows(doc, pos, token_id, documents)


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        # int()'s "invalid literal for int() with base 10: 'a'"
        (lambda: _token_rows(["a"], [0], [1]), TypeError, "doc must hold integers"),
        # accepted, then list's / numpy's IndexError from context()
        (lambda: _token_rows([5], [0], [1]), ValueError, "doc must hold document ids"),
        (lambda: _token_rows([0], [9], [1]), ValueError, "pos must hold token positions"),
        (lambda: _token_rows([0, 0], [0, 1], [1, 2]).context(9), ValueError, "row"),
        (lambda: _token_rows([0, 0], [0, 1], [1, 2]).token_text(-1), ValueError, "row"),
        (lambda: _token_rows([0, 0], [0, 1], [1, 2]).context(0, -1), ValueError, "before"),
        (lambda: _token_rows([0, 0], [0, 1], [1, 2]).context(0, 2, 1.5), TypeError, "after"),
    ],
)
def test_token_rows_refuse_rows_outside_their_documents(
    call: Callable[[], Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=None) as info:
        call()
    assert fragment in str(info.value), repr(info.value)


def test_token_rows_and_their_subsets_still_show_context() -> None:
    rows = _token_rows([0, 0], [0, 1], [1, 2])
    assert rows.context(np.int64(1), 2, 2) == (["hello", " world"], pytest.approx([0, 1]), 1)
    assert rows[[1]].token_text(0) == "world" and len(_token_rows([], [], [])) == 0


@pytest.mark.parametrize("times_memory", [2, 10**4])
def test_an_sae_larger_than_the_machine_is_refused_before_allocating(times_memory: int) -> None:
    # torch's "DefaultCPUAllocator: can't allocate memory" or, with overcommit, the kernel
    # killing the process when the weights were first written
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    n_units = times_memory * physical // (8 * 6)  # W_enc + W_dec, float32, on 6 features
    X = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=f"n_units={n_units}.*fewer units"):
        sw.SAE(n_units=n_units, k=1, epochs=1).fit(X, progress=False)
    with pytest.raises(ValueError, match="fewer units"):
        sw.SparseAutoencoder(sw.SAEConfig(d_in=1000, n_units=n_units * 10, k=1))


def test_dense_codes_larger_than_the_machine_are_refused() -> None:
    # encode_dense's mmap raised a bare "OSError: [Errno 12] Cannot allocate memory" (or,
    # within RAM + swap but past what is free, the OOM killer ended the kernel)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    X = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    sae = sw.SAE(n_units=16384, k=1, epochs=1, seed=0).fit(X, progress=False)
    rows = np.broadcast_to(X[:1], (3 * physical // (4 * 16384), 2))  # no memory of its own
    with pytest.raises(ValueError, match=r"dense codes of .* encode_sparse"):
        sae.transform(rows)
    assert sae.encode_sparse(rows[:1000]).shape == (1000, 16384)
