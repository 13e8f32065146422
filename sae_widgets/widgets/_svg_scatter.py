"""`SVGScatter`: the PCA view's bqplot scatter of every sample, with a lasso and a rectangle.

The SVG counterpart of `_gl_scatter.GLScatter`, for up to a few thousand points. bqplot's
LassoSelector marks the points of an invisible copy of the scatter and reports their indices
(reset after each lasso, so the next one starts afresh); the rectangle (a BrushSelector) is
reported on release as its x and y ranges, which the view turns into samples over all projected
points. Both reach the kernel from a mouse drag in JupyterLab 4 and Notebook 7 since bqplot-gl
left the dependencies (its bundled d3 broke bqplot's BrushSelector, bqplot #1693).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import LinearScale, Scatter
from bqplot.interacts import BrushSelector, LassoSelector

from sae_widgets.widgets._hover_relay import HoverRelay
from sae_widgets.widgets._view import axis, event_positions, figure

__all__ = ["SVGScatter"]


class SVGScatter:
    """A bqplot scatter of `coords` (every sample) with a lasso and a rectangle tool.

    A lasso reports the marked samples to `on_lassoed`; a rectangle, on release, its
    (x_range, y_range) to `on_rect`. The visible points show `tooltip` when hovered and report
    the hovered sample to `on_hovered` (bqplot's ``hovered_point`` change).

    Attributes
    ----------
    figure:
        The Figure; its ``interaction`` is `lasso` or `brush`.
    scatter:
        The visible Scatter mark.
    brush, lasso, lasso_target:
        The BrushSelector, the LassoSelector and the invisible copy of the points it marks.
    hover_relay:
        The `HoverRelay` that lets points be hovered under the selector (display it in the
        view whose CSS class is `view_selector`).
    """

    def __init__(
        self,
        coords: np.ndarray,
        *,
        axis_label: str,
        tool: str,
        width: str,
        tooltip: widgets.Widget,
        on_lassoed: Callable[[np.ndarray], None],
        on_rect: Callable[[Sequence[float], Sequence[float]], None],
        on_hovered: Callable[[dict[str, Any]], None],
        view_selector: str,
    ) -> None:
        self._on_lassoed = on_lassoed
        self._on_rect = on_rect
        x_scale, y_scale = LinearScale(), LinearScale()
        x = np.ascontiguousarray(coords[:, 0], dtype=np.float32)
        y = np.ascontiguousarray(coords[:, 1], dtype=np.float32)
        self.scatter = Scatter(
            x=x,
            y=y,
            scales={"x": x_scale, "y": y_scale},
            default_size=16,
            stroke=None,
            unselected_style={"opacity": 0.2},
            tooltip=tooltip,
        )
        self.scatter.observe(on_hovered, "hovered_point")
        # bqplot draws the selector's event layer over the marks (bqplot's Figure.ts), so no
        # point would ever be hovered while a lasso or rectangle tool is active: the relay
        # hands the pointer's hover to the point under it (see _hover_relay).
        self.hover_relay = HoverRelay(view_selector)
        self.brush = BrushSelector(x_scale=x_scale, y_scale=y_scale, color="#ff7f0e")
        self.brush.observe(self._brushing, "brushing")
        # The lasso marks an invisible target, never the visible scatter, so resetting the
        # lasso in the browser cannot wipe the highlighted selection.
        self.lasso_target = Scatter(
            x=x,
            y=y,
            scales={"x": x_scale, "y": y_scale},
            opacities=[0.0],
            default_size=4,
            enable_hover=False,
            preserve_domain={"x": True, "y": True},
            # Not drawn at all: the lasso tests the mark's data positions, never its DOM, and
            # 1,797 transparent dots cost the browser ~30 ms of compositing on every frame.
            visible=False,
        )
        self.lasso = LassoSelector(marks=[self.lasso_target], color="#ff7f0e")
        self.lasso_target.observe(self._lassoed, "selected")
        self.figure = figure(
            [self.lasso_target, self.scatter],  # the visible points on top, for hovering
            [
                axis(x_scale, axis_label.format(1)),
                axis(y_scale, axis_label.format(2), vertical=True),
            ],
            title="PCA: select samples",
            width="auto",  # the room left by its 2 px margins (100% overflowed by 4 px)
            height="380px",
            interaction=self.lasso if tool == "lasso" else self.brush,
        )
        # As wide as the room allows, between 300 px and `width`.
        self.figure.layout.max_width = width
        self.figure.layout.min_width = "300px"

    def set_tool(self, tool: str) -> None:
        """ "lasso" or "rectangle"."""
        self.figure.interaction = self.lasso if tool == "lasso" else self.brush

    def set_coords(self, coords: np.ndarray) -> None:
        """Move every point to `coords` (a new projection), the lasso's copy with them."""
        x = np.ascontiguousarray(coords[:, 0], dtype=np.float32)
        y = np.ascontiguousarray(coords[:, 1], dtype=np.float32)
        for mark in (self.scatter, self.lasso_target):
            with mark.hold_sync():
                mark.x, mark.y = x, y
        self.clear_rect()  # drawn around the old positions

    def show_selected(self, samples: Sequence[int]) -> None:
        self.scatter.selected = np.asarray(samples, dtype=np.int32) if len(samples) else None

    def clear_rect(self) -> None:
        """Forget the rectangle (the selection came from elsewhere)."""
        with self.brush.hold_sync():
            self.brush.selected_x = None
            self.brush.selected_y = None

    def _brushing(self, change: dict[str, Any]) -> None:
        if change["new"]:  # still dragging: work waits for the release
            return
        x_range, y_range = self.brush.selected_x, self.brush.selected_y
        if x_range is None or y_range is None or len(x_range) < 2 or len(y_range) < 2:
            return
        if not (np.isfinite(x_range).all() and np.isfinite(y_range).all()):
            return  # a malformed message (NaN corners): ignored, as every view's clicks
        self._on_rect(x_range, y_range)

    def _lassoed(self, change: dict[str, Any]) -> None:
        """The browser marked the target points inside a lasso: they are the drawn set.

        An empty mark is not a selection: it is what the browser reports after the lasso is
        reset (and a lasso around empty space keeps the selection; clearing empties it).
        """
        marked = event_positions(change["new"])
        if marked is None or len(marked) == 0:  # None: a malformed message, ignored
            return
        n_points = len(np.asarray(self.lasso_target.x))
        marked = marked[(marked >= 0) & (marked < n_points)]  # a malformed message: ignored
        if len(marked):
            self._on_lassoed(marked)
        self.lasso.reset()  # the next lasso starts afresh instead of adding to this one
