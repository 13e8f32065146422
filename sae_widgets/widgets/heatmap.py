"""ActivationHeatmap: samples x units, drawn as one PNG in a bqplot Image mark.

Rows are the selected samples (a random `max_rows` of them if more), or a label-stratified
sample when nothing is selected; columns are the units most enriched in those rows, leaving
out units silent on every row (a blank column tells nothing and squeezes the rest). The
focused unit is always a column: when it is not among them it takes the last one (within
`max_units`), so focusing any unit shows it here, as the probe adds it to its curves. A click
on the matrix focuses the clicked column's unit; a click on the label strip at its left picks
that row's sample for the sample card (input, reconstruction, most active units).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Image, LinearScale, Lines

from sae_widgets.analysis import HeatmapData
from sae_widgets.analysis.selection import firing_columns
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._legend import (
    color_bar,
    input_image,
    isolated_html,
    label_html,
    picture_html,
)
from sae_widgets.widgets._panels import ImagePair, input_pair, png_widget, set_picture
from sae_widgets.widgets._render import CATEGORY10, sequential_gradient_css, sequential_rgb
from sae_widgets.widgets._unit_buttons import UnitButtons
from sae_widgets.widgets._view import (
    TITLE_ROOM,
    ExplorerView,
    axis,
    check_count,
    check_css_size,
    event_number,
    figure,
    set_ticks,
    wrapping_row,
)
from sae_widgets.widgets.text import document_html, label_token_rows, unit_activations
from sae_widgets.wording import counted

__all__ = ["ActivationHeatmap"]

_STRIP = (-1.6, -0.4)  # x extent of the label strip left of column 0, in column widths


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _transparent_zeros(normalized: np.ndarray) -> np.ndarray:
    """RGBA of the matrix: the sequential colours, silent cells (zero) transparent, so most of
    a sparse matrix shows the page's background (no white block on a dark theme)."""
    rgb = sequential_rgb(normalized, vmax=1.0)
    alpha = np.where(normalized > 0, 255, 0).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def _box(x0: float, x1: float, y0: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """The closed outline of a rectangle, as Lines x and y."""
    return (
        np.array([x0, x1, x1, x0, x0], dtype=np.float32),
        np.array([y0, y0, y1, y1, y0], dtype=np.float32),
    )


def _relative_error(x: Any, reconstruction: Any) -> float | None:
    """||x - x_hat||^2 / ||x||^2 at any magnitude fit accepts (float32 squares of 1e20
    overflowed to a "relative error nan"; of 1e-20, underflowed), or None for a zero x."""
    x64 = np.asarray(x, dtype=np.float64).ravel()
    r64 = np.asarray(reconstruction, dtype=np.float64).ravel()
    scale = float(max(np.abs(x64).max(initial=0.0), np.abs(r64).max(initial=0.0)))
    if scale > 0:
        x64, r64 = x64 / scale, r64 / scale
    total = float(np.sum(x64**2))
    return float(np.sum((x64 - r64) ** 2)) / total if total > 0 else None


class ActivationHeatmap(ExplorerView):
    """Activations of some samples (rows) and units (columns).

    Parameters
    ----------
    ex:
        The Explorer whose Selection this view follows and sets.
    max_rows, max_units:
        At most this many rows (samples) and columns (units).
    width:
        Width of the heatmap figure (CSS, e.g. "500px").

    Attributes
    ----------
    figure:
        The heatmap Figure (Image marks for the matrix and the label strip).
    matrix_mark, strip_mark:
        The Image marks; their PNGs are the colour-coded matrix and row labels.
    data:
        The `HeatmapData` drawn (matrix, row samples, column units); the matrix mark spans
        x in [0, columns] and y in [0, rows], one data unit per cell. When the focused unit
        is not among the rows' chosen units it is the last column.
    focus_box, row_box:
        Lines outlining the focused unit's column and the card's sample row.
    card, card_units:
        The sample card's picture/lines block and its most-active-unit buttons.
    """

    def __init__(
        self, ex: Explorer, *, max_rows: int = 200, max_units: int = 64, width: str = "500px"
    ) -> None:
        max_rows = check_count(max_rows, "max_rows", getattr(ex, "n_samples", None))
        max_units = check_count(max_units, "max_units", getattr(ex, "n_units", None))
        width = check_css_size(width, "width")
        super().__init__(ex)
        self.max_rows, self.max_units = max_rows, max_units
        self.x_scale = LinearScale(min=_STRIP[0], max=1.0, allow_padding=False)
        self.y_scale = LinearScale(min=0.0, max=1.0, allow_padding=False)
        scales = {"x": self.x_scale, "y": self.y_scale}
        self.matrix_mark = Image(image=png_widget(), scales=scales, x=(0.0, 1.0), y=(0.0, 1.0))
        self.matrix_mark.on_element_click(self._clicked_matrix)
        self.strip_mark = Image(image=png_widget(), scales=scales, x=_STRIP, y=(0.0, 1.0))
        self.strip_mark.on_element_click(self._clicked_strip)
        nowhere_x, nowhere_y = _box(0, 0, 0, 0)
        self.focus_box = Lines(
            x=nowhere_x, y=nowhere_y, scales=scales, colors=["#ff7f0e"], stroke_width=2.5
        )
        self.row_box = Lines(
            x=nowhere_x, y=nowhere_y, scales=scales, colors=["#2ca02c"], stroke_width=2
        )
        self.x_axis = axis(self.x_scale, "units (most enriched first)", tick_format="d")
        self.y_axis = axis(self.y_scale, "samples", vertical=True, tick_format="d")
        self.figure = figure(
            [self.matrix_mark, self.strip_mark, self.focus_box, self.row_box],
            [self.x_axis, self.y_axis],
            title="activations",
            width="auto",  # the room left by its 2 px margins (100% overflowed by 4 px)
            height="380px",
            margin={"top": TITLE_ROOM, "bottom": 55, "left": 40, "right": 10},
        )
        # Between 340 px and `width`, sharing the row with the sample card.
        self.figure.layout.min_width = "340px"
        self.figure.layout.max_width = width
        self.tokens = ex.dataset.tokens  # language-model tokens: rows labelled in context
        if self.tokens is not None:
            self.figure.fig_margin = {**self.figure.fig_margin, "left": 230}
            if width.endswith("px"):  # room for the labels, the matrix keeps its width
                self.figure.layout.max_width = f"{int(float(width[:-2])) + 190}px"
                self.figure.layout.min_width = "530px"
        self.legend = widgets.HTML(
            color_bar(sequential_gradient_css(), "0", "the unit's max", "activation (per column)")
        )
        self.caption = widgets.HTML()

        self.card = input_pair(ex, ("sample", "reconstruction"))
        self.card_title = widgets.HTML()
        self.card_units = UnitButtons("<b>most active units</b>", self.focus_unit)
        card_width = self.card.figure.layout.width
        for part in (self.card_title, self.card_units):
            part.layout.max_width = card_width  # text and buttons wrap under the pictures
        self.card_text = widgets.HTML()  # the document, with the focused unit's activations
        # Activations of a model over images: the picture the sample came from (its vectors
        # below are hidden units, drawn as lines).
        self.card_input = widgets.HTML()
        card_parts = [self.card_title, self.card_input, self.card.figure, self.card_units]
        if self.tokens is not None:
            card_parts = [self.card_title, self.card_text, self.card_units]
            self.card_text.layout.max_width = "420px"
        card_box = widgets.VBox(card_parts)
        card_box.add_class("sw-sample-card")
        # The card sits right of the matrix, or under it when the view is narrow.
        self.children = [
            widgets.HBox([self.caption, self.busy.widget]),
            wrapping_row(
                [
                    widgets.VBox(
                        [self.figure, self.legend], layout=widgets.Layout(flex="1 1 340px")
                    ),
                    card_box,
                ]
            ),
        ]
        self.add_class("sw-heatmap")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling
        # The rows and the columns chosen for them, before the focused unit is added.
        self._chosen: HeatmapData = self._choose()
        self.data: HeatmapData = self._with_focus(self._chosen)
        self.follow(lambda _change: self._draw_rows(), "samples")
        self.follow(lambda _change: self._on_unit(), "unit")
        if self.tokens is not None:  # the card's document shows the focused unit
            self.follow(lambda _change: self._draw_card(), "unit")
        self.follow(lambda _change: self._draw_card(), "probe_sample")
        self._draw_matrix(self.data)
        self._draw_card()

    # -- what is drawn -------------------------------------------------------------------------

    def _choose(self) -> HeatmapData:
        """Rows from the selection, the units most enriched in them (silent ones left out)."""
        return firing_columns(self.ex.heatmap(max_rows=self.max_rows, max_units=self.max_units))

    def _with_focus(self, chosen: HeatmapData) -> HeatmapData:
        """`chosen` with the focused unit as its last column when it is not a column yet
        (replacing the least enriched one when all `max_units` are taken)."""
        unit = self.selection.unit
        if unit is None or unit in chosen.units:
            return chosen
        units = np.append(chosen.units[: self.max_units - 1], unit)
        return self.ex.heatmap(rows=chosen.rows, units=units)

    # -- Selection -> view ---------------------------------------------------------------------

    def redraw(self) -> None:
        """Rows, columns and the card again, from the refreshed Explorer."""
        self._draw_rows()
        self._draw_card()

    def _draw_rows(self) -> None:
        self._chosen = self._choose()
        self._draw_matrix(self._with_focus(self._chosen))

    def _on_unit(self) -> None:
        data = self._with_focus(self._chosen)
        if np.array_equal(data.units, self.data.units):
            self._draw_focus()  # a column already: only the outline moves
        else:
            self._draw_matrix(data)

    def _draw_matrix(self, data: HeatmapData) -> None:
        self.data = data
        n_rows, n_cols = data.matrix.shape
        # Each column on its unit's own scale (its max over the dataset), so weak units show.
        unit_max = self.ex.codes.max_activation[data.units] if n_cols else np.ones(0)
        normalized = data.matrix / np.maximum(unit_max, 1e-12)[None, :]
        step = max(1, -(-n_cols // 16))  # at most 16 unit labels: they stay readable
        with self.matrix_mark.hold_sync(), self.strip_mark.hold_sync():
            self.x_scale.max = float(max(n_cols, 1))
            self.y_scale.max = float(max(n_rows, 1))
            self.matrix_mark.x = (0.0, float(max(n_cols, 1)))
            self.matrix_mark.y = (0.0, float(max(n_rows, 1)))
            self.strip_mark.y = (0.0, float(max(n_rows, 1)))
            if n_rows and n_cols:
                set_picture(self.matrix_mark, _transparent_zeros(normalized))
            if n_rows:
                set_picture(self.strip_mark, self._strip_rgb(data))
        labelled = range(0, n_cols, step)  # each label at the middle of its column
        set_ticks(
            self.x_axis, [i + 0.5 for i in labelled], [str(int(data.units[i])) for i in labelled]
        )
        n_selected = len(self.selection.samples)
        n_chosen = n_cols - int(n_cols > 0 and data.units[-1] not in self._chosen.units)
        rows_from = (
            f"{n_rows:,} of {counted(n_selected, 'selected sample')}"
            if n_selected
            else f"{counted(n_rows, 'sample')} (no selection: a label-stratified sample)"
        )
        added = ""
        if n_chosen < n_cols:
            silent = " (silent on these rows)" if not data.matrix[:, -1].any() else ""
            added = f" + the focused unit {int(data.units[-1])}{silent}, last"
        them = "it" if n_rows == 1 else "them"  # the rows
        ranked_by = f"most enriched in {them}" if n_selected else "firing most often"
        columns = f"the {counted(n_chosen, 'unit')} {ranked_by}{added}"
        if n_rows and not data.matrix.any():  # every column blank: say so, not "enriched"
            columns = f"none of the units fires on {them} ({counted(n_cols, 'silent unit')} shown)"
        self.caption.value = (
            f"rows: {rows_from} · columns: {columns} · "
            "click a column to focus its unit, the coloured strip to pick a sample"
        )
        if self.tokens is not None:
            label_token_rows(self.y_axis, self.tokens, data.rows)
        self._draw_focus()
        self._draw_row_box()

    def _strip_rgb(self, data: HeatmapData) -> np.ndarray:
        n_rows = len(data.rows)
        if data.row_labels is None:
            return np.full((n_rows, 1, 3), 150, dtype=np.uint8)
        palette = np.array([_hex_rgb(c) for c in CATEGORY10], dtype=np.uint8)
        rgb = palette[np.mod(data.row_labels, len(palette))]
        rgb[data.row_labels < 0] = 150  # unlabelled
        return rgb.reshape(n_rows, 1, 3)

    def _draw_focus(self) -> None:
        unit = self.selection.unit
        columns = np.flatnonzero(self.data.units == unit) if unit is not None else np.zeros(0)
        with self.focus_box.hold_sync():
            if len(columns):
                c = float(columns[0])
                self.focus_box.x, self.focus_box.y = _box(c, c + 1, 0, len(self.data.rows))
            self.focus_box.visible = bool(len(columns))

    def _draw_row_box(self) -> None:
        sample = self.selection.probe_sample
        rows = np.flatnonzero(self.data.rows == sample) if sample is not None else np.zeros(0)
        with self.row_box.hold_sync():
            if len(rows):
                top = float(len(self.data.rows) - rows[0])
                self.row_box.x, self.row_box.y = _box(_STRIP[0], _STRIP[1], top - 1, top)
            self.row_box.visible = bool(len(rows))

    def _draw_card(self) -> None:
        self._draw_row_box()
        sample = self.selection.probe_sample
        # No sample: nothing of the last one stays drawn under the title's invitation.
        self.card.figure.layout.display = "none" if sample is None else None
        if sample is None:
            self.card_title.value = "<i>click the strip left of a row to see that sample</i>"
            self.card_input.value = self.card_text.value = ""
            self.card_units.show([])
            return
        x = self.ex.dataset.X[sample]
        reconstruction = self.ex.reconstruct([sample])[0]
        image = input_image(self.ex, sample)
        self.card_input.value = "" if image is None else picture_html(image, title="input")
        if self.tokens is not None:
            unit = self.selection.unit
            values = np.zeros(self.ex.n_samples, np.float32)
            if unit is not None:
                values = unit_activations(self.ex, unit)
            self.card_text.value = document_html(self.tokens, sample, values)
        elif isinstance(self.card, ImagePair):
            self.card.show(x, reconstruction, diverging=False)
        else:
            self.card.show(x, reconstruction)
        units, values = self.ex.codes.sample_units(sample)
        order = np.argsort(-values, kind="stable")[: self.card_units.size]
        self.card_units.show(
            units[order], [f"{u} ({v:.2f})" for u, v in zip(units[order], values[order])]
        )
        labels, names = self.ex.dataset.labels, self.ex.dataset.label_names
        label = ""
        if labels is not None and labels[sample] >= 0:
            name = names[labels[sample]] if names else labels[sample]
            label = f" · label {label_html(name)}"
        if self.tokens is not None:
            token = isolated_html(self.tokens.token_text(sample))
            label += f" · document {self.tokens.doc[sample]}, token <code>{token}</code>"
        error = _relative_error(x, reconstruction)
        self.card_title.value = (
            f"<b>sample {sample}</b>{label} · {counted(len(units), 'active unit')} · "
            + "relative error "
            + ("n/a (a zero input)" if error is None else f"{error:.3f}")
        )

    # -- view -> Selection ---------------------------------------------------------------------

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, column) of the matrix cell at data point (x, y), or None outside it (a NaN or
        infinite coordinate is outside)."""
        for value, name in ((x, "x"), (y, "y")):
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number (a data coordinate); got {value!r}")
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        n_rows, n_cols = self.data.matrix.shape
        row, column = n_rows - 1 - int(np.floor(y)), int(np.floor(x))
        if 0 <= row < n_rows and 0 <= column < n_cols:
            return row, column
        return None

    def _clicked_matrix(self, _mark: Any, event: dict[str, Any]) -> None:
        x, y = event_number(event, "click_x"), event_number(event, "click_y")
        cell = self.cell_at(x, y) if x is not None and y is not None else None
        if cell is not None:
            self.focus_unit(int(self.data.units[cell[1]]))

    def _clicked_strip(self, _mark: Any, event: dict[str, Any]) -> None:
        y = event_number(event, "click_y")
        cell = self.cell_at(0.0, y) if y is not None else None
        if cell is not None:
            self.selection.probe_sample = int(self.data.rows[cell[0]])
