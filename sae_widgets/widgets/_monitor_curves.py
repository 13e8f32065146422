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
    lowest value, if negative) to 5% above the highest value of the run, rounded up to two
    significant digits, and only grows; a share (the dead fraction) spans at least
    MIN_DEAD_SPAN and at most 1, and shrinks once its values would fill under half of it.
    (Each axis re-render cost headless Chromium ~10-15 ms of CPU; a rising dead fraction
    re-rendered its axis on every redraw.)"""
    x_scale, y_scale = line.scales["x"], line.scales["y"]
    if (x_scale.min, x_scale.max) != (0.0, float(x_max)):
        with x_scale.hold_sync():  # min and max in one message: one axis re-render, not two
            x_scale.min, x_scale.max = 0.0, float(x_max)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    low, high = min(0.0, float(finite.min())), float(finite.max())
    if share:
        low, top = 0.0, min(1.0, max(MIN_DEAD_SPAN, round_up(high * 1.05)))
    else:
        top = round_up(high * 1.05) if high > 0 else high + 1.0
    shrink = share and y_scale.max is not None and top < y_scale.max / 2
    with y_scale.hold_sync():
        if y_scale.min is None or low < y_scale.min:
            y_scale.min = low
        if y_scale.max is None or top > y_scale.max or shrink:
            y_scale.max = top


def round_up(value: float) -> float:
    """`value` (> 0) rounded up to two significant digits: 0.2013 -> 0.21, 1234 -> 1300."""
    if not value > 0 or not np.isfinite(value):
        return value
    unit = 10.0 ** (np.floor(np.log10(value)) - 1)
    return float(round(np.ceil(round(value / unit, 6)) * unit, 12))


def reset_domains(lines: dict[str, Lines]) -> None:
    """A new run: each axis starts from its first draw (the dead fraction's from 0..5%); one
    message a scale, and none for a scale already there."""
    for key, line in lines.items():
        for name, scale in line.scales.items():
            domain = (0.0, MIN_DEAD_SPAN) if (key, name) == ("dead_fraction", "y") else (None, None)
            if (scale.min, scale.max) != domain:
                with scale.hold_sync():
                    scale.min, scale.max = domain


def x_end(total_steps: int | None, last_step: int) -> int:
    """The step axis' end: the planned total, else the next power of two (each doubling of a
    long partial run re-renders the axes once)."""
    if total_steps and total_steps >= last_step:
        return total_steps
    return 1 << max(1, last_step - 1).bit_length()
