"""How a scatter of samples is coloured: by label, or by the focused unit's activation.

Each colouring is one palette and, per drawn point, its position in the palette (what the
SVG and WebGL scatters both take), with the HTML legend that explains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._legend import color_bar, label_legend
from sae_widgets.widgets._render import (
    ACTIVATION_PALETTE,
    CATEGORY10,
    activation_gradient_css,
    activation_levels,
)

__all__ = ["PointColors", "activation_colors", "label_colors"]

_UNLABELLED = "#aaaaaa"
_NAMED = 20  # classes a legend names


@dataclass(frozen=True)
class PointColors:
    """palette: the "#rrggbb" colours; index: (n_shown,) each drawn point's position in it;
    legend: HTML naming what the colours mean."""

    palette: Sequence[str]
    index: np.ndarray
    legend: str


def label_colors(ex: Explorer, shown: np.ndarray) -> PointColors:
    """The drawn samples `shown` coloured by label (grey: unlabelled, -1)."""
    labels = ex.dataset.labels
    assert labels is not None
    index = np.where(labels >= 0, np.mod(labels, 10), 10)
    classes = np.unique(labels[labels >= 0])
    present = classes[:_NAMED]
    names = ex.dataset.label_names
    shown_names = [str(names[i]) if names else str(i) for i in present]
    colors = [CATEGORY10[i % 10] for i in present]
    if (labels < 0).any():  # the grey points say what they are too
        shown_names, colors = [*shown_names, "unlabelled"], [*colors, _UNLABELLED]
    legend = label_legend(shown_names, colors, note=_legend_note(len(classes)))
    return PointColors([*CATEGORY10, _UNLABELLED], index[shown], legend)


def _legend_note(n_classes: int) -> str:
    """What a legend of `n_classes` leaves unsaid: the classes it does not name, and that
    ten colours serve them all."""
    parts = []
    if n_classes > _NAMED:
        parts.append(f"… and {n_classes - _NAMED:,} more")
    if n_classes > len(CATEGORY10):
        parts.append(f"(colours repeat every {len(CATEGORY10)} classes)")
    return " ".join(parts)


def activation_colors(ex: Explorer, shown: np.ndarray, unit: int | None) -> PointColors:
    """The drawn samples `shown` coloured by `unit`'s activation (all at 0 without a unit)."""
    activation = np.zeros(len(shown), dtype=np.float32)  # of the drawn points
    peak = 1.0
    title = "no unit focused"
    if unit is not None:
        samples, values = ex.codes.unit_samples(unit)  # samples ascending
        at = np.minimum(np.searchsorted(samples, shown), max(len(samples) - 1, 0))
        fires = (samples[at] == shown) if len(samples) else at < 0
        activation[fires] = values[at[fires]]
        peak = float(ex.codes.max_activation[unit])
        title = f"unit {unit} activation" + ("" if peak > 0 else " (it never fires)")
    # the floor only keeps the colour scale finite; the bar names the real maximum
    index = activation_levels(activation, max(peak, 1e-6))
    legend = color_bar(activation_gradient_css(), "0", f"{peak:.3g}", title)
    return PointColors(ACTIVATION_PALETTE, index, legend)
