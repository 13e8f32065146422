"""PCABrush: the 2-D PCA of the samples, a lasso or rectangle that selects them, and the
units most enriched in the selection.

Up to `GL_THRESHOLD` points the scatter is bqplot's SVG `Scatter`; above it, a WebGL scatter
(jupyter-scatter, see `_gl_scatter`) of at most `max_points` of them
(`Explorer.display_samples`: a decimated subset that keeps the cloud's shape), so what is
sent per action stays bounded at 10^6 samples: the points once, then one colour per drawn
point, and the drawn points of the selection. Either way the visible scatter only *shows*
``ex.selection.samples``; a lasso or rectangle selects over every sample, drawn or not.

SVG (`_svg_scatter`): bqplot's LassoSelector reports the marked samples, the rectangle its
ranges, turned into samples by the Explorer's pure `samples_in_rect` over all projected points.
WebGL (`_gl_scatter`): jupyter-scatter selects in the browser and sends the outline, and the
Explorer's `samples_in_polygon` finds every sample inside it.

Each drawn set replaces the selection, or is added to / subtracted from it (`mode`); the
Explorer's `history` undoes a step. Points are coloured by label or by the focused unit's
activation through one per-point colour list (one message, so the browser can never pair new
colours with an old scale), explained by a legend under the plot.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Scatter
from bqplot.interacts import BrushSelector, LassoSelector

from sae_widgets.explore.explorer import Explorer
from sae_widgets.explore.history import MODES, combine
from sae_widgets.widgets._export import csv_download_html, export_buttons
from sae_widgets.widgets._hover_relay import HoverRelay
from sae_widgets.widgets._legend import hover_card
from sae_widgets.widgets._point_colors import activation_colors, label_colors
from sae_widgets.widgets._svg_scatter import SVGScatter
from sae_widgets.widgets._unit_buttons import UnitButtons
from sae_widgets.widgets._view import (
    ExplorerView,
    check_choice,
    check_count,
    check_css_size,
    toggle_buttons,
)
from sae_widgets.wording import noun_for

__all__ = ["GL_THRESHOLD", "PCABrush"]

GL_THRESHOLD = 3000
"""Above this many points the scatter is drawn with WebGL; SVG stays crisp below it."""

SELECT_TOOLS = [
    ("lasso", "lasso", "Draw a loop around samples to select them"),
    ("rectangle", "rectangle", "Drag a rectangle to select the samples inside it"),
]
ENRICHED_CAPTION = "<b>enriched</b> (in vs out)"
MODE_TIPS = {
    "replace": "each lasso or rectangle replaces the selection",
    "add": "each lasso or rectangle adds its samples to the selection",
    "subtract": "each lasso or rectangle removes its samples from the selection",
}


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
        The first selection tool: "lasso" (default) or "rectangle"; the user can switch.
    max_points:
        At most this many points are drawn (WebGL, above `GL_THRESHOLD` samples). Each frame
        of software WebGL (a browser without a GPU) costs about 4 ms per 1,000 points on a
        loaded 2-core machine, and a lasso waits for one before it reaches the kernel.

    Attributes
    ----------
    figure:
        The scatter's Figure (bqplot; its ``interaction`` is `lasso` or `brush`), or the
        WebGL scatter widget above `GL_THRESHOLD` points.
    shown:
        The samples drawn, ascending (all of them on the SVG scatter).
    scatter:
        The Scatter mark of every sample (SVG), or the `GLScatter` (WebGL).
    point_colors:
        The "#rrggbb" colour of each point, as last sent to the browser.
    brush, lasso, lasso_target:
        SVG only: the BrushSelector, the LassoSelector and the invisible copy of the points
        it marks (None with WebGL).
    select_with, mode, color_by:
        ToggleButtons: lasso or rectangle; replace, add or subtract; label or activation.
    legend:
        HTML legend of the colours.
    hover:
        HTML card of the point under the mouse (image, label, focused unit's value): the
        points' tooltip (SVG) or a panel under the plot (WebGL).
    hover_relay:
        SVG only: the `HoverRelay` that lets points be hovered under the selector.
    points:
        The scatter's adapter: `SVGScatter` or `GLScatter` (tool, selection and colours).
    count, enriched, clear_button, undo_button:
        "<N> samples selected", the enriched-unit buttons, clear, undo.
    releases_frames:
        WebGL: a frame of new colours or of a selection made elsewhere waits until the
        browser has shown the other views' updates of that change (`_gl_fit.RendererFit`).
        True: this view releases it after its own update; a container that updates more
        views after this one sets it False and calls `release_frames` after the last.
    """

    def __init__(
        self,
        ex: Explorer,
        *,
        source: str | None = None,
        color_by: str | None = None,
        n_enriched: int = 8,
        select_with: str = "lasso",
        width: str = "420px",
        max_points: int = 20_000,
    ) -> None:
        n_enriched = check_count(n_enriched, "n_enriched", getattr(ex, "n_units", None))
        max_points = check_count(max_points, "max_points")  # used only above GL_THRESHOLD
        width = check_css_size(width, "width")
        select_with = check_choice(select_with, "select_with", ("lasso", "rectangle"))
        super().__init__(ex)
        self.source = source
        self.n_enriched = n_enriched
        self.max_points = max_points
        coords = ex.projection(source).coords
        labels = ex.dataset.labels
        self._brushed_samples: list[int] | None = None
        self._brushing_rect = False  # True while a released rectangle sets the selection
        self._colors: tuple[Any, np.ndarray] = ([], np.zeros(0, dtype=np.int64))
        self.hover = widgets.HTML()
        self.hover.add_class("sw-hover")
        axis_label = "PC {} of the " + ("unit codes" if self._source() == "codes" else "inputs")
        self.brush: BrushSelector | None = None
        self.lasso: LassoSelector | None = None
        self.lasso_target: Scatter | None = None
        self.hover_relay: HoverRelay | None = None
        self.webgl = ex.n_samples > GL_THRESHOLD
        self.shown = np.arange(ex.n_samples, dtype=np.int64)
        if self.webgl:
            from sae_widgets.widgets._gl_scatter import GLScatter

            self.shown = ex.display_samples(max_points, source)
            self.scatter: Any = GLScatter(
                coords[self.shown],
                self._clicked_points,
                select_with,
                on_outline=self._outlined,
                width=width,
            )
            self.points = self.scatter
            self.scatter.widget.observe(self._hovered, "hovering")  # a position in `shown`
            self.figure: Any = self.scatter.widget
        else:
            svg = SVGScatter(
                coords,
                axis_label=axis_label,
                tool=select_with,
                width=width,
                tooltip=self.hover,
                on_lassoed=self._drawn,
                on_rect=self._rect,
                on_hovered=self._hovered,
                view_selector=".sw-pca",
            )
            self.points: Any = svg
            self.scatter, self.figure = svg.scatter, svg.figure
            self.brush, self.lasso, self.lasso_target = svg.brush, svg.lasso, svg.lasso_target
            self.hover_relay = svg.hover_relay
        self.select_with = toggle_buttons(
            [(label, value) for label, value, _ in SELECT_TOOLS],
            select_with,
            tooltips=[tip for _, _, tip in SELECT_TOOLS],
        )
        self.select_with.observe(self._on_select_with, "value")
        self.mode = toggle_buttons(
            [(m, m) for m in MODES], "replace", tooltips=[MODE_TIPS[m] for m in MODES]
        )

        options = [("unit activation", "activation")]
        if labels is not None:
            options.insert(0, ("label", "label"))
        if color_by is None:
            color_by = options[0][1]
        check_choice(color_by, "color_by", [value for _, value in options])
        self.color_by = toggle_buttons(
            options,
            color_by,
            tooltips=[f"colour each sample by its {label}" for label, _ in options],
        )
        self.color_by.observe(lambda _change: self._recolor(release=True), "value")
        self.releases_frames = True
        self.legend = widgets.HTML()
        self.count = widgets.HTML()
        # Buttons as wide as their words, so "<N> samples selected" keeps to one line.
        self.clear_button = widgets.Button(
            description="clear", icon="times", layout=widgets.Layout(width="80px")
        )
        self.clear_button.on_click(lambda _button: self.clear())
        self.undo_button = widgets.Button(
            description="undo",
            icon="undo",
            tooltip="go back to the previous selection",
            layout=widgets.Layout(width="80px"),
        )
        self.undo_button.on_click(lambda _button: self.ex.history.undo())
        # Export: the selection as a CSV download, the plot as a PNG (SVG scatter only; the
        # WebGL one has its own download button).
        self.export_button, self.png_button = export_buttons()
        self.export_button.on_click(lambda _button: self.export_csv())
        self.png_button.on_click(lambda _button: self.figure.save_png("pca_selection.png"))
        self.png_button.layout.display = "none" if self.webgl else None
        self.export_link = widgets.HTML()
        self.enriched = UnitButtons(ENRICHED_CAPTION, self.focus_unit, n_enriched)
        # As wide as the plot: the buttons wrap under it instead of widening the view.
        self.enriched.layout.max_width = width
        label_width = widgets.Layout(width="80px")
        self.children = [
            widgets.HBox([widgets.Label("colour by", layout=label_width), self.color_by]),
            widgets.HBox([widgets.Label("select with", layout=label_width), self.select_with]),
            widgets.HBox([widgets.Label("selection", layout=label_width), self.mode]),
            self.figure,
            # SVG: the card is the points' tooltip (the relay lets them be hovered under the
            # selector); WebGL: jupyter-scatter reports the hovered point, the card shows here.
            self.hover if self.webgl else self.hover_relay,
            *([self.scatter.fit] if self.webgl else []),
            self.legend,
            widgets.HBox(
                [self.count, self.clear_button, self.undo_button],
                layout=widgets.Layout(grid_gap="8px"),
            ),
            widgets.HBox(
                [self.export_button, self.png_button, self.export_link, self.busy.widget],
                layout=widgets.Layout(grid_gap="8px", align_items="center"),
            ),
            self.enriched,
        ]
        self.add_class("sw-pca")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling
        self.follow(lambda _change: self._on_unit(), "unit")
        self.follow(lambda _change: self._draw_samples(), "samples")
        self._recolor(release=True)
        self._draw_samples()

    @property
    def point_colors(self) -> list[str]:
        """The "#rrggbb" colour of each drawn point, as last sent to the browser."""
        palette, index = self._colors
        return np.asarray(palette)[index].tolist() if len(index) else []

    def _source(self) -> str:
        return self.source or self.ex.default_projection

    # -- view -> Selection ---------------------------------------------------------------------

    def _drawn(self, samples: Any) -> None:
        """A lasso or rectangle enclosed `samples`: combine them with the selection."""
        current = self.selection.sample_array  # kept beside the list: no conversion
        self.selection.samples = combine(current, samples, self.mode.value)

    def _clicked_points(self, positions: np.ndarray) -> None:
        """WebGL: the browser selected drawn points without an outline (a click). Positions
        that are no drawn point (a malformed message) are ignored, as every view's clicks."""
        positions = positions[(positions >= 0) & (positions < len(self.shown))]
        if len(positions):
            self._drawn(self.shown[positions])

    def _outlined(self, outline: np.ndarray) -> None:
        """WebGL: a lasso or rectangle was drawn; select every sample inside its outline."""
        self._drawn(self.ex.samples_in_polygon(outline, self.source))

    def _rect(self, x_range: Any, y_range: Any) -> None:
        """SVG: a rectangle was released; select every sample inside it."""
        # The rectangle stays drawn around what it selected: `_draw_samples` (run by the
        # Selection change inside `_drawn`) clears it only for a selection made elsewhere.
        self._brushing_rect = True
        try:
            self._drawn(self.ex.samples_in_rect(x_range, y_range, self.source))
        finally:
            self._brushing_rect = False
        self._brushed_samples = self.selection.samples

    def _on_select_with(self, change: dict[str, Any]) -> None:
        self.points.set_tool(change["new"])

    def _hovered(self, change: dict[str, Any]) -> None:
        point = change["new"]  # SVG: the sample; WebGL: its position among the drawn points
        if point is not None and 0 <= point < len(self.shown):
            sample = int(self.shown[int(point)])
            self.hover.value = hover_card(self.ex, sample, self.selection.unit)

    def export_csv(self) -> None:
        """Offer the selection as a CSV download link (a data: URL, no server round trip)."""
        self.export_link.value = csv_download_html(self.ex, self.selection.samples)

    def clear(self) -> None:
        """Forget the selected samples (and the brush rectangle)."""
        self.selection.samples = []

    # -- Selection -> view ---------------------------------------------------------------------

    def redraw(self) -> None:
        """The projection, colours and enriched units again, from the refreshed Explorer:
        a lasso or rectangle then selects among the points as drawn."""
        coords = self.ex.projection(self.source).coords
        if self.webgl:
            # New axes domains, positions and colours in one message (else seven, the axes
            # drawn before their points): regl-scatterplot rejects a draw that comes while
            # its last one runs (an uncaught "Ignoring draw call" error, seen once in a browser
            # round after a refresh).
            with self.scatter.widget.hold_sync():
                self.shown = self.ex.display_samples(self.max_points, self.source)
                self.scatter.set_coords(coords[self.shown])
                self._recolor(release=False)
        else:
            self.points.set_coords(coords)
            self._recolor(release=False)
        self._brushed_samples = None
        self._draw_samples()  # releases the held frame (WebGL) when this view releases them

    def _draw_samples(self) -> None:
        samples = self.selection.samples
        if not self.webgl and not self._brushing_rect and samples is not self._brushed_samples:
            self._brushed_samples = None  # selected elsewhere: the rectangle is stale
            self.points.clear_rect()
        n = len(samples)
        self.export_link.value = ""  # a link made for another selection would mislead
        self.count.value = (
            f"<b>{n:,}</b> {noun_for(n, 'sample')} selected" if n else "no samples selected"
        )
        self.clear_button.disabled = n == 0
        self.undo_button.disabled = not self.ex.history.can_undo
        if self.webgl:  # the drawn points among the selected ones, by position in `shown`
            chosen = self.selection.sample_array
            at = np.minimum(np.searchsorted(chosen, self.shown), max(len(chosen) - 1, 0))
            self.scatter.show_selected(np.flatnonzero(chosen[at] == self.shown) if n else [])
            if self.releases_frames:
                self.release_frames()
        else:
            self.points.show_selected(samples)
        self.enriched.caption = ENRICHED_CAPTION
        if n:
            found = self.ex.enrichment(samples, top=self.n_enriched)
            fires = found.rate_inside > 0  # a unit silent on the selection is not enriched
            if not fires.any():
                self.enriched.caption = f"{ENRICHED_CAPTION}: no unit fires on the selection"
            self.enriched.show(
                found.units[fires],
                [
                    f"{u} ({100 * i:.0f}% vs {100 * o:.0f}%)"
                    for u, i, o in zip(
                        found.units[fires], found.rate_inside[fires], found.rate_outside[fires]
                    )
                ],
            )
        else:
            self.enriched.show([])

    def _on_unit(self) -> None:
        if self.color_by.value == "activation":
            self._recolor(release=self.releases_frames)

    def release_frames(self) -> None:
        """WebGL: let the browser draw the plot's frames held since new colours were sent
        (they wait so that the views updated with them are shown first)."""
        if self.webgl:
            self.scatter.fit.release()

    def _recolor(self, release: bool) -> None:
        """Colour by label, or by the focused unit's activation (one colour per point)."""
        if self.color_by.value == "label":
            colors = label_colors(self.ex, self.shown)
        else:
            colors = activation_colors(self.ex, self.shown, self.selection.unit)
        self.legend.value = colors.legend
        self._colors = (colors.palette, colors.index)
        if self.webgl:  # the colour list is made only when asked for (50,000 strings)
            self.scatter.set_colors(colors.index, colors.palette)
            if release:
                self.release_frames()
        else:
            self.scatter.colors = self.point_colors
