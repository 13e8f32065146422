"""Bad inputs a randomized fuzz campaign over the public API found escaping the error contract
(a raw numpy/torch/builtin error, a message not naming the argument, a silent NaN, a hang).
Each row: the call, the error class, a fragment the message must contain (the argument)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.data.datasets import firing_probabilities, hierarchy_parents, render_shapes
from sae_widgets.explore.selection import Selection

D = 64
META = torch.ones(2, D, device="meta")
NAN = float("nan")
LINEAR = torch.nn.Sequential(torch.nn.Linear(D, D))


@pytest.fixture(scope="module")
def env() -> dict[str, Any]:
    ds = sw.datasets.digits()[:60]
    sae = sw.SAE(n_units=12, k=3, epochs=1, seed=0).fit(ds.X, progress=False)
    sae2 = sw.SAE(n_units=10, k=3, epochs=1, seed=1).fit(ds.X, progress=False)
    ex, ex2 = sw.Explorer(sae, ds), sw.Explorer(sae2, ds)
    return {"ds": ds, "sae": sae, "ex": ex, "ex2": ex2, "cmp": sw.compare(ex, ex2)}


def _one(**factors: Any) -> np.ndarray:
    base = {"shape": [0], "scale": [0.7], "rotation": [0.0], "x": [0.5], "y": [0.5]}
    return render_shapes(**{**base, **factors}, size=16)


Case = tuple[str, Callable[[dict[str, Any]], Any], type[Exception], str]
CASES: list[Case] = [
    # built-in datasets
    (
        "superposition correlated='no'",
        lambda e: sw.datasets.superposition(20, 8, 4, 2.0, correlated="no"),
        TypeError,
        "correlated",
    ),
    (
        "superposition seed='abc'",
        lambda e: sw.datasets.superposition(20, 8, 4, 2.0, seed="abc"),
        TypeError,
        "seed",
    ),
    (
        "superposition firing=array",
        lambda e: sw.datasets.superposition(20, 8, 4, 2.0, firing=np.zeros(2)),
        TypeError,
        "firing",
    ),
    (
        "superposition too large",
        lambda e: sw.datasets.superposition(10**9, 8, 10**6, 2.0),
        ValueError,
        "memory",
    ),
    ("hierarchy_parents n_features=[3]", lambda e: hierarchy_parents([3]), TypeError, "n_features"),
    (
        "hierarchy_parents hierarchy='a'",
        lambda e: hierarchy_parents(8, "a"),
        TypeError,
        "hierarchy",
    ),
    ("hierarchy_parents hierarchy=-5", lambda e: hierarchy_parents(8, -5), ValueError, "hierarchy"),
    (
        "firing_probabilities n_features=None",
        lambda e: firing_probabilities(None, 2.0),
        TypeError,
        "n_features",
    ),
    (
        "firing_probabilities active=dict",
        lambda e: firing_probabilities(8, {1: 1.0}),
        TypeError,
        "active",
    ),
    ("render_shapes rotation=None", lambda e: _one(rotation=None), ValueError, "rotation"),
    ("render_shapes y=inf", lambda e: _one(y=[np.inf]), ValueError, "y contains"),
    ("render_shapes shape=None", lambda e: _one(shape=None), ValueError, "shape"),
    ("shapes seed='x'", lambda e: sw.datasets.shapes(n=2, size=8, seed="x"), TypeError, "seed"),
    ("shapes too large", lambda e: sw.datasets.shapes(n=10**9, size=10**4), ValueError, "memory"),
    ("sentences seed='x'", lambda e: sw.datasets.sentences(5, seed="x"), TypeError, "seed"),
    ("sentences label={}", lambda e: sw.datasets.sentences(5, label={}), TypeError, "label"),
    (
        "python_docstrings seed=1j",
        lambda e: sw.datasets.python_docstrings(2, seed=1j),
        TypeError,
        "seed",
    ),
    # TextCorpus / Selection / Dataset
    ("TextCorpus labels={1}", lambda e: sw.TextCorpus(["a"], labels={1}), TypeError, "labels"),
    (
        "TextCorpus labels=[2**64]",
        lambda e: sw.TextCorpus(["a"], labels=[2**64]),
        ValueError,  # a Python int is a class index, beyond the largest one (2**20)
        "labels",
    ),
    (
        "TextCorpus label_names=False",
        lambda e: sw.TextCorpus(["a"], label_names=False),
        TypeError,
        "label_names",
    ),
    (
        "TextCorpus texts=array",
        lambda e: sw.TextCorpus(np.ones((2, 3))),
        TypeError,
        "texts must be a 1-D",
    ),
    (
        "Selection attributes=False",
        lambda e: Selection(8, 10, attributes=False),
        TypeError,
        "attributes",
    ),
    ("Dataset X=meta", lambda e: sw.Dataset(META), ValueError, "meta"),
    ("Dataset[meta]", lambda e: e["ds"][torch.ones(2, device="meta")], ValueError, "meta"),
    # metrics
    ("fvu X_hat='abc'", lambda e: sw.metrics.fvu(np.ones((2, 3)), "abc"), TypeError, "X_hat"),
    (
        "mse X has NaN",
        lambda e: sw.metrics.mse(np.full((2, 3), NAN), np.ones((2, 3))),
        ValueError,
        "X contains NaN",
    ),
    ("l0 codes=meta", lambda e: sw.metrics.l0(META), ValueError, "codes"),
    ("dead_fraction codes=dict", lambda e: sw.metrics.dead_fraction({"a": 1}), TypeError, "codes"),
    (
        "uniqueness threshold=nan",
        lambda e: sw.metrics.uniqueness(np.eye(3), np.eye(3), threshold=NAN),
        ValueError,
        "threshold",
    ),
    # SAE inputs and the rest of the data layer
    ("inverse_transform Z=''", lambda e: e["sae"].inverse_transform(""), TypeError, "Z"),
    ("inverse_transform Z=function", lambda e: e["sae"].inverse_transform(print), TypeError, "Z"),
    (
        "inverse_transform Z=meta",
        lambda e: e["sae"].inverse_transform(torch.ones(2, 12, device="meta")),
        ValueError,
        "Z is a tensor on the 'meta'",
    ),
    ("score X=meta", lambda e: e["sae"].score(META), ValueError, "X is a tensor on the 'meta'"),
    ("transform X=meta", lambda e: e["sae"].transform(META), ValueError, "X is a tensor"),
    (
        "hierarchy_parents n_features=2**64",
        lambda e: hierarchy_parents(2**64),
        ValueError,
        "n_features would need",
    ),
    (
        "TextCorpus label_names=0-d tensor",
        lambda e: sw.TextCorpus(["a"], label_names=torch.tensor(3)),
        TypeError,
        "label_names",
    ),
    (
        "Attribute values='cpu'",
        lambda e: sw.Attribute("a", "cpu", lambda i, v: i),
        TypeError,
        "values",
    ),
    (
        "Attribute identity=array",
        lambda e: sw.Attribute("a", [0.0], lambda i, v: i, identity=np.ones((1, 6))),
        TypeError,
        "identity",
    ),
    (
        "Attribute.sweep values=slice",
        lambda e: e["ds"].attributes["rotation"].sweep([0], slice(None)),
        TypeError,
        "values",
    ),
    # Explorer
    ("Explorer seed=inf", lambda e: sw.Explorer(e["sae"], e["ds"], seed=np.inf), TypeError, "seed"),
    (
        "Explorer codes_dir=-1",
        lambda e: sw.Explorer(e["sae"], e["ds"], codes_dir=-1),
        TypeError,
        "codes_dir",
    ),
    (
        "display_samples max_points=None",
        lambda e: e["ex"].display_samples(None),
        TypeError,
        "max_points",
    ),
    (
        "display_samples source=array",
        lambda e: e["ex"].display_samples(10, source=np.array(["a"])),
        TypeError,
        "source",
    ),
    ("projection source=array", lambda e: e["ex"].projection(np.zeros(3)), TypeError, "source"),
    ("attribute name=list", lambda e: e["ex"].attribute(["x"]), TypeError, "attribute"),
    (
        "unit_summary top_n=array",
        lambda e: e["ex"].unit_summary(1, top_n=np.zeros(0)),
        TypeError,
        "top_n",
    ),
    ("enrichment top=object", lambda e: e["ex"].enrichment([0], top=object()), TypeError, "top"),
    ("heatmap max_rows=None", lambda e: e["ex"].heatmap(max_rows=None), TypeError, "max_rows"),
    (
        "probe samples=meta",
        lambda e: e["ex"].probe(torch.ones(2, device="meta"), "rotation"),
        TypeError,
        "samples",
    ),
    (
        "Comparison absolute=array",
        lambda e: sw.Comparison(e["ex"], e["ex2"], absolute=np.zeros(2)),
        TypeError,
        "absolute",
    ),
    ("matches side=array", lambda e: e["cmp"].matches(0, side=np.zeros(2)), ValueError, "side"),
    # a string is the wrong type (TypeError), not a wrongly shaped array
    ("Explorer dataset='abc'", lambda e: sw.Explorer(e["sae"], "abc"), TypeError, "dataset"),
    ("compare dataset=True", lambda e: sw.compare(e["sae"], e["sae"], True), ValueError, "dataset"),
    ("probe values=function", lambda e: e["ex"].probe(0, "rotation", print), TypeError, "values"),
    # widgets
    ("UnitInspector top_n=nan", lambda e: sw.UnitInspector(e["ex"], top_n=NAN), TypeError, "top_n"),
    (
        "ActivationHeatmap width=nan",
        lambda e: sw.ActivationHeatmap(e["ex"], width=NAN),
        TypeError,
        "width",
    ),
    (
        "ActivationHeatmap max_units='cpu'",
        lambda e: sw.ActivationHeatmap(e["ex"], max_units="cpu"),
        TypeError,
        "max_units",
    ),
    (
        "ProbeSlider n_curves='nan'",
        lambda e: sw.ProbeSlider(e["ex"], n_curves="nan"),
        TypeError,
        "n_curves",
    ),
    (
        "PCABrush n_enriched=()",
        lambda e: sw.PCABrush(e["ex"], n_enriched=()),
        TypeError,
        "n_enriched",
    ),
    (
        "PrefixSlider n_units=(1,)",
        lambda e: sw.PrefixSlider(e["ex"], n_units=(1,)),
        TypeError,
        "n_units",
    ),
    ("UnitTable rows=array", lambda e: sw.UnitTable(e["ex"], rows=np.zeros(2)), TypeError, "rows"),
    (
        "CompareView n_show=-0.1",
        lambda e: sw.CompareView(e["cmp"], n_show=-0.1),
        TypeError,
        "n_show",
    ),
    (
        "SteeringView max_samples=None",
        lambda e: sw.SteeringView(e["ex"], max_samples=None),
        TypeError,
        "max_samples",
    ),
    (
        "TrainingMonitor min_interval=array",
        lambda e: sw.TrainingMonitor(e["sae"], min_interval=np.zeros(0)),
        TypeError,
        "min_interval",
    ),
    (
        "image_grid zoom=2**64",
        lambda e: sw.image_grid(e["ds"].images[:2], zoom=2**64),
        ValueError,
        "zoom",
    ),
    ("focus_unit 'abc'", lambda e: sw.UnitInspector(e["ex"]).focus_unit("abc"), TypeError, "unit"),
    # model-facing calls (a one-layer model whose output has the SAE's width)
    (
        "Intervention add=array",
        lambda e: sw.Intervention(LINEAR, "0", e["sae"], add=np.array([1.0, 2.0])),
        TypeError,
        "add",
    ),
    (
        "evaluate model= on strings",
        lambda e: sw.metrics.evaluate(
            e["sae"], np.full((3, D), "a"), model=LINEAR, layer="0", labels=np.arange(3)
        ),
        TypeError,
        "data",
    ),
    (
        "collect_activations input_shape=array",
        lambda e: sw.collect_activations(LINEAR, "0", e["ds"], input_shape=np.array([8, 8])),
        ValueError,
        "input_shape",
    ),
    (
        "collect_activations overwrite=array",
        lambda e: sw.collect_activations(LINEAR, "0", e["ds"], overwrite=np.array([1, 0])),
        TypeError,
        "overwrite",
    ),
    (
        "collect_activations data=None",
        lambda e: sw.collect_activations(LINEAR, "0", None),
        TypeError,  # as Dataset(None): the wrong type, not "got shape ()"
        "data",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(env: dict[str, Any], case: Case) -> None:
    _, call, error, fragment = case
    with pytest.raises(error, match=None) as info:
        call(env)
    assert fragment in str(info.value), repr(info.value)
    assert type(info.value).__module__.split(".")[0] not in ("numpy", "torch", "builtins") or (
        type(info.value) in (ValueError, TypeError)
    )


def test_a_view_whose_arguments_are_refused_leaves_nothing_behind(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused argument used to leave a half-built view whose __del__ raised
    # ("Exception ignored in Widget.__del__ ... no attribute '_followers'").
    ignored: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    observers = len(env["ex"].selection._trait_notifiers.get("unit", {}).get("change", []))
    for view in (sw.UnitInspector, sw.UnitTable, sw.PCABrush, sw.ActivationHeatmap):
        with pytest.raises(TypeError):
            view(
                env["ex"],
                **{"top_n": "x"}
                if view is sw.UnitInspector
                else {"rows": "x"}
                if view is sw.UnitTable
                else {"n_enriched": "x"}
                if view is sw.PCABrush
                else {"max_rows": "x"},
            )
    with pytest.raises(TypeError):
        sw.CompareView(env["cmp"], top_n="x")
    for build in (
        lambda: env["ex"].dashboard(attribute="nope"),  # fails after four views follow
        lambda: sw.UnitInspector("not an explorer"),  # fails before anything is set
        lambda: sw.CompareView("not a comparison"),
    ):
        with pytest.raises((TypeError, ValueError)):
            build()
    gc.collect()
    assert ignored == []
    after = len(env["ex"].selection._trait_notifiers.get("unit", {}).get("change", []))
    assert after == observers  # no stale observer of the Selection


def test_huge_counts_are_capped_not_looped_over(env: dict[str, Any]) -> None:
    # n_curves=10**30 hung the ProbeSlider; asking for more than exists shows what exists
    view = sw.ProbeSlider(env["ex"], n_curves=10**30, max_average=10**30)
    assert view.n_curves == env["ex"].n_units and view.max_average == env["ex"].n_samples
    view.close()
    table = sw.UnitTable(env["ex"], rows=10**30)
    table.close()


def test_a_huge_integer_coefficient_trains_like_the_float() -> None:
    # aux_coeff=2**64 (an int, accepted as a finite number) overflowed in torch:
    # "OverflowError: int too big to convert" from the training loop
    X = np.random.default_rng(1).standard_normal((24, 6)).astype(np.float32)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=8, aux_coeff=2**64)
    try:
        sae.fit(X, progress=False)
    except FloatingPointError:  # NonFiniteLossError: the documented outcome of a huge penalty
        return
    assert all(bool(torch.isfinite(w).all()) for w in sae.model_.weights().values())


@pytest.mark.parametrize("source", ["numpy float64", "numpy float32", "tensor"])
def test_inputs_are_checked_in_one_pass_and_still_refused(monkeypatch, source: str) -> None:
    """A numpy input is checked before conversion only (each check reads all the data)."""
    from sae_widgets.sae import inputs

    calls = []
    extremes = inputs._extremes
    monkeypatch.setattr(inputs, "_extremes", lambda a: calls.append(1) or extremes(a))
    X = np.random.default_rng(0).standard_normal((50, 4))
    as_input = {
        "numpy float64": lambda a: a,
        "numpy float32": lambda a: a.astype(np.float32),
        "tensor": torch.from_numpy,
    }[source]
    out = inputs.as_tensor(as_input(X), "X", 4, torch.device("cpu"))
    assert out.dtype == torch.float32 and len(calls) == 1
    for bad in (NAN, float("inf"), 1e31):
        X[3, 1] = bad
        with pytest.raises(ValueError, match="X "):
            inputs.as_tensor(as_input(X), "X", 4, torch.device("cpu"))
