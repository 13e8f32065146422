"""PCABrush: the 2-D PCA of the samples, a lasso (or rectangle) that selects them, and the
units most enriched in the selection.

The scatter is WebGL (bqplot-gl's ScatterGL) above `GL_THRESHOLD` points and SVG below. The
visible scatter only *shows* ``ex.selection.samples``; the selectors never mark it.

The lasso is the default tool. bqplot's LassoSelector marks the points of an invisible target
mark in the browser and reports their indices: a copy of the points for an SVG scatter, or,
since WebGL points cannot be lassoed, a `LASSO_GRID` x `LASSO_GRID` grid of anchor points,
every sample of a marked cell being selected. After each lasso the selector is reset, so the
next lasso replaces the selection instead of adding to it.

The rectangle (`brush`, a BrushSelector) stays wired: on release (``brushing`` back to
False) the rectangle goes through the Explorer's pure `samples_in_rect` over *all* projected
points. Drawn with the mouse it needs a bqplot release with issue #1693 fixed: in bqplot
0.13.1 a rectangle dragged in JupyterLab never reaches the kernel. Set from Python (as tests
do) it works in every release.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import ColorScale, LinearScale, Scatter
from bqplot.interacts import BrushSelector, LassoSelector
from bqplot_gl import ScatterGL

from sae_widgets.analysis.lasso import grid_anchors, samples_in_cells
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._render import CATEGORY10
from sae_widgets.widgets._view import ExplorerView, UnitButtons, axis, figure, toggle_buttons

__all__ = ["GL_THRESHOLD", "LASSO_GRID", "PCABrush"]

GL_THRESHOLD = 3000
"""Above this many points the scatter is drawn with WebGL; SVG stays crisp below it."""

LASSO_GRID = 48
"""Cells per side of the lasso's anchor grid over a WebGL scatter (its spatial resolution)."""

_ACTIVATION_COLORS = ["#d9d9d9", "#fdae61", "#d7191c"]  # zero is light grey, not invisible

# (label, value, tooltip) of the selection tools, the default first.
SELECT_TOOLS = [
    ("lasso", "lasso", "Draw a loop around samples to select them"),
    (
        "rectangle",
        "rectangle",
        "Drag a rectangle to select samples. With the mouse this needs a bqplot release with "
        "issue #1693 fixed (bqplot 0.13.1 never sends the rectangle to Python); "
        "setting .brush from Python always works",
    ),
]


