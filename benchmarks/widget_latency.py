"""Widget responsiveness: kernel time and bytes sent to the browser per user action.

    .venv/bin/python benchmarks/widget_latency.py            # the 100k-sample explorer
    .venv/bin/python benchmarks/widget_latency.py --quick    # 20k samples, fewer repeats

Also called from benchmarks/explorer_latency.py (its widget-responsiveness hook) on the
explorer it built. Every widget comm is replaced by a recording one (the `comm` package's
``create_comm`` hook, which ipywidgets calls for each widget), so each message the kernel would
send is sized exactly: its JSON part plus its binary buffers. User actions enter through the
same path a browser message takes (``Widget._handle_msg``), so echo updates are counted too.

Budgets (issue 6): a unit focus change within 100 ms and 1 MB; a brush (rectangle or lasso)
release within 200 ms and 2 MB. Times are the median over repeats; bytes are the maximum.
Each kernel time is printed twice: wall clock, and the process CPU time of the same calls
("kernel CPU", informational): on a shared machine the wall time includes waiting for a core,
the CPU time is the work itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import comm
import numpy as np
from comm.base_comm import BaseComm
from matplotlib.path import Path

import sae_widgets as sw
from sae_widgets.widgets.pca_brush import GL_THRESHOLD

# (name, value, unit, budget or None): explorer_latency turns these into its Row objects.
Figure = tuple[str, float, str, float | None]


class Recorder:
    """Counts the messages and bytes every recording comm publishes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def reset(self) -> None:
        self.messages = self.bytes = 0

    def add(self, data: Any, buffers: Any) -> None:
        self.messages += 1
        self.bytes += len(json.dumps(data, default=str).encode())
        self.bytes += sum(memoryview(b).nbytes for b in buffers or ())


RECORDER = Recorder()


class RecordingComm(BaseComm):
    """A comm with no kernel behind it that sizes what it would send."""

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        RECORDER.add(data, buffers)


@contextlib.contextmanager
def recording_comms() -> Iterator[Recorder]:
    """Widgets created inside get a RecordingComm (restored on exit)."""
    original = comm.create_comm
    comm.create_comm = RecordingComm
    try:
        yield RECORDER
    finally:
        comm.create_comm = original


def from_browser_update(widget: Any, **state: Any) -> None:
    """Deliver a state update as if the browser had sent it."""
    message = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": message}, "buffers": []})


def browser_outline(view: Any, outline: Any) -> Callable[[], None]:
    """What jupyter-scatter sends when a lasso or rectangle ends, ready to deliver: the
    enclosed drawn points (computed here, in the "browser", untimed), then the outline in data
    coordinates. Calling the result delivers both."""
    outline = np.ascontiguousarray(outline, dtype=np.float32)
    widget = view.scatter.widget
    coords = view.ex.projection(view.source).coords[view.shown]
    drawn = np.flatnonzero(Path(outline).contains_points(coords)).astype(np.uint32)
    binary = {"view": memoryview(outline), "dtype": "float32", "shape": list(outline.shape)}

    def deliver() -> None:
        widget.selection = drawn  # the points first (PCABrush leaves them to the outline)
        from_browser_update(widget, lasso_selection_polygon=binary)

    return deliver


