"""UnitInspector: everything about one unit, following ``ex.selection.unit``.

Shows the unit's decoder direction and encoder filter (pictures when the SAE sees pixels,
else bars of the largest input dimensions), its activation histogram, its top-activating
samples with their activations, how often and how label-selectively it fires, and its
nearest (decoder cosine) and co-firing (Jaccard) units as buttons that focus them.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Bars, LinearScale, OrdinalScale

from sae_widgets.analysis import UnitSummary
from sae_widgets.analysis.summary import encoder_filter
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._legend import color_bar, isolated_html, label_html
from sae_widgets.widgets._panels import BarPair, ImagePair, SampleGallery
from sae_widgets.widgets._render import diverging_gradient_css
from sae_widgets.widgets._unit_buttons import UnitButtons
from sae_widgets.widgets._view import (
    TITLE_ROOM,
    ExplorerView,
    axis,
    check_count,
    event_index,
    figure,
    pixel_shape,
    wrapping_row,
)
from sae_widgets.widgets.text import TopTokens
from sae_widgets.wording import counted, shortened_apart

__all__ = ["LABEL_TICK_ROOM", "UnitInspector"]

MAX_LABEL_BARS = 12
"""With more classes than this, the label chart shows the most frequent ones only."""
LABEL_TICK_ROOM = 14
"""Characters of a label name under its bar: a longer name, written at a slant, ran out of
the figure; it is shortened with "…" and hovering the bar shows it whole."""


def integer_ticks(top: float, most: int = 6) -> np.ndarray:
    """At most `most` whole-number tick positions from 0 to about `top` (a count axis)."""
    step = max(1, int(np.ceil(max(top, 1.0) / (most - 1))))
    magnitude = 10 ** int(np.floor(np.log10(step)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= step)
    return np.arange(0, max(top, 1.0) + step / 2, step, dtype=np.float32)


class UnitInspector(ExplorerView):
    """One unit, in detail. Follows ``ex.selection.unit``; its picker and buttons set it.

    Parameters
    ----------
    ex:
        The Explorer whose Selection this view follows.
    unit:
        Unit to focus now (sets ``ex.selection.unit``); default: keep the Selection's, or
        focus the most frequent unit when none is focused.
    top_n:
        Number of top-activating samples shown.
    n_dims:
        Number of input dimensions in the bar charts when the inputs are not pictures.

    Attributes
    ----------
    figure:
        The main Figure: decoder direction and encoder filter.
    picker:
        BoundedIntText holding the focused unit.
    histogram, label_bars:
        Bars marks of the activation histogram and of the firing samples' labels.
    gallery:
        The top-activating samples (`SampleGallery`; its `.figure` is a bqplot Figure).
    nearest, cofiring:
        `UnitButtons` rows; clicking one focuses that unit.
    summary:
        The `UnitSummary` currently drawn (None when no unit is focused).
    """

    def __init__(
        self, ex: Explorer, unit: int | None = None, *, top_n: int = 16, n_dims: int = 24
    ) -> None:
        top_n, n_dims = check_count(top_n, "top_n"), check_count(n_dims, "n_dims")
        super().__init__(ex)
        self.top_n = min(top_n, ex.n_samples)
        self.n_dims = min(n_dims, ex.dataset.n_features)
        self.summary: UnitSummary | None = None
        self._resizing = False  # True while `redraw` sets the picker's range
        dataset = ex.dataset
        self._shape = pixel_shape(ex)

        # -1 stands for "no unit": the box then never shows a stale number, so retyping the
        # unit that was focused before a clear is a change the picker reports.
        self.picker = widgets.BoundedIntText(
            value=-1,
            min=-1,
            max=ex.n_units - 1,
            description="unit",
            tooltip="unit to inspect (-1: none)",
            layout=widgets.Layout(width="160px"),
        )
        self.picker.observe(self._picked, "value")
        self.stats = widgets.HTML()

        self.directions: ImagePair | BarPair
        if self._shape is not None:
            self.directions = ImagePair(("decoder", "encoder"), self._shape)
        else:
            self.directions = BarPair(("decoder", "encoder"))
        self.figure = self.directions.figure

        x_scale, y_scale = LinearScale(), LinearScale()
        self.histogram = Bars(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=["#4c78a8"],
            padding=0.05,
        )
        self.histogram_figure = figure(
            [self.histogram],
            [
                axis(x_scale, "activation"),
                axis(y_scale, "samples", vertical=True, tick_format="d"),
            ],
            title="activation histogram (where it fires)",
            height="220px",
        )

        # shares on a fixed 0-100% axis: a domain that moved with each unit redrew the axis
        # and the bars in the browser on every unit change
        label_x, label_y = OrdinalScale(), LinearScale(min=0.0, max=1.0)
        long_names = max((len(n) for n in dataset.label_names or ()), default=0) > 3
        self.label_bars = Bars(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": label_x, "y": label_y},
            colors=["#f58518"],
            tooltip=(label_tip := widgets.HTML()),
        )
        self.label_tip = label_tip  # the hovered bar's whole label name and share
        self._label_names: list[str] = []  # the bars' names, in slot order
        self.label_bars.on_hover(self._label_hovered)
        self.label_figure = figure(
            [self.label_bars],
            [
                label_axis := Axis(
                    scale=label_x,
                    label="label" if not long_names else "",
                    tick_rotate=-30 if long_names else 0,
                    # rotated names end at their tick, below the axis, not across the bars
                    tick_style={"text-anchor": "end"} if long_names else {},
                ),
                axis(label_y, vertical=True, tick_format=".0%"),
            ],
            title="labels of the samples it fires on",
            height="240px" if long_names else "220px",
            # room under the axis for names written at a slant
            margin={"top": TITLE_ROOM, "bottom": 70, "left": 60, "right": 10}
            if long_names
            else None,
        )

        self._label_axis = label_axis
        if dataset.images is not None:
            self.gallery = SampleGallery(self._pick_sample, images=dataset.images, n_cols=8)
        else:
            self.gallery = SampleGallery(self._pick_sample, X=dataset.X)
        self.gallery.figure.title = "top-activating samples"

        # Language-model tokens: the top tokens in their context replace the row gallery.
        self.top_tokens = TopTokens(ex) if dataset.tokens is not None else None
        top_view = self.gallery.figure if self.top_tokens is None else self.top_tokens

        self.nearest = UnitButtons("<b>nearest</b> (decoder cosine)", self.focus_unit)
        self.cofiring = UnitButtons("<b>co-firing</b> (Jaccard)", self.focus_unit)

        self.directions_legend = widgets.HTML(
            color_bar(diverging_gradient_css(), "−", "+", "weight sign", width_px=80)
        )
        # A unit that never fires has no histogram, labels or top samples: a message says so.
        self.dead_note = widgets.HTML()
        self.dead_note.add_class("sw-dead-unit")
        self._fired_panels: list[widgets.Widget] = [self.histogram_figure]
        if dataset.labels is not None:
            self._fired_panels.append(self.label_figure)
        panels: list[widgets.Widget] = [
            widgets.VBox([self.figure, self.directions_legend]),
            *self._fired_panels,
        ]
        # The unit buttons take what room the gallery leaves, wrapping within it.
        related = widgets.VBox(
            [self.nearest, self.cofiring], layout=widgets.Layout(flex="1 1 320px")
        )
        # Hidden while no unit is focused, so they never show a unit the Selection left.
        self._gallery_row = wrapping_row([top_view, related])
        self._details = [wrapping_row(panels), self._gallery_row]
        self.children = [
            widgets.HBox(
                [self.picker, self.stats, self.busy.widget],
                layout=widgets.Layout(align_items="center"),
            ),
            self.dead_note,
            *self._details,
        ]
        self.add_class("sw-inspector")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling
        self.follow(self._on_unit, "unit")
        current = self.selection.unit
        if unit is None:
            unit = current if current is not None else int(np.argmax(ex.codes.counts))
        if unit != current:
            self.selection.unit = unit  # drawn by _on_unit
        else:
            self._draw(unit)

    # -- Selection -> view ---------------------------------------------------------------------

    def _on_unit(self, change: dict[str, Any]) -> None:
        self._draw(change["new"])

    def redraw(self) -> None:
        """The refreshed Explorer's unit range in the picker, and the unit again."""
        unit = self.selection.unit
        self._resizing = True  # a clamped picker value is not the user's pick
        try:
            with self.picker.hold_sync():
                self.picker.value = -1
                self.picker.max = self.ex.n_units - 1
        finally:
            self._resizing = False
        self._draw(unit)

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._resizing:
            self.selection.unit = None if change["new"] < 0 else int(change["new"])

    def _draw(self, unit: int | None) -> None:
        for part in self._details:
            part.layout.display = "none" if unit is None else None
        self.dead_note.layout.display = "none"
        if unit is None:
            self.summary = None
            self.picker.value = -1
            self.stats.value = "<i>no unit focused</i>"
            self.nearest.show([])
            self.cofiring.show([])
            if self.top_tokens is not None:
                self.top_tokens.clear()
            return
        summary = self.ex.unit_summary(unit, top_n=self.top_n)
        self.summary = summary
        self.picker.value = unit  # a no-op when the picker itself set the unit
        self._draw_directions(unit)
        dead = summary.count == 0
        for part in [*self._fired_panels, self.gallery.figure]:
            part.layout.display = "none" if dead else None
        if dead:
            self.dead_note.value = (
                f'<div style="padding:8px;background:#fff4e5;border-left:4px solid #f58518">'
                f"<b>unit {unit} is dead</b>: it fires on none of the "
                f"{counted(self.ex.n_samples, 'sample')}, so it has no activation histogram, "
                "labels or top samples. Its decoder and encoder weights are shown; a nearby unit "
                "may cover what it would have learned.</div>"
            )
            self.dead_note.layout.display = None
        edges = summary.histogram_edges
        with self.histogram.hold_sync():
            self.histogram.x = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
            self.histogram.y = summary.histogram_counts.astype(np.float32)
        # Counts are whole numbers: ticks only at integers (d3 would put 0.5 steps on a
        # small count axis, and the "d" format would then print duplicates).
        self.histogram_figure.axes[1].tick_values = integer_ticks(
            float(summary.histogram_counts.max(initial=0))
        )
        self._draw_labels(summary)
        decoder = self.ex.unit_direction(unit)
        dims = np.argsort(-np.abs(decoder), kind="stable")[: self.n_dims]
        if self.top_tokens is not None:
            self.top_tokens.show(unit, summary.top_samples, summary.top_values)
        else:
            self.gallery.show(summary.top_samples, summary.top_values, dims=dims)
        self.nearest.show(
            summary.nearest_units,
            [f"{u} ({c:.2f})" for u, c in zip(summary.nearest_units, summary.nearest_cosines)],
        )
        self.cofiring.show(
            summary.cofiring_units,
            [f"{u} ({j:.2f})" for u, j in zip(summary.cofiring_units, summary.cofiring_jaccard)],
        )
        self.stats.value = self._stats_html(summary)

    def _draw_directions(self, unit: int) -> None:
        decoder = self.ex.unit_direction(unit)
        encoder = encoder_filter(self.ex.sae, unit)
        if encoder is None:
            encoder = np.zeros_like(decoder)
        if isinstance(self.directions, ImagePair):
            self.directions.show(decoder, encoder, diverging=True)
        else:
            # Each scaled to unit norm, so the two share one axis.
            unit_norm = [v / max(float(np.linalg.norm(v)), 1e-12) for v in (decoder, encoder)]
            dims = np.argsort(-np.abs(decoder), kind="stable")[: self.n_dims]
            self.directions.show(unit_norm[0], unit_norm[1], dims)

    def _draw_labels(self, summary: UnitSummary) -> None:
        if summary.label_counts is None:
            return
        counts = summary.label_counts.astype(np.float32)
        names = np.array(summary.label_names or [str(i) for i in range(len(counts))])
        shown = np.arange(len(counts))
        if len(counts) > MAX_LABEL_BARS:  # many classes: the most frequent ones, in order
            shown = np.argsort(-counts, kind="stable")[:MAX_LABEL_BARS]
        # Bars at fixed slots "0", "1", ... named by the axis: the scale's domain stays put from
        # unit to unit (a new domain redraws the bars and the axis in the browser, per change).
        self._label_names = [str(name) for name in names[shown]]
        ticks = shortened_apart(self._label_names, LABEL_TICK_ROOM)
        self._label_axis.tick_labels = {str(i): tick for i, tick in enumerate(ticks)}
        with self.label_bars.hold_sync():
            self.label_bars.x = np.array([str(i) for i in range(len(shown))])
            self.label_bars.y = counts[shown] / max(float(counts.sum()), 1.0)

    def _label_hovered(self, _mark: Any, event: dict[str, Any]) -> None:
        """bqplot's hover message: the bar's slot in `data.index`; its tooltip names the
        whole label (the tick under it may be shortened) and its share."""
        index = event_index(event, len(self._label_names))  # None: malformed, ignored
        if index is None:
            return
        share = float(np.asarray(self.label_bars.y)[index])
        self.label_tip.value = (
            f"<b>{isolated_html(self._label_names[index])}</b>: {100 * share:.0f}% of the "
            "samples it fires on"
        )

    def _stats_html(self, summary: UnitSummary) -> str:
        parts = [
            f"<b>unit {summary.unit}</b>",
            f"fires on {summary.count:,} of {counted(self.ex.n_samples, 'sample')} "
            f"({100 * summary.frequency:.2f}%)",
            f"mean {summary.mean_activation:.3g}, max {summary.max_activation:.3g}",
        ]
        if summary.top_label is not None:
            names = summary.label_names
            name = names[summary.top_label] if names else str(summary.top_label)
            parts.append(
                f"mostly label <b>{label_html(name)}</b> (precision "
                f"{100 * summary.top_label_precision:.0f}%, recall "
                f"{100 * summary.top_label_recall:.0f}%), selectivity "
                f"{summary.label_selectivity:.2f}"
            )
        return " · ".join(parts)

    # -- view -> Selection ---------------------------------------------------------------------

    def _pick_sample(self, sample: int) -> None:
        """A click on a top sample makes it the sample the probe and the sample card show."""
        self.selection.probe_sample = sample
