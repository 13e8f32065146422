"""`GLScatter`: the PCA view's WebGL scatter for many points, built on jupyter-scatter.

jupyter-scatter (anywidget + regl-scatterplot) draws 10^6 points, selects them with a lasso
or a rectangle in the browser and sends the selected indices back as one binary array; it
needs no labextension of its own. This adapter gives PCABrush the few calls it makes:
`set_tool`, `set_colors`, `show_selected`, and two callbacks: the outline of each lasso or
rectangle (in data coordinates, so the kernel can select over every sample, drawn or not)
and the drawn points a click selected.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from sae_widgets.widgets._gl_fit import RendererFit
from sae_widgets.widgets._steady_anywidget import GATE
from sae_widgets.widgets._view import event_positions

__all__ = ["GLScatter"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """jupyter-scatter 1.0.1 calls pandas APIs that pandas 3 deprecates; a user cannot act on
    those warnings, so they are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword")
        warnings.filterwarnings("ignore", category=FutureWarning, module="jscatter")
        yield


with _quiet():  # its import reads fonts through pandas, warning too
    from jscatter import Scatter


class GLScatter:
    """A WebGL scatter of `coords`.

    A lasso or rectangle reports its outline ((m, 2) data coordinates) to `on_outline`; a
    selection the browser made without an outline (a click on a point) reports the
    positions of the selected points in `coords` to `on_drawn`. (jupyter-scatter sends the
    points it selected before the outline; those are positions among the drawn points only,
    so with an outline handler they are not used.)

    Attributes
    ----------
    plot:
        The `jscatter.Scatter`.
    widget:
        Its Jupyter widget (what is displayed).
    fit:
        A `RendererFit`, to display beside `widget`: frames drawn at the plot's size, held
        while the kernel answers a lasso or recolours (`RendererFit.hold` / `release`).
    """

    def __init__(
        self,
        coords: np.ndarray,
        on_drawn: Callable[[np.ndarray], None],
        tool: str = "lasso",
        *,
        on_outline: Callable[[np.ndarray], None] | None = None,
        width: str = "420px",
        height: int = 380,
    ) -> None:
        self._on_drawn = on_drawn
        self._on_outline = on_outline
        self._showing: np.ndarray | None = None  # what we sent, so our own echo is ignored
        with _quiet():
            self.plot = Scatter(
                x=np.ascontiguousarray(coords[:, 0], dtype=np.float32),
                y=np.ascontiguousarray(coords[:, 1], dtype=np.float32),
                size=3,
                height=height,
                axes=True,
                axes_grid=False,
                opacity_unselected=0.3,
            )
            self.plot.mouse(mode="lasso")  # a plain drag selects, as on the SVG scatter
            self.widget = self.plot.widget
        # jupyter-scatter's widget is an anywidget too: the same gate as ours holds the kernel's
        # later messages (our figures) until its ESM has loaded (widgets/_steady_anywidget.py;
        # its custom-message handler ignores a message of no known type)
        self.widget.send(GATE)
        self.widget.layout.width = width
        self.fit = RendererFit()
        self.set_tool(tool)
        self.widget.observe(self._selected, "selection")
        self.widget.observe(self._outlined, "lasso_selection_polygon")

    def set_tool(self, tool: str) -> None:
        """ "lasso" (a freeform loop) or "rectangle"."""
        with _quiet():
            self.plot.lasso(type="rectangle" if tool == "rectangle" else "freeform")

    def set_coords(self, coords: np.ndarray) -> None:
        """Move the drawn points to `coords` (a new projection; no animation)."""
        self.fit.hold()  # the new frame waits for the caller's `fit.release()`
        with _quiet():
            self.plot.xy(
                x=np.ascontiguousarray(coords[:, 0], dtype=np.float32),
                y=np.ascontiguousarray(coords[:, 1], dtype=np.float32),
                animate=False,
            )

    def set_colors(self, index: np.ndarray, palette: Sequence[str]) -> None:
        """Colour point i with palette[index[i]].

        Values are sent as (index + 0.5) / len(palette), the middle of each colour's share of
        [0, 1], so the browser picks the same colour whether it floors or rounds.
        """
        k = max(len(palette), 1)
        values = (np.asarray(index, dtype=np.float32) + 0.5) / k
        self.fit.hold()  # the new frame waits for the caller's `fit.release()`
        with _quiet():
            self.plot.color(by=values, map=list(palette), norm=(0.0, 1.0))

    def show_selected(self, samples: Sequence[int]) -> None:
        selected = np.asarray(samples, dtype=np.uint32)
        current = self.widget.selection
        # The browser lists a lasso's points in its own (spatial index) order: compare sorted,
        # so showing the points it already shows sends nothing (and costs no redraw).
        if current is not None and np.array_equal(
            np.sort(np.asarray(current, np.uint32)), np.sort(selected)
        ):
            return
        self._showing = selected
        self.fit.hold()  # the new frame waits for the caller's `fit.release()`
        with _quiet():
            self.plot.selection(selected if len(selected) else None)

    def _selected(self, change: dict[str, Any]) -> None:
        picked = event_positions(change["new"])
        if picked is None:
            return  # a malformed message (not a 1-D list of whole numbers): ignored
        if self._showing is not None and np.array_equal(picked, self._showing):
            return  # the browser echoing what the kernel showed
        self._showing = None
        # A lasso's points come with an outline right after them: the outline decides. A
        # single point without one is a click.
        if len(picked) == 1 or (len(picked) and self._on_outline is None):
            self.fit.holding = True  # since the release on the plot (the browser holds)
            self._on_drawn(picked)
            self.fit.release()
        elif not len(picked):  # a click on empty space: no outline follows
            self.fit.holding = True
            self.fit.release()

    def _outlined(self, change: dict[str, Any]) -> None:
        new = change["new"]
        if self._on_outline is None or new is None:
            return
        outline = np.asarray(new, dtype=np.float64)
        self.fit.holding = True  # since the release on the plot (the browser holds)
        drawn = outline.ndim == 2 and outline.shape[1] == 2 and len(outline) >= 3
        if drawn and np.isfinite(outline).all():  # else malformed: ignored
            self._on_outline(outline)  # an empty outline is a deselect: nothing to do
        self.fit.release()  # no-op when the caller released it already
