"""The TrainingMonitor's curves: decimated points and scale domains that change in steps."""

from __future__ import annotations

import numpy as np
from bqplot import Lines

# The dead fraction is a share: its axis starts at 0 and spans at least this much, so a run
# with no dead unit shows a line along the bottom, not a lone 0 in the middle.
MIN_DEAD_SPAN = 0.05
# Lines never carry more points than this; longer runs are decimated (the last point is kept).
# A 1,000-point redraw of the four curves cost a browser ~130 ms of CPU against ~90 ms for 100
# points; a ~600 px wide plot shows no more than ~500 anyway.
MAX_POINTS = 500


def decimate(values: list[float]) -> np.ndarray:
    """At most MAX_POINTS evenly strided values, always ending with the latest, as float32."""
    array = np.asarray(values, dtype=np.float32)
    if len(array) <= MAX_POINTS:
        return array
    keep = np.linspace(0, len(array) - 1, MAX_POINTS).round().astype(np.int64)
    return array[keep]


def hold_domains(line: Lines, x_max: int, values: np.ndarray, share: bool) -> None:
    """Fixed scale domains that change only in steps, set before the line's data: a redraw
    then re-renders the line's path but not its axes (in headless Chromium a fit with a live
    monitor redrawing 5 times a second went from +88% to +57% of the time without one,
    benchmarks/monitor_browser.py on the loaded 2-core machine). y runs from 0 (or the
    lowest value, if negative) to 5% above the highest value of the run and only grows; a
    share (the dead fraction) spans at least MIN_DEAD_SPAN and at most 1."""
    x_scale, y_scale = line.scales["x"], line.scales["y"]
    if (x_scale.min, x_scale.max) != (0.0, float(x_max)):
        x_scale.min, x_scale.max = 0.0, float(x_max)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    low, high = min(0.0, float(finite.min())), float(finite.max())
    if share:
        low, top = 0.0, min(1.0, max(MIN_DEAD_SPAN, high * 1.05))
    else:
        top = high * 1.05 if high > 0 else high + 1.0
    if y_scale.min is None or low < y_scale.min:
        y_scale.min = low
    if y_scale.max is None or top > y_scale.max or share:  # a share follows its values
        y_scale.max = top
