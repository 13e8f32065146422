"""ProbeSlider: vary one attribute of a sample and watch which units respond.

The sweep over the attribute's whole grid is computed once per (samples, attribute) and
cached; moving the slider only moves the marker on the response curves, swaps the pictures of
the varied input and its reconstruction, and updates the bars of unit activations.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Bars, LinearScale, OrdinalScale

from sae_widgets.analysis import ProbeResult
from sae_widgets.analysis.checks import check_index
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._legend import input_image, picture_html
from sae_widgets.widgets._panels import ImagePair, input_pair
from sae_widgets.widgets._response_curves import CURVE_COLORS, ResponseCurves, unit_colors
from sae_widgets.widgets._view import (
    ExplorerView,
    axis,
    check_choice,
    check_count,
    event_index,
    figure,
    text_width,
    wrapping_row,
)
from sae_widgets.widgets.text import VariedSentence, value_names

__all__ = ["ProbeSlider"]

_SWEEP_CACHE_SIZE = 8


class ProbeSlider(ExplorerView):
    """Partial dependence of the units on one input attribute, for one sample or a set.

    Parameters
    ----------
    ex:
        The Explorer whose Selection this view follows and sets.
    attribute:
        Name of a dataset attribute to vary (default: the Selection's, else the first).
    n_curves:
        Number of response curves and bars (the most sensitive units; the focused unit is
        always one of them).
    max_average:
        With "average over selection" on, at most this many selected samples are swept.

    Attributes
    ----------
    figure:
        Response curves with the marker at the slider value.
    response_curves:
        The `ResponseCurves` component drawing the figure and the legend.
    curves, focus_curve:
        Lines marks: one line per shown unit (row i: ``shown_units[i]``, in its colour), and
        the focused unit's line again, thick, on top.
    rule, dots, x_axis:
        The dashed rule at the slider value, the shown units' activations on it, the x axis.
    legend:
        `UnitButtons` naming each curve's unit in its colour (the focused one bold); a click
        focuses the unit.
    attribute, slider, average:
        The attribute Dropdown, the value SelectionSlider and the averaging ToggleButton.
    bars:
        Bars mark of the curves' units' activations at the slider value.
    result:
        The `ProbeResult` drawn; `shown_units` are the units of the curves and bars.
    """

    def __init__(
        self,
        ex: Explorer,
        attribute: str | None = None,
        *,
        n_curves: int = 8,
        max_average: int = 256,
    ) -> None:
        n_curves = check_count(n_curves, "n_curves", getattr(ex, "n_units", None))
        max_average = check_count(max_average, "max_average", getattr(ex, "n_samples", None))
        super().__init__(ex)
        names = list(ex.dataset.attributes)
        if not names:
            raise ValueError("ex: its dataset has no attributes for a ProbeSlider to vary")
        if attribute is not None:
            check_choice(attribute, "attribute", names)
        self.n_curves, self.max_average = n_curves, max_average
        self._sweeps: OrderedDict[tuple[Any, ...], ProbeResult] = OrderedDict()
        self._syncing = False  # True while the view writes its own controls
        self.result: ProbeResult | None = None
        self.shown_units = np.zeros(0, dtype=np.int64)

        self.attribute = widgets.Dropdown(options=names, description="attribute")
        self.attribute.observe(self._attribute_picked, "value")
        average_label = "average over selection"
        self.average = widgets.ToggleButton(
            description=average_label,
            value=False,
            tooltip="sweep the selected samples and show their mean response",
            layout=widgets.Layout(width=text_width([average_label])),
        )
        self.average.observe(self._average_toggled, "value")
        self.slider = widgets.SelectionSlider(
            options=[("0", 0.0)],
            description="value",
            continuous_update=True,
            # As wide as the curves below, or as the view on a narrow screen.
            layout=widgets.Layout(width="100%", max_width="460px"),
        )
        self.slider.observe(self._slider_moved, "value")
        self.sample_text = widgets.HTML()

        self.pair = input_pair(ex, ("varied input", "reconstruction"))
        # Templated sentences: the varied input is the re-rendered sentence itself.
        self.sentence = VariedSentence(ex) if ex.dataset.tokens is not None else None
        varied_view = self.pair.figure if self.sentence is None else self.sentence
        # Activations of a model over images: the varied input picture, before the model.
        self.varied_input = widgets.HTML()

        # The response curves (the main figure) and their legend of unit buttons.
        self.response_curves = ResponseCurves(self.n_curves, self.click_curve, self.focus_unit)
        self.figure, self.legend = self.response_curves.figure, self.response_curves.legend
        self.curves, self.focus_curve = (
            self.response_curves.curves,
            self.response_curves.focus_curve,
        )
        self.rule, self.dots, self.x_axis = (
            self.response_curves.rule,
            self.response_curves.dots,
            self.response_curves.x_axis,
        )
        bar_x, bar_y = OrdinalScale(), LinearScale(min=0.0)
        self.bars = Bars(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": bar_x, "y": bar_y},
            color_mode="group",  # one colour per bar (1-D bars are groups of one)
            colors=CURVE_COLORS[: self.n_curves],
        )
        self.bars.on_element_click(self._clicked_bar)
        self.bars_figure = figure(
            [self.bars],
            [Axis(scale=bar_x, label="unit"), axis(bar_y, vertical=True)],
            title="activations at the slider value",
            width="300px",
        )
        # Hidden while no attribute is probed (after selection.clear()): nothing stale shows.
        self.body = wrapping_row(
            [
                self.figure,
                self.legend,
                widgets.VBox([self.varied_input, varied_view, self.bars_figure]),
            ]
        )
        self.children = [
            wrapping_row(
                [self.attribute, self.average, self.sample_text, self.busy.widget],
                align_items="center",
            ),
            self.slider,
            self.body,
        ]
        self.add_class("sw-probe")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling

        self.follow(lambda _change: self._draw_sweep(), "probe_attribute", "probe_sample")
        self.follow(self._samples_changed, "samples")
        self.follow(lambda _change: self._draw_value(), "probe_value")
        self.follow(lambda _change: self._draw_units(), "unit")
        wanted = attribute or self.selection.probe_attribute or names[0]
        if self.selection.probe_attribute != wanted:
            self.selection.probe_attribute = wanted  # drawn by the follower
        else:
            self._draw_sweep()

    # -- what is probed ------------------------------------------------------------------------

    def probed_samples(self) -> list[int]:
        """The samples swept: the selection (capped) when averaging, else the probe sample
        (falling back to the first selected sample, then sample 0)."""
        selected = self.selection.samples
        if self.average.value and selected:
            if len(selected) <= self.max_average:
                return list(selected)
            rng = np.random.default_rng(self.ex.seed)
            return sorted(rng.choice(selected, self.max_average, replace=False).tolist())
        if self.selection.probe_sample is not None:
            return [self.selection.probe_sample]
        return [selected[0]] if selected else [0]

    def sweep(self) -> ProbeResult:
        """The sweep for the current samples and attribute, computed once and cached."""
        samples = self.probed_samples()
        name = self.selection.probe_attribute or self.attribute.value
        if name is None:
            raise ValueError("no attribute is probed (selection.probe_attribute is None)")
        key = (name, tuple(samples))
        result = self._sweeps.get(key)
        if result is None:
            target: Any = samples[0] if len(samples) == 1 else samples
            result = self.ex.probe(target, name)
            self._sweeps[key] = result
            if len(self._sweeps) > _SWEEP_CACHE_SIZE:
                self._sweeps.popitem(last=False)
        else:
            self._sweeps.move_to_end(key)
        return result

    def value_index(self) -> int:
        """Grid position nearest the Selection's probe value.

        Without a value (the Selection forgets the previous attribute's value when another is
        picked), or with one outside this attribute's grid, it is the attribute's identity;
        without one, the probed sample's own value when the dataset records it as a factor of
        that name (a shape's scale, a sentence's tense); else the middle of the grid.
        """
        assert self.result is not None
        grid = self.result.values
        value: float | None = self.selection.probe_value
        if value is None or not grid.min() <= value <= grid.max():
            name = self.result.attribute
            identity = self.ex.attribute(name).identity
            factors = self.ex.dataset.factors or {}
            samples = self.probed_samples()
            if identity is not None:
                value = float(identity)
            elif name in factors and len(samples) == 1:
                value = float(factors[name][samples[0]])
            else:
                value = float(grid[len(grid) // 2])
        return int(np.argmin(np.abs(grid - value)))

    # -- Selection -> view ---------------------------------------------------------------------

    def redraw(self) -> None:
        """The sweep again with the refreshed SAE (cached sweeps used the old one)."""
        self._sweeps.clear()
        self._draw_sweep()

    def _samples_changed(self, _change: Any) -> None:
        if self.average.value or self.selection.probe_sample is None:
            self._draw_sweep()

    def _draw_idle(self) -> None:
        """No attribute probed (the Selection was cleared): an invitation, nothing drawn."""
        self.result = None
        self.shown_units = np.zeros(0, dtype=np.int64)
        self._syncing = True
        try:
            self.attribute.value = None  # picking any attribute, the last one too, probes it
        finally:
            self._syncing = False
        self.sample_text.value = "<i>pick an attribute to vary</i>"
        self.slider.layout.display = self.body.layout.display = "none"
        self.legend.show([])
        self.varied_input.value = ""

    def _draw_sweep(self) -> None:
        if self.selection.probe_attribute is None:
            self._draw_idle()
            return
        self.slider.layout.display = self.body.layout.display = None
        self.result = result = self.sweep()
        samples = self.probed_samples()
        self._syncing = True
        try:
            self.attribute.value = result.attribute
            names = value_names(self.ex, result.attribute, len(result.values))
            self.slider.options = [
                (name or f"{v:g}", float(v)) for name, v in zip(names, result.values)
            ]
        finally:
            self._syncing = False
        self.x_axis.label = result.attribute
        if len(samples) == 1:
            self.sample_text.value = f"sample <b>{samples[0]}</b>"
        else:
            n_selected = len(self.selection.samples)
            if n_selected > len(samples):  # capped: say so, and how to change it
                self.sample_text.value = (
                    f"mean over a random <b>{len(samples)}</b> of the <b>{n_selected:,}</b> "
                    f"selected samples (at most max_average={self.max_average}, a "
                    "ProbeSlider parameter, to keep sweeps quick)"
                )
            else:
                self.sample_text.value = f"mean over <b>{len(samples)}</b> selected samples"
        self._draw_units()

    def _draw_units(self) -> None:
        """Choose the curves' units (most sensitive, plus the focused unit) and draw them."""
        result = self.result
        if result is None:
            return
        units = list(result.ranked_units[: self.n_curves])
        focus = self.selection.unit
        if focus is not None and focus not in units:
            units = [*units[: self.n_curves - 1], focus]
        self.shown_units = np.asarray(units, dtype=np.int64)
        self.response_curves.show_units(result.values, result.response, units, focus)
        self._draw_value()

    def _draw_value(self) -> None:
        """Move the marker, the pictures and the bars to the current value (no sweep)."""
        result = self.result
        if result is None:
            return
        k = self.value_index()
        value = float(result.values[k])
        self._syncing = True
        try:
            self.slider.value = value
        finally:
            self._syncing = False
        at_value = result.response[k, self.shown_units].astype(np.float32)
        shown = result.response[:, self.shown_units]
        low, high = (float(shown.min()), float(shown.max())) if shown.size else (0.0, 1.0)
        self.response_curves.show_value(value, at_value, low, high)
        focus = self.selection.unit
        with self.bars.hold_sync():
            self.bars.x = np.array([str(u) for u in self.shown_units])
            self.bars.y = at_value
            self.bars.colors = unit_colors(self.shown_units.tolist(), focus)
        self._draw_varied_input(result.attribute, value)
        if self.sentence is not None:
            self.sentence.show(self.probed_samples()[0], result.attribute, value)
        elif isinstance(self.pair, ImagePair):
            self.pair.show(result.inputs[k], result.reconstructions[k], diverging=False)
        else:
            self.pair.show(result.inputs[k], result.reconstructions[k])

    def _draw_varied_input(self, attribute: str, value: float) -> None:
        """The first probed sample's input with the attribute at `value`, as a picture, when
        the SAE sees a model's activations of images (the attribute's `input_attribute`)."""
        sample = self.probed_samples()[0]
        source = self.ex.attribute(attribute).input_attribute
        shape = self.ex.dataset.image_shape
        if source is None or shape is None or input_image(self.ex, sample) is None:
            self.varied_input.value = ""
            return
        pixels = source.apply([sample], value)[0]
        if pixels.size != int(np.prod(shape)):  # inputs that are not the images' pixels
            self.varied_input.value = ""
            return
        title = f"input, {attribute} = {value:g}"
        self.varied_input.value = picture_html(pixels.reshape(shape), size_px=96, title=title)

    # -- view -> Selection ---------------------------------------------------------------------

    def _average_toggled(self, _change: dict[str, Any]) -> None:
        with self.busy:  # a sweep over many samples can take a while
            self._draw_sweep()

    def _attribute_picked(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        if change["new"] is None:  # no option picked (a malformed message): show the drawn one
            self._syncing = True
            try:
                self.attribute.value = (
                    change["old"] if self.result is None else self.result.attribute
                )
            finally:
                self._syncing = False
            return
        self.selection.probe_attribute = change["new"]

    def _slider_moved(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] is not None:
            self.selection.probe_value = float(change["new"])

    def click_curve(self, position: int) -> None:
        """Clicking the curve at `position` (0 .. curves drawn - 1) focuses its unit."""
        position = check_index(position, len(self.shown_units), "position")
        self.focus_unit(int(self.shown_units[position]))

    def _clicked_bar(self, _mark: Any, event: dict[str, Any]) -> None:
        index = event_index(event, len(self.shown_units))  # None: a malformed event, ignored
        if index is not None:
            self.focus_unit(int(self.shown_units[index]))
