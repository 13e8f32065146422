"""`build_dashboard(ex)`: every view of an Explorer laid out together, linked by its Selection.

The views never talk to each other; they are linked only because they share
``ex.selection``. The status line says how many samples are selected and which unit is
focused.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from sae_widgets.widgets._view import ExplorerView
from sae_widgets.widgets.explorer import Explorer
from sae_widgets.widgets.heatmap import ActivationHeatmap
from sae_widgets.widgets.pca_brush import PCABrush
from sae_widgets.widgets.probe_slider import ProbeSlider
from sae_widgets.widgets.unit_inspector import UnitInspector

__all__ = ["Dashboard", "build_dashboard", "status_text"]


def status_text(n_samples: int, unit: int | None) -> str:
    """The status line: "<N> samples selected · unit <u>"."""
    return f"{n_samples:,} samples selected · unit {'none' if unit is None else unit}"


class Dashboard(ExplorerView):
    """All views of one Explorer, linked through its Selection.

    Attributes
    ----------
    status:
        HTML status line, "<N> samples selected · unit <u>".
    brush, inspector, heatmap, probe:
        The PCABrush, UnitInspector, ActivationHeatmap and ProbeSlider (None when the
        dataset has no attributes to probe).
    figure:
        The PCA brush's figure (where exploring usually starts).
    """

    def __init__(
        self, ex: Explorer, *, attribute: str | None = None, select_with: str = "rectangle"
    ) -> None:
        super().__init__(ex)
        self.status = widgets.HTML()
        self.brush = PCABrush(ex, select_with=select_with)
        self.inspector = UnitInspector(ex)
        self.heatmap = ActivationHeatmap(ex)
        self.probe = ProbeSlider(ex, attribute) if ex.dataset.attributes else None
        self.figure = self.brush.figure
        self.views: list[ExplorerView] = [self.brush, self.inspector, self.heatmap]
        if self.probe is not None:
            self.views.append(self.probe)
        row = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
        self.children = [
            self.status,
            widgets.HBox([self.brush, self.inspector], layout=row),
            widgets.HBox([self.heatmap], layout=row),
            *([self.probe] if self.probe is not None else []),
        ]
        self.follow(lambda _change: self._draw_status(), "unit", "samples")
        self._draw_status()

    def _draw_status(self) -> None:
        text = status_text(len(self.selection.samples), self.selection.unit)
        self.status.value = f"<b>{text}</b>"

    def close(self) -> None:
        for view in self.views:
            view.close()
        super().close()


def build_dashboard(ex: Explorer, **options: Any) -> Dashboard:
    """The dashboard of `ex` (what ``ex.dashboard(**options)`` returns).

    options: ``attribute=`` picks the ProbeSlider's first attribute; ``select_with=`` the
    PCA plot's first selection tool, "rectangle" or "lasso" (the user can switch).
    """
    return Dashboard(ex, **options)