class Clock:
    """Wall and process-CPU milliseconds of each timed block (``with clock:``)."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.cpus: list[float] = []

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.walls.append((time.perf_counter() - self._wall) * 1e3)
        self.cpus.append((time.process_time() - self._cpu) * 1e3)

    def figures(self, name: str, budget: float | None) -> list[Figure]:
        """The median wall ms against `budget`, and the median CPU ms beside it."""
        return [
            (f"{name}, kernel", statistics.median(self.walls), "ms", budget),
            (f"{name}, kernel CPU", statistics.median(self.cpus), "ms", None),
        ]


def measure(
    action: Callable[[int], None], repeats: int, clock: Clock | None = None
) -> tuple[float, float, float]:
    """Median kernel ms, max KB and max message count over `repeats` calls of action(i)
    (each call timed into `clock` too, when given)."""
    clock = Clock() if clock is None else clock
    sizes, counts = [], []
    for i in range(repeats):
        RECORDER.reset()
        with clock:
            action(i)
        sizes.append(RECORDER.bytes / 1e3)
        counts.append(RECORDER.messages)
    return statistics.median(clock.walls), max(sizes), max(counts)


def widget_figures(
    explorer: sw.Explorer, selection_rect: tuple[Any, Any], repeats: int = 10
) -> list[Figure]:
    """Build the dashboard on `explorer` and time a unit focus change and a brush release."""
    figures: list[Figure] = []
    with recording_comms(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # bqscales, at first import
        RECORDER.reset()
        start = time.perf_counter()
        dashboard = explorer.dashboard()
        build_ms = (time.perf_counter() - start) * 1e3
        figures.append(("dashboard build (first display), kernel", build_ms, "ms", None))
        figures.append(("dashboard build (first display), sent", RECORDER.bytes / 1e6, "MB", None))
        selection = explorer.selection

        # A focus change, as the user makes it (typing a unit in the inspector's picker),
        # each time to a unit not summarised before, so no cached answer helps.
        alive = np.flatnonzero(explorer.codes.counts)
        fresh = iter(np.random.default_rng(0).permutation(alive).tolist())

        def focus(_i: int) -> None:
            unit = next(fresh)
            from_browser_update(dashboard.inspector.picker, value=unit)
            assert selection.unit == unit

        for mode in ("label", "activation"):
            if mode not in [value for _, value in dashboard.brush.color_by.options]:
                continue
            dashboard.brush.color_by.value = mode
            clock = Clock()
            _, kb, count = measure(focus, repeats, clock)
            name = f"unit focus change (PCA coloured by {mode})"
            figures.extend(clock.figures(name, 100.0))
            figures.append((f"{name}, sent ({count:.0f} msgs)", kb / 1e3, "MB", 1.0))

        # A brush release: drag (not timed: the browser does it), then release.
        (x0, x1), (y0, y1) = selection_rect
        brush = dashboard.brush.brush
        rects = [((x0, x1), (y0, y1)), ((x0, 0.9 * x1 + 0.1 * x0), (y0, y1))]
        sizes: list[int] = []

        def release(i: int) -> None:
            x_range, y_range = rects[i % 2]
            if brush is None:  # WebGL (jupyter-scatter): the rectangle arrives as an outline
                (a, b), (c, d) = x_range, y_range
                deliver = browser_outline(dashboard.brush, [[a, c], [b, c], [b, d], [a, d]])
                RECORDER.reset()
                with timings:
                    deliver()
                sizes.append(len(selection.samples))
                return
            from_browser_update(brush, brushing=True)
            from_browser_update(brush, selected_x=list(x_range), selected_y=list(y_range))
            RECORDER.reset()  # only the release counts
            with timings:
                from_browser_update(brush, brushing=False)
            sizes.append(len(selection.samples))

        timings = Clock()
        _, kb, count = measure(release, repeats)
        name = f"brush release (~{int(np.median(sizes)):,} samples)"
        figures.extend(timings.figures(name, 200.0))
        figures.append((f"{name}, sent ({count:.0f} msgs)", kb / 1e3, "MB", 2.0))

        # A lasso release (the default tool in JupyterLab): the browser reports the points it
        # enclosed (bqplot: the lasso target's `selected`; WebGL: jupyter-scatter's
        # `selection`, a uint32 array).
        view = dashboard.brush
        view.select_with.value = "lasso"
        lasso_sizes: list[int] = []

        def lasso(i: int) -> None:
            if explorer.n_samples <= GL_THRESHOLD:
                marked = explorer.samples_in_rect(*rects[i % 2])
                deliver = lambda: from_browser_update(view.lasso_target, selected=marked.tolist())  # noqa: E731
            else:  # a freeform loop of 120 vertices around the rectangle's middle
                (a, b), (c, d) = rects[i % 2]
                turn = np.linspace(0, 2 * np.pi, 120, endpoint=False)
                wobble = 1 + 0.1 * np.sin(5 * turn)
                outline = np.c_[
                    (a + b) / 2 + (b - a) / 2 * wobble * np.cos(turn),
                    (c + d) / 2 + (d - c) / 2 * wobble * np.sin(turn),
                ]
                deliver = browser_outline(view, outline)
            RECORDER.reset()
            with lasso_times:
                deliver()
            lasso_sizes.append(len(selection.samples))

        lasso_times = Clock()
        _, kb, count = measure(lasso, repeats)
        name = f"lasso release (~{int(np.median(lasso_sizes)):,} samples)"
        figures.extend(lasso_times.figures(name, 200.0))
        figures.append((f"{name}, sent ({count:.0f} msgs)", kb / 1e3, "MB", 2.0))
        dashboard.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    # explorer_latency builds the same explorer; reuse its helpers rather than copy them.
    from explorer_latency import rect_around, train_briefly

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--selection", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="N=20,000, 5 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.selection, args.repeats = 20_000, 2_000, 5
    ds = sw.datasets.superposition(n=args.n, n_features=512, dim=256, seed=0)
    sae = train_briefly(ds, n_units=2048, k=32, steps=30, batch=4096)
    explorer = sw.Explorer(sae, ds)
    coords = explorer.projection().coords
    rect = rect_around(coords, coords[0], args.selection)
    figures = widget_figures(explorer, rect, args.repeats)
    print(f"\n{'figure':<64} {'value':>9} {'budget':>9}  verdict")
    ok = True
    for name, value, unit, budget in figures:
        passed = budget is None or value <= budget
        ok &= passed
        verdict = "" if budget is None else ("PASS" if passed else "FAIL")
        limit = "" if budget is None else f"{budget:g} {unit}"
        print(f"{name:<64} {value:>6.3g} {unit:<2} {limit:>9}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
