"""Profile a brush release or a unit focus change through the whole dashboard (kernel side).

    .venv/bin/python benchmarks/selection_profile.py                   # rectangle, 10^6 samples
    .venv/bin/python benchmarks/selection_profile.py --action lasso
    .venv/bin/python benchmarks/selection_profile.py --action focus    # a unit typed in
    .venv/bin/python benchmarks/selection_profile.py --n 200000 --n-units 1024

A rectangle (or a 120-vertex lasso) holding ~`--selection` samples is delivered to the WebGL
PCA scatter as jupyter-scatter sends it (the drawn points, then the outline), through the
Selection to every linked view (recording comms: benchmarks/widget_latency.py); or a unit is
typed into the inspector's picker (each time one not summarised before). Printed per action:
wall and process CPU milliseconds (CPU time shows what a loaded, shared machine hides), the
selection size and the MB sent, against issue 12's budget (100 ms for a selection, 50 ms for
a focus); then each view's share of the CPU time (its Selection observer, and the Explorer
answers inside it), and cProfile's top functions over a few more actions. Inputs are d=64
superposition rows (the selection path does not depend on d); --n must exceed 3,000 (the
WebGL scatter).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from explorer_latency import rect_around, train_briefly
from widget_latency import RECORDER, browser_outline, from_browser_update, recording_comms

import sae_widgets as sw
from sae_widgets.widgets import _view

BUDGETS = {"rect": 100.0, "lasso": 100.0, "focus": 50.0}
SHARES: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0])  # CPU s, calls


def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, adding its process CPU time to SHARES[label]."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            SHARES[label][0] += time.process_time() - start
            SHARES[label][1] += 1

    return wrapper


def attribute_views(ex: sw.Explorer) -> None:
    """Time every view's Selection observers and the Explorer's answers (before building)."""
    follow = _view.ExplorerView.follow

    def timed_follow(view: Any, handler: Any, *names: str) -> None:
        label = f"{type(view).__name__} on {'/'.join(names)}"
        follow(view, timed(label, handler), *names)

    _view.ExplorerView.follow = timed_follow  # type: ignore[method-assign]
    for name in ("enrichment", "heatmap", "unit_summary", "samples_in_rect", "samples_in_polygon"):
        setattr(ex, name, timed(f"  Explorer.{name}", getattr(ex, name)))


def lasso_outline(rect: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
    (a, b), (c, d) = rect
    turn = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    wobble = 1 + 0.1 * np.sin(5 * turn)
    return np.c_[
        (a + b) / 2 + (b - a) / 2 * wobble * np.cos(turn),
        (c + d) / 2 + (d - c) / 2 * wobble * np.sin(turn),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-units", type=int, default=4096)
    parser.add_argument("--selection", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--action", choices=sorted(BUDGETS), default="rect")
    args = parser.parse_args(argv)
    ds = sw.datasets.superposition(n=args.n, n_features=2 * args.n_units, dim=64, seed=0)
    sae = train_briefly(ds, n_units=args.n_units, k=32, steps=5, batch=4096)
    ex = sw.Explorer(sae, ds)
    coords = ex.projection().coords
    (a, b), (c, d) = rect_around(coords, coords[0], args.selection)
    rects = [((a, b), (c, d)), ((a, 0.9 * b + 0.1 * a), (c, d))]
    walls, cpus = [], []
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)")
    with recording_comms(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attribute_views(ex)
        dashboard = ex.dashboard(select_with="lasso" if args.action == "lasso" else "rectangle")
        view = dashboard.brush
        if args.action == "focus" and "activation" in [v for _, v in view.color_by.options]:
            view.color_by.value = "activation"  # the costlier colouring
        alive = np.flatnonzero(ex.codes.counts)
        fresh = iter(np.random.default_rng(0).permutation(alive).tolist())

        def act(i: int) -> None:
            if args.action == "focus":
                unit = next(fresh)
                deliver = lambda: from_browser_update(dashboard.inspector.picker, value=unit)  # noqa: E731
            else:
                (x0, x1), (y0, y1) = rects[i % 2]
                outline = (
                    [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
                    if args.action == "rect"
                    else lasso_outline(rects[i % 2])
                )
                deliver = browser_outline(view, outline)  # the browser's part: not timed
            RECORDER.reset()
            if i == 1:
                SHARES.clear()  # the first action warms caches
            wall, cpu = time.perf_counter(), time.process_time()
            deliver()
            walls.append((time.perf_counter() - wall) * 1e3)
            cpus.append((time.process_time() - cpu) * 1e3)
            size, sent = len(ex.selection.samples), RECORDER.bytes / 1e6
            print(f"{args.action} {i}: {walls[-1]:7.0f} ms wall {cpus[-1]:7.0f} ms CPU, ", end="")
            print(f"{size:,} samples selected, {sent:.3f} MB sent")

        for i in range(args.repeats):
            act(i)
        counted = args.repeats - 1
        print("\nCPU per action, by Selection observer (and the Explorer answers inside them):")
        for label, (seconds, calls) in sorted(SHARES.items(), key=lambda kv: -kv[1][0]):
            print(f"  {label:<48} {1e3 * seconds / counted:6.1f} ms  ({calls / counted:.0f}x)")
        profile = cProfile.Profile()
        profile.enable()
        for i in range(args.repeats, args.repeats + 4):  # continuing the alternation
            act(i)
        profile.disable()
    budget = BUDGETS[args.action]
    wall, cpu = statistics.median(walls[1:]), statistics.median(cpus[1:])  # first: cold caches
    print(f"\nmedian after the first: {wall:.0f} ms wall ({'PASS' if wall <= budget else 'FAIL'}, "
          f"budget {budget:.0f} ms), {cpu:.0f} ms process CPU "
          f"({'PASS' if cpu <= budget else 'FAIL'})")  # fmt: skip
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    return 0 if wall <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
