"""A view whose construction fails part-way is still closed quietly by ipywidgets' __del__
(its close() must not assume the attributes __init__ never set)."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest

import sae_widgets as sw


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


@pytest.mark.parametrize(
    "build",
    [
        lambda ex: ex.dashboard(select_with="nope"),  # fails after the box exists
        lambda ex: sw.UnitInspector("not an explorer"),  # fails before anything is set
        lambda ex: sw.PCABrush(ex, select_with="nope"),
        lambda ex: sw.CompareView("not a comparison"),
    ],
    ids=["dashboard", "inspector", "brush", "compare"],
)
def test_a_failed_construction_raises_once_and_nothing_else(
    digits_sae: tuple[sw.SAE, sw.Dataset], unraisable: list[Any], build: Any
) -> None:
    sae, data = digits_sae
    ex = sw.Explorer(sae, data[:60])
    with pytest.raises((TypeError, ValueError)):
        build(ex)
    gc.collect()
    assert [f"{u.exc_type.__name__}: {u.exc_value}" for u in unraisable] == []
