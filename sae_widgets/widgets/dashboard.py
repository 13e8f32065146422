"""`build_dashboard(ex)`: every view of an Explorer laid out together, linked by its Selection.

The views never talk to each other; they are linked only because they share
``ex.selection``. The status line says how many samples are selected and which unit is
focused.

Layout: the status line; the PCA plot beside the heatmap (where a selection is made, and
what it selects; one row from about 1,100 px of window up, figures shrinking to fit); the unit
table beside the unit inspector; the probe slider. Rows wrap, so on a narrow screen the views
stack instead of overflowing.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._view import ExplorerView, check_choice, wrapping_row
from sae_widgets.widgets.heatmap import ActivationHeatmap
from sae_widgets.widgets.pca_brush import PCABrush
from sae_widgets.widgets.prefix_slider import PrefixSlider
from sae_widgets.widgets.probe_slider import ProbeSlider
from sae_widgets.widgets.steering import SteeringView
from sae_widgets.widgets.unit_inspector import UnitInspector
from sae_widgets.widgets.unit_table import UnitTable
from sae_widgets.wording import counted

__all__ = ["Dashboard", "build_dashboard", "status_text"]


def status_text(n_samples: int, unit: int | None) -> str:
    """The status line: "<N> samples selected · unit <u>" ("1 sample selected")."""
    return f"{counted(n_samples, 'sample')} selected · unit {'none' if unit is None else unit}"


class Dashboard(ExplorerView):
    """All views of one Explorer, linked through its Selection.

    Attributes
    ----------
    status:
        HTML status line, "<N> samples selected · unit <u>" (CSS class ``sw-status``).
    brush, inspector, heatmap, table, probe:
        The PCABrush, UnitInspector, ActivationHeatmap, UnitTable and ProbeSlider (None
        when the dataset has no attributes to probe).
    steering:
        The SteeringView when the Explorer knows the model and layer, else None.
    prefix:
        The PrefixSlider when the SAE has nested prefixes (Matryoshka), else None.
    figure:
        The PCA brush's figure (where exploring usually starts).
    """

    def __init__(
        self, ex: Explorer, *, attribute: str | None = None, select_with: str = "lasso"
    ) -> None:
        super().__init__(ex)  # a failure from here on closes what was built (ExplorerView)
        if attribute is not None:  # checked here too: without attributes there is no probe
            names = list(ex.dataset.attributes)
            if isinstance(attribute, str) and not names:
                raise ValueError(
                    f"attribute: this dataset has no attributes for a ProbeSlider to vary; "
                    f"got {attribute!r}"
                )
            check_choice(attribute, "attribute", names)
        self._build(ex, attribute, select_with)

    def _build(self, ex: Explorer, attribute: str | None, select_with: str) -> None:
        self.status = widgets.HTML()
        self.status.add_class("sw-status")
        # Followed before any view is built, so its update is the first message of an action:
        # the line the user reads first changes first.
        self.follow(lambda _change: self._draw_status(), "unit", "samples")
        # Built (so following the Selection) in the order a user looks after an action: the
        # inspector's unit change before the PCA plot's recolouring (with WebGL, one message
        # of every drawn point), then the lists and the heatmap.
        self.inspector = UnitInspector(ex)
        self.brush = PCABrush(ex, select_with=select_with)
        self.table = UnitTable(ex)
        self.heatmap = ActivationHeatmap(ex)
        self.probe = ProbeSlider(ex, attribute) if ex.dataset.attributes else None
        steerable = ex.steerer is not None and ex.steerer.kind != "none"
        self.steering = SteeringView(ex) if steerable else None
        self.figure = self.brush.figure
        self.views: list[ExplorerView] = [self.brush, self.inspector, self.heatmap, self.table]
        if self.probe is not None:
            self.views.append(self.probe)
        # The heatmap takes the room the PCA view leaves (its sample card wraps under the
        # matrix when that is too little) and moves under the PCA plot below its own width.
        self.brush.layout.flex = "0 1 440px"
        self.heatmap.layout.flex = "1 1 360px"
        self.heatmap.layout.min_width = "360px"
        gap = "0 24px"  # row gap 0, column gap 24 px
        self.inspector.layout.flex = "1 1 900px"  # beside the table only when there is room
        # Its own width, or less on a narrow screen: it may shrink (down to its list's width)
        # so that its search and sort buttons wrap instead of overflowing the notebook.
        self.table.layout.flex = "0 1 auto"
        unit_row = wrapping_row([self.table, self.inspector], grid_gap=gap)
        full_width: list[widgets.Widget] = [unit_row]
        if self.probe is not None:
            full_width.append(self.probe)
        if self.steering is not None:
            self.views.append(self.steering)
            full_width.append(self.steering)
        self.prefix = PrefixSlider(ex) if ex.prefix_sizes is not None else None
        if self.prefix is not None:
            self.views.append(self.prefix)
            full_width.append(self.prefix)
        for view in full_width:  # a rule above each full-width row
            view.layout.border_top = "1px solid #e0e0e0"
            view.layout.margin = "12px 0 0 0"
            view.layout.padding = "8px 0 0 0"
        self.children = [
            self.status,
            wrapping_row([self.brush, self.heatmap], grid_gap=gap),
            *full_width,
        ]
        self.add_class("sw-dashboard")
        self._draw_status()
        # After every view's update: the PCA plot's new WebGL frame may be drawn (held until
        # now so that it does not delay the others; RendererFit).
        self.brush.releases_frames = False
        self.follow(lambda _change: self.brush.release_frames(), "unit", "samples", "revision")

    def redraw(self) -> None:
        self._draw_status()  # each view follows the refresh itself

    def _draw_status(self) -> None:
        text = status_text(len(self.selection.samples), self.selection.unit)
        self.status.value = f"<b>{text}</b>"

    def close(self) -> None:
        # by name, not self.views: a dashboard whose __init__ failed part-way has only some
        for name in ("brush", "inspector", "table", "heatmap", "probe", "steering", "prefix"):
            view = getattr(self, name, None)
            if view is not None:
                view.close()
        super().close()


def build_dashboard(ex: Explorer, **options: Any) -> Dashboard:
    """The dashboard of `ex` (what ``ex.dashboard(**options)`` returns).

    options: ``attribute=`` picks the ProbeSlider's first attribute; ``select_with=`` the
    PCA plot's first selection tool, "lasso" (default) or "rectangle" (the user can switch).
    """
    return Dashboard(ex, **options)
