"""`ResponseCurves`: units' activations over an attribute's grid of values, one line each,
the focused unit's drawn again thick and orange, a dashed rule and dots at the current value,
and a legend of unit buttons beside the plot (the ProbeSlider's main figure).

The component draws what it is given (`show_units`, `show_value`); which units and which
value is the ProbeSlider's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from bqplot import LinearScale, Lines, Scatter

from sae_widgets.widgets._render import CATEGORY10
from sae_widgets.widgets._unit_buttons import UnitButtons
from sae_widgets.widgets._view import TITLE_ROOM, axis, event_index, figure, set_lines

__all__ = ["CURVE_COLORS", "FOCUS_COLOR", "ResponseCurves", "unit_colors"]

FOCUS_COLOR = "#ff7f0e"  # the focused unit is orange in every view
# The other curves' colours: category10 without the focus colour, so orange means one thing.
CURVE_COLORS = [color for color in CATEGORY10 if color != FOCUS_COLOR]


def unit_colors(units: Any, focus: int | None) -> list[str]:
    """Colour of each shown unit's curve, legend entry and bar: its position's colour, or
    the focus colour for the focused unit."""
    return [
        FOCUS_COLOR if unit == focus else CURVE_COLORS[i % len(CURVE_COLORS)]
        for i, unit in enumerate(units)
    ]


class ResponseCurves:
    """The response curves figure and its legend.

    `on_curve(position)` is called with the position of a clicked curve, `on_unit(unit)` when
    a legend button is clicked.

    Attributes
    ----------
    figure:
        The bqplot Figure: `curves`, `focus_curve`, `rule` and `dots`.
    curves, focus_curve:
        One line per shown unit (row i: the i-th unit shown), and the focused unit's line
        again, thick, on top.
    rule, dots:
        The dashed rule at the current value and the shown units' activations on it.
    x_axis:
        The horizontal axis (labelled with the attribute).
    legend:
        `UnitButtons` naming each curve's unit in its colour (the focused one bold).
    """

    def __init__(
        self,
        n_curves: int,
        on_curve: Callable[[int], None],
        on_unit: Callable[[int], None],
    ) -> None:
        self._n_shown = 0
        self._on_curve = on_curve
        x_scale, y_scale = LinearScale(), LinearScale()
        # All curves in one mark (one message per redraw, one domain update in the browser),
        # the focused unit's drawn again, thick, on top.
        self.curves = Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros((0, 0), np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=CURVE_COLORS[:n_curves],
            stroke_width=1.5,
        )
        self.curves.on_element_click(self._clicked_curve)
        self.focus_curve = Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=[FOCUS_COLOR],
            stroke_width=4.0,
            visible=False,
        )
        self.rule = Lines(
            x=np.zeros(2, np.float32),
            y=np.zeros(2, np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=["#555555"],
            line_style="dashed",
            preserve_domain={"x": True, "y": True},
        )
        self.dots = Scatter(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=["#7f7f7f"],
            default_size=30,
        )
        self.x_axis = axis(x_scale, "attribute value")
        self.figure = figure(
            [self.curves, self.focus_curve, self.rule, self.dots],
            [self.x_axis, axis(y_scale, "activation", vertical=True)],
            title="response of the most sensitive units",
            width="460px",
            height="320px",
        )
        # The legend, a column right of the plot: bqplot's own is drawn over the curves.
        self.legend = UnitButtons("<b>units</b>", on_unit, n_curves)
        self.legend.vertical = True
        self.legend.layout.margin = f"{TITLE_ROOM}px 12px 0 0"  # level with the plot area

    def show_units(
        self,
        grid: np.ndarray,
        response: np.ndarray,
        units: Sequence[int],
        focus: int | None,
    ) -> None:
        """Draw the curves of `units` (columns of `response`, (n_values, n_units), over
        `grid`), the focused unit's on top when it has one."""
        self._n_shown = len(units)
        colors = unit_colors(units, focus)
        # set_lines: a grid of one value draws one dot per unit
        with self.curves.hold_sync():
            set_lines(self.curves, grid, response[:, list(units)].T)
            self.curves.colors = colors
        with self.focus_curve.hold_sync():
            if focus is not None:
                set_lines(self.focus_curve, grid, response[:, focus])
            self.focus_curve.visible = focus is not None
        self.legend.show(units, [str(unit) for unit in units], colors=colors, strong=focus)

    def show_value(self, value: float, at_value: np.ndarray, low: float, high: float) -> None:
        """The rule at `value` (spanning `low` .. `high`) and the dots `at_value` on it."""
        with self.rule.hold_sync():
            self.rule.x = np.array([value, value], dtype=np.float32)
            self.rule.y = np.array([low, high], dtype=np.float32)
        with self.dots.hold_sync():
            self.dots.x = np.full(len(at_value), value, dtype=np.float32)
            self.dots.y = np.asarray(at_value, dtype=np.float32)

    def _clicked_curve(self, _mark: Any, event: dict[str, Any]) -> None:
        index = event_index(event, self._n_shown)  # None: a malformed event, ignored
        if index is not None:
            self._on_curve(index)