class PCABrush(ExplorerView):
    """Brush the projected samples to select them for every other view.

    Parameters
    ----------
    ex:
        The Explorer whose Selection this view follows and sets.
    source:
        What is projected: "codes" or "inputs" (default: the Explorer's projection).
    color_by:
        "label" or "activation" (of the focused unit); "label" needs dataset labels.
    n_enriched:
        Number of enriched-unit buttons.
    select_with:
        The first selection tool: "lasso" (default) or "rectangle" (see the module notes on
        bqplot #1693); the user can switch.

    Attributes
    ----------
    figure:
        The scatter's Figure (its ``interaction`` is `lasso` or `brush`).
    scatter:
        ScatterGL or Scatter mark of every sample; its ``selected`` shows the Selection.
    brush:
        The BrushSelector; releasing it (``brushing`` back to False) selects the samples.
    lasso, select_with:
        The LassoSelector, and the ToggleButtons choosing lasso or rectangle.
    lasso_target:
        The invisible mark the lasso marks: a copy of the points (SVG) or the anchor grid
        (WebGL).
    color_by:
        ToggleButtons choosing the colouring.
    count, enriched, clear_button:
        "<N> samples selected", the enriched-unit buttons, the button that clears.
    """

    def __init__(
        self,
        ex: Explorer,
        *,
        source: str | None = None,
        color_by: str | None = None,
        n_enriched: int = 8,
        select_with: str = "lasso",
    ) -> None:
        super().__init__(ex)
        if select_with not in ("lasso", "rectangle"):
            raise ValueError(f"select_with: expected 'lasso' or 'rectangle', got {select_with!r}")
        self.source = source
        self.n_enriched = int(n_enriched)
        coords = ex.projection(source).coords
        labels = ex.dataset.labels
        self._brushed_samples: list[int] | None = None

        x_scale, y_scale = LinearScale(), LinearScale()
        self.color_scale = ColorScale()
        mark_class = ScatterGL if ex.n_samples > GL_THRESHOLD else Scatter
        self.scatter = mark_class(
            x=np.ascontiguousarray(coords[:, 0]),
            y=np.ascontiguousarray(coords[:, 1]),
            scales={"x": x_scale, "y": y_scale, "color": self.color_scale},
            default_size=4 if ex.n_samples > GL_THRESHOLD else 16,
            stroke=None,
            unselected_style={"opacity": 0.2},
            enable_hover=False,
        )
        self.brush = BrushSelector(x_scale=x_scale, y_scale=y_scale, color="#ff7f0e")
        self.brush.observe(self._on_brushing, "brushing")
        self._coords = coords
        # The lasso marks an invisible target, never the visible scatter, so resetting the
        # lasso in the browser cannot wipe the highlighted selection.
        if isinstance(self.scatter, ScatterGL):
            target_x, target_y = grid_anchors(coords, LASSO_GRID)
        else:
            target_x, target_y = self.scatter.x, self.scatter.y
        self.lasso_target = Scatter(
            x=target_x,
            y=target_y,
            scales={"x": x_scale, "y": y_scale},
            opacities=[0.0],
            default_size=4,
            enable_hover=False,
            preserve_domain={"x": True, "y": True},
        )
        self.lasso = LassoSelector(marks=[self.lasso_target], color="#ff7f0e")
        self.lasso_target.observe(self._on_lassoed, "selected")
        axis_label = "PC {} of the " + ("unit codes" if self._source() == "codes" else "inputs")
        self.figure = figure(
            [self.scatter, self.lasso_target],
            [
                axis(x_scale, axis_label.format(1)),
                axis(y_scale, axis_label.format(2), vertical=True),
            ],
            title="PCA: select samples",
            width="420px",
            height="400px",
            interaction=self.lasso if select_with == "lasso" else self.brush,
        )
        self.select_with = toggle_buttons(
            [(label, value) for label, value, _ in SELECT_TOOLS],
            select_with,
            tooltips=[tip for _, _, tip in SELECT_TOOLS],
        )
        self.select_with.observe(self._on_select_with, "value")

        options = [("unit activation", "activation")]
        if labels is not None:
            options.insert(0, ("label", "label"))
        if color_by is None:
            color_by = options[0][1]
        if color_by not in [value for _, value in options]:
            raise ValueError(
                f"color_by: expected one of {[v for _, v in options]} for this dataset, "
                f"got {color_by!r}"
            )
        self.color_by = toggle_buttons(
            options,
            color_by,
            tooltips=[f"colour each sample by its {label}" for label, _ in options],
        )
        self.color_by.observe(lambda _change: self._recolor(), "value")
        self.count = widgets.HTML()
        self.clear_button = widgets.Button(description="clear", icon="times")
        self.clear_button.on_click(lambda _button: self.clear())
        self.enriched = UnitButtons("<b>enriched</b> (in vs out)", self.focus_unit, n_enriched)
        # As wide as the plot: the buttons wrap under it instead of widening the view.
        self.enriched.layout.max_width = self.figure.layout.width
        label_width = widgets.Layout(width="80px")
        self.children = [
            widgets.HBox([widgets.Label("colour by", layout=label_width), self.color_by]),
            widgets.HBox([widgets.Label("select with", layout=label_width), self.select_with]),
            self.figure,
            widgets.HBox([self.count, self.clear_button], layout=widgets.Layout(grid_gap="8px")),
            self.enriched,
        ]
        self.add_class("sw-pca")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling
        self.follow(lambda _change: self._on_unit(), "unit")
        self.follow(lambda _change: self._draw_samples(), "samples")
        self._recolor()
        self._draw_samples()

    def _source(self) -> str:
        return self.source or self.ex.default_projection

    # -- view -> Selection ---------------------------------------------------------------------

    def _on_brushing(self, change: dict[str, Any]) -> None:
        if change["new"]:  # still dragging: the heavy work waits for the release
            return
        x_range, y_range = self.brush.selected_x, self.brush.selected_y
        if x_range is None or y_range is None or len(x_range) < 2 or len(y_range) < 2:
            return
        inside = self.ex.samples_in_rect(x_range, y_range, self.source).tolist()
        self._brushed_samples = inside
        self.selection.samples = inside

    def _on_lassoed(self, change: dict[str, Any]) -> None:
        """The browser marked the target points inside a lasso: they are the selection.

        An empty mark is not a selection: it is what the browser reports after the lasso is
        reset (and a lasso around empty space keeps the selection; `clear` empties it).
        """
        if change["new"] is None or len(change["new"]) == 0:
            return
        picked = np.unique(np.asarray(change["new"], dtype=np.int64))
        if isinstance(self.scatter, ScatterGL):  # anchor cells -> the samples inside them
            picked = samples_in_cells(self._coords, picked, LASSO_GRID)
        if len(picked):  # cells that hold no sample are empty space: the selection stays
            self.selection.samples = picked.tolist()
        self.lasso.reset()  # the next lasso starts afresh instead of adding to this one

    def _on_select_with(self, change: dict[str, Any]) -> None:
        self.figure.interaction = self.lasso if change["new"] == "lasso" else self.brush

    def clear(self) -> None:
        """Forget the selected samples (and the brush rectangle)."""
        self.selection.samples = []

    # -- Selection -> view ---------------------------------------------------------------------

    def _draw_samples(self) -> None:
        samples = self.selection.samples
        if samples != self._brushed_samples:  # selected elsewhere: the rectangle is stale
            self._brushed_samples = None
            with self.brush.hold_sync():
                self.brush.selected_x = None
                self.brush.selected_y = None
        n = len(samples)
        self.count.value = f"<b>{n:,}</b> samples selected" if n else "no samples selected"
        self.clear_button.disabled = n == 0
        self.scatter.selected = np.asarray(samples, dtype=np.int32) if n else None
        if n:
            found = self.ex.enrichment(samples, top=self.n_enriched)
            self.enriched.show(
                found.units,
                [
                    f"{u} ({100 * i:.0f}% vs {100 * o:.0f}%)"
                    for u, i, o in zip(found.units, found.rate_inside, found.rate_outside)
                ],
            )
        else:
            self.enriched.show([])

    def _on_unit(self) -> None:
        if self.color_by.value == "activation":
            self._recolor()

    def _recolor(self) -> None:
        """Colour by label, or by the focused unit's activation (sending only that column)."""
        if self.color_by.value == "label":
            labels = self.ex.dataset.labels
            assert labels is not None
            n_labels = max(int(labels.max()) + 1, 2)
            with self.color_scale.hold_sync():
                self.color_scale.colors = [CATEGORY10[i % 10] for i in range(n_labels)]
                self.color_scale.min, self.color_scale.max = 0.0, float(n_labels - 1)
            self.scatter.color = labels.astype(np.float32)
            return
        unit = self.selection.unit
        activation = np.zeros(self.ex.n_samples, dtype=np.float32)
        top = 1.0
        if unit is not None:
            samples, values = self.ex.codes.unit_samples(unit)
            activation[samples] = values
            top = max(float(self.ex.codes.max_activation[unit]), 1e-6)
        with self.color_scale.hold_sync():
            self.color_scale.colors = _ACTIVATION_COLORS
            self.color_scale.min, self.color_scale.max = 0.0, top
        self.scatter.color = activation
