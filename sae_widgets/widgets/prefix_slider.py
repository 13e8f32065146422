"""`PrefixSlider`: reconstruction and metrics using only the first n units.

A Matryoshka SAE trains nested prefixes of its units to reconstruct on their own; the slider
picks n and shows, for the first selected sample (sample 0 when none is selected), the input
beside its reconstruction from units 0..n-1 only, and the FVU / L0 of that prefix over the
dataset, on the curve of FVU against prefix size. Works for any SAE (a plain one's prefixes
are not trained to reconstruct, which the curve shows). `Explorer.dashboard()` adds it for
SAEs with nested prefixes.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import LinearScale, Lines, LogScale, Scatter

from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._panels import ImagePair, input_pair
from sae_widgets.widgets._view import ExplorerView, axis, check_count, figure
from sae_widgets.wording import counted

__all__ = ["PrefixSlider", "prefix_grid"]


def prefix_grid(n_units: int, nested: tuple[int, ...] | None) -> list[int]:
    """Prefix sizes the curve is drawn at: the SAE's own sizes and n_units / 2**j."""
    halvings = {max(1, n_units >> j) for j in range(8)}
    return sorted(halvings | set(nested or ()))


class PrefixSlider(ExplorerView):
    """Reconstruction and FVU / L0 of the first n units, n picked with a slider.

    Attributes
    ----------
    slider:
        IntSlider over n (1..n_units); released, it redraws (continuous_update=False).
    pair:
        The input and its reconstruction from the first n units (pictures or lines).
    figure:
        FVU against prefix size (log x axis) with the current n marked.
    info:
        HTML line: "first n units: FVU f · L0 l" over the dataset.
    """

    def __init__(self, ex: Explorer, n_units: int | None = None) -> None:
        if n_units is not None:
            n_units = check_count(n_units, "n_units")
        super().__init__(ex)
        if n_units is not None and n_units > ex.n_units:
            raise ValueError(
                f"n_units must be in [1, {ex.n_units}] (the SAE's units); got {n_units}"
            )
        nested = ex.prefix_sizes
        start = n_units if n_units is not None else (nested[0] if nested else ex.n_units)
        x_scale, y_scale = LogScale(), LinearScale(min=0.0)
        scales = {"x": x_scale, "y": y_scale}
        self.curve = Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales=scales)
        self.nested_marks = Scatter(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales=scales,
            colors=["#1f77b4"],
            default_size=24,
        )
        self._draw_curve()
        self.marker = Scatter(
            x=np.zeros(1, np.float32),
            y=np.zeros(1, np.float32),
            scales=scales,
            colors=["#d62728"],
            default_size=64,
        )
        self.figure = figure(
            [self.curve, self.nested_marks, self.marker],
            [axis(x_scale, "units kept (first n)"), axis(y_scale, "FVU", vertical=True)],
            title="FVU of the first n units",
        )
        self.slider = widgets.IntSlider(
            value=int(start),
            min=1,
            max=ex.n_units,
            description="units kept",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.pair = input_pair(ex, ("input", "first n units"))
        self.info = widgets.HTML()
        self.slider.observe(lambda _change: self.draw(), "value")
        self.follow(lambda _change: self.draw(), "samples")
        self.children = [
            widgets.HTML("<b>Nested prefixes</b>" if nested else "<b>Prefixes of units</b>"),
            self.slider,
            self.info,
            widgets.HBox([self.figure, self.pair.figure]),
        ]
        self.add_class("sw-prefix-slider")
        self.draw()

    def _draw_curve(self) -> None:
        """FVU at each prefix size of the grid, the SAE's own sizes marked."""
        nested = self.ex.prefix_sizes
        self.grid = prefix_grid(self.ex.n_units, nested)
        curve = self.ex.prefix_metrics(self.grid)
        with self.curve.hold_sync(), self.nested_marks.hold_sync():
            self.curve.x = curve.sizes.astype(np.float32)
            self.curve.y = curve.fvu.astype(np.float32)
            self.nested_marks.x = np.asarray(nested or [], np.float32)
            self.nested_marks.y = np.interp(nested or [], curve.sizes, curve.fvu).astype(np.float32)

    def redraw(self) -> None:
        """The curve and the slider's range again, from the refreshed SAE."""
        self._draw_curve()
        clamped = self.slider.value > self.ex.n_units
        self.slider.max = self.ex.n_units  # a clamped value draws through its observer
        if not clamped:
            self.draw()

    @property
    def sample(self) -> int:
        """The sample drawn: the first selected one, else 0."""
        samples = self.selection.samples
        return int(samples[0]) if len(samples) else 0

    def draw(self, *_: Any) -> None:
        """Redraw for the slider's n and the current sample."""
        n = int(self.slider.value)
        metrics = self.ex.prefix_metrics([n])
        fvu, l0 = float(metrics.fvu[0]), float(metrics.l0[0])
        with self.marker.hold_sync():
            self.marker.x = np.array([n], np.float32)
            self.marker.y = np.array([fvu], np.float32)
        self.info.value = (
            f"first {n:,} of {counted(self.ex.n_units, 'unit')}: FVU {fvu:.4f} · L0 {l0:.2f}"
        )
        sample = self.sample
        x = self.ex.dataset.X[sample]
        x_hat = self.ex.reconstruct_prefix([sample], n)[0]
        if isinstance(self.pair, ImagePair):  # pictures: one grey scale for both
            self.pair.show(x, x_hat, diverging=False)
        else:
            self.pair.show(x, x_hat)
