"""TrainingMonitor: a progress bar and live loss / FVU / L0 / dead-fraction curves.

It is a fit callback (the SAE calls it with each logged step's metrics dict), so it follows a
plain blocking ``sae.fit(X, callbacks=[monitor])``; ``monitor.fit(X)`` instead trains in a
background thread so the Stop button stays clickable. Browser updates are throttled: metrics
are buffered on every call and drawn at most once per ``min_interval`` seconds; a throttled
update is drawn anyway ``min_interval`` seconds later (a timer), so the last steps of a run
always reach the screen, even when nothing tells the monitor that training ended.

The throttle adapts: when a redraw takes the kernel longer than MAX_DRAW_SHARE of ``min_interval``
(a loaded machine; the browser draws later, unseen here), the next redraw waits long enough that
drawing stays within that share of the wall time (unless ``min_interval`` is 0: all are drawn).
The curves redraw no more often than the status line (``curve_interval``, at least
CURVE_INTERVAL seconds and CURVE_SHARE of the run so far); both default to every 2 s. A redraw
costs the browser far more than the kernel, CPU that a fit on the same machine loses; most of
it went to re-rendering axes, so domains change in steps, one message a scale, and axes carry
few ticks. ``benchmarks/monitor_browser.py`` measures what a live monitor costs a fit in a
real browser, ``benchmarks/monitor_overhead.py`` without one.
The status line shows steps/s (over the run so far) and, once the total is known, an ETA.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Figure, LinearScale, Lines

from sae_widgets.data.checks import check_bool, check_float
from sae_widgets.sae.inputs import callback_list
from sae_widgets.sae.training import planned_steps
from sae_widgets.widgets._monitor_curves import (
    MAX_POINTS,
    MIN_DEAD_SPAN,
    decimate,
    hold_domains,
    reset_domains,
    x_end,
)
from sae_widgets.widgets._monitor_inputs import check_seconds, is_number, step_of
from sae_widgets.widgets._monitor_status import outcome, status_line
from sae_widgets.widgets._view import TITLE_ROOM, TITLE_STYLE, axis
from sae_widgets.wording import counted

__all__ = ["MAX_POINTS", "MIN_DEAD_SPAN", "TrainingMonitor"]

# metric key -> (axis label, line colour)
METRICS: dict[str, tuple[str, str]] = {
    "loss": ("loss", "#1f77b4"),
    "fvu": ("FVU", "#d62728"),
    "l0": ("L0 (active units per sample)", "#2ca02c"),
    "dead_fraction": ("dead fraction", "#7f7f7f"),
}
Y_FORMATS = {"dead_fraction": ".1~%"}
# About this many ticks per axis (d3 picks round values near it): each is SVG text laid out
# again at every axis re-render; d3's ~10 a side crowded a 220 px plot and cost more CPU.
X_TICKS, Y_TICKS = 5, 4
# Redraws may take at most this share of the wall time (the throttle widens beyond it).
MAX_DRAW_SHARE = 0.05
# The curves redraw at most every CURVE_INTERVAL seconds, and at most every CURVE_SHARE of the
# run's time so far (a long run gets about 1 / CURVE_SHARE curve redraws in all).
CURVE_INTERVAL = 2.0
CURVE_SHARE = 0.02


class TrainingMonitor(widgets.VBox):
    """Live view of an SAE's training.

    Parameters
    ----------
    sae:
        The `sae_widgets.SAE` estimator to watch (and, with `fit`, to train).
    min_interval:
        Seconds between two redraws of the status line (step, rate, ETA; each costs a
        browser ~20-50 ms of CPU); 0 redraws everything on every logged step.
    curve_interval:
        Seconds between two redraws of the curves and the progress bar; None:
        CURVE_INTERVAL (at least min_interval), widening to CURVE_SHARE of the run so far.
    trailing:
        Draw a throttled update `min_interval` seconds later (a timer thread). Tests that
        count redraws with a fake `clock` turn it off.
    clock:
        Monotonic time source (seconds); tests pass a fake one to make throttling exact.

    Attributes
    ----------
    figure:
        The main bqplot Figure (loss); `figures` maps each metric key to its Figure.
    progress, stop_button, status:
        The progress bar, the Stop button and the one-line text summary.
    history:
        Every logged metrics dict of the current run, undecimated.
    """

    def __init__(
        self,
        sae: Any,
        *,
        min_interval: float = 2.0,
        curve_interval: float | None = None,
        trailing: bool = True,
        clock: Callable[[], float] = time.monotonic,
        **box_kwargs: Any,
    ) -> None:
        if not hasattr(sae, "fit"):
            raise TypeError(f"sae: expected an sae_widgets.SAE estimator, got {type(sae).__name__}")
        min_interval = check_seconds(min_interval, "min_interval")
        if curve_interval is not None:
            curve_interval = check_seconds(curve_interval, "curve_interval")
        trailing = check_bool(trailing, "trailing")
        if not callable(clock):
            raise TypeError(f"clock must be a function returning seconds; got {clock!r}")
        self.sae = sae
        self.min_interval = float(min_interval)
        self.curve_interval = None if curve_interval is None else float(curve_interval)
        self.trailing = trailing
        self._clock = clock
        self._draw_lock = threading.Lock()  # the training thread and the timer both draw
        self._timer: threading.Timer | None = None  # the status line's trailing redraw
        self._curve_timer: threading.Timer | None = None  # the curves' trailing redraw
        self.history: list[dict[str, float]] = []
        self.total_steps: int | None = None
        self.n_draws = 0  # how many times the view was redrawn (throttling is observable)
        self.n_curve_draws = 0  # of those, how many redrew the curves
        self._last_draw = self._last_curves = -math.inf
        self.interval = self.min_interval  # the adaptive throttle (>= min_interval)
        self._started_at = clock()
        self._step_times: list[tuple[int, float]] = []  # (first, latest) (step, time) seen
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="step")
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="danger", disabled=True
        )
        self.stop_button.on_click(lambda _button: self.stop())
        self.status = widgets.HTML("not started")
        self.lines: dict[str, Lines] = {}
        self.figures: dict[str, Figure] = {}
        for key, (label, colour) in METRICS.items():
            x_scale = LinearScale()
            y_scale = (
                LinearScale(min=0.0, max=MIN_DEAD_SPAN) if key == "dead_fraction" else LinearScale()
            )
            y_format = Y_FORMATS.get(key, ".3~g")
            line = Lines(
                x=np.zeros(0, np.float32),
                y=np.zeros(0, np.float32),
                scales={"x": x_scale, "y": y_scale},
                colors=[colour],
                stroke_width=1.5,
            )
            self.lines[key] = line
            self.figures[key] = Figure(
                marks=[line],
                axes=[
                    axis(x_scale, "step", tick_format=",d", num_ticks=X_TICKS),
                    axis(y_scale, label, vertical=True, tick_format=y_format, num_ticks=Y_TICKS),
                ],
                title=label,
                title_style=dict(TITLE_STYLE),
                fig_margin={"top": TITLE_ROOM, "bottom": 40, "left": 60, "right": 10},
                layout=widgets.Layout(width="100%", height="220px"),
                animation_duration=0,
            )
        self.figure = self.figures["loss"]
        grid = widgets.GridBox(
            list(self.figures.values()),
            layout=widgets.Layout(grid_template_columns="repeat(2, 1fr)", width="100%"),
        )
        header = widgets.HBox([self.progress, self.stop_button, self.status])
        window = getattr(sae, "dead_window", None)
        window_text = f"the last {counted(window, 'training sample')}" if window else "a while"
        # Two definitions of "dead" users meet side by side: say which one this is.
        self.dead_note = widgets.HTML(
            '<span style="font-size:12px;opacity:0.75">dead fraction: units that have not '
            f"fired in {window_text}. <code>sw.metrics.evaluate</code> counts units that fire "
            "on no sample of the data it is given with the final weights, so right after "
            "training the two can differ (a unit that fired earlier in the window, under "
            "older weights, may fire on nothing now).</span>"
        )
        self.dead_note.add_class("sw-dead-note")
        super().__init__([header, grid, self.dead_note], **box_kwargs)
        self.add_class("sw-monitor")
        self.figure.add_class("sw-figure")  # the view's main figure, for tests and styling
        self.refresh()  # an SAE trained before the monitor was made: its run is shown

    def refresh(self) -> None:
        """Show the SAE's own record of its training (`sae.history_`): a run made without
        this monitor attached (before it existed, or a later fit without it as a callback).
        Runs the monitor watches itself are drawn as they go; during one this does nothing."""
        if self.running:
            return
        logged = getattr(self.sae, "history_", None)
        entries = [
            {k: float(v) for k, v in entry.items() if is_number(v)}
            for entry in (logged if isinstance(logged, list) else [])
            if isinstance(entry, Mapping) and is_number(entry.get("step"))
        ]
        if not entries:
            return
        self._start_run(None)
        self.history = entries
        last = int(entries[-1]["step"])
        planned = getattr(self.sae, "fit_steps_", None)  # the last fit's plan (None: partial)
        self.total_steps = int(planned) if is_number(planned) and last <= planned else None
        self.draw()
        self.status.value = f"{self._outcome(last, getattr(self.sae, 'stop_reason_', None))}"

    # -- the fit-callback contract -------------------------------------------------------------

    def __call__(self, metrics: Mapping[str, Any]) -> bool:
        """Record one logged step; redraw if `min_interval` has passed. False asks to stop."""
        step = step_of(metrics)
        if self.history and step <= self.history[-1]["step"]:
            self._start_run(self.total_steps)  # a new fit began with this callback attached
        self.history.append({k: float(v) for k, v in metrics.items() if is_number(v)})
        now = self._clock()
        self._step_times = [*self._step_times[:1], (step, now)]
        planned = getattr(self.sae, "fit_steps_", None)  # the steps the SAE's fit plans
        if is_number(planned) and step <= planned:
            self.total_steps = int(planned)
        elif self.total_steps is not None and step > self.total_steps:
            self.total_steps = None  # training went on past that plan (a partial_fit)
        finished = self.total_steps is not None and step >= self.total_steps
        if finished:
            self.draw()
        elif now - self._last_draw >= self.interval:
            self._tick()
        elif self.trailing:
            with self._draw_lock:
                if self._timer is None:
                    self._timer = _daemon_timer(self.interval, self._tick)
        return not self._stop_requested.is_set()

    # -- background training -------------------------------------------------------------------

    def fit(self, X: Any, **fit_kwargs: Any) -> threading.Thread:
        """Train `sae` on X in a background thread; returns the thread (see also `join`)."""
        if self.running:
            raise RuntimeError("fit: this monitor is already training; call stop() or join()")
        # what SAE.fit takes: None, one callable or several (checked here, before the thread)
        callbacks = [*callback_list(fit_kwargs.pop("callbacks", None)), self]
        try:
            n_samples: int | None = len(X)
        except TypeError:  # no length (a 0-d array): fit itself says what X must be
            n_samples = None
        self._start_run(planned_steps(self.sae, n_samples) if n_samples else None)
        fit_kwargs.setdefault("progress", False)  # the progress bar is ours

        def train() -> None:
            try:
                self.sae.fit(X, callbacks=callbacks, **fit_kwargs)
            except BaseException as error:  # reported by join() and in the status line
                self._error = error
            finally:
                self._finish()

        self.stop_button.disabled = False
        self._thread = threading.Thread(target=train, name="sae-training", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the training to end after the current step (the SAE keeps what it learned)."""
        self._stop_requested.set()
        self.stop_button.disabled = True

    def join(self, timeout: float | None = None) -> Any:
        """Wait for a background `fit` to end; returns the SAE, or raises what training raised."""
        if timeout is not None:
            timeout = check_float(timeout, "timeout", 0.0)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"join: training still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self.sae

    @property
    def running(self) -> bool:
        """Whether a background `fit` is in progress."""
        return self._thread is not None and self._thread.is_alive()

    # -- drawing -------------------------------------------------------------------------------

    def draw(self, curves: bool = True) -> None:
        """Push the buffered metrics to the browser now (one batch of trait updates): the
        status line, and the curves and progress bar unless `curves` is False."""
        with self._draw_lock:
            timers = [self._timer] + ([self._curve_timer] if curves else [])
            for timer in timers:
                if timer is not None:
                    timer.cancel()
            self._timer = None
            if curves:
                self._curve_timer = None
            started = self._last_draw = self._clock()
            self.n_draws += 1
            if curves:
                self._last_curves = started
                self.n_curve_draws += 1
            history = list(self.history)  # a snapshot: training may append meanwhile
            if not history:
                return
            self._draw(history, curves)
            if self.min_interval > 0:  # 0 asks for every update, whatever it costs
                cost = self._clock() - started
                self.interval = max(self.min_interval, cost / MAX_DRAW_SHARE)

    def _tick(self) -> None:
        """A throttled redraw: the curves too when their interval has passed; otherwise a
        timer redraws them when it will have (so the last steps always reach the curves)."""
        now = self._clock()
        due = self._last_curves + self._curve_wait(now)
        self.draw(curves=now >= due)
        if now < due and self.trailing:
            with self._draw_lock:
                if self._curve_timer is None:
                    self._curve_timer = _daemon_timer(due - now, self.draw)

    def _curve_wait(self, now: float) -> float:
        """Seconds between two curve redraws at time `now`."""
        if self.curve_interval is None and self.min_interval == 0:
            return 0.0  # every update drawn, as asked
        base = self.curve_interval
        if base is None:
            base = max(CURVE_INTERVAL, self.min_interval)
        return max(base, self.interval, CURVE_SHARE * (now - self._started_at))

    def _draw(self, history: list[dict[str, float]], curves: bool = True) -> None:
        """Set the lines (if `curves`), progress bar and status from a snapshot of the
        history."""
        if curves and len(history) > 1:  # a one-point line has no extent to draw
            steps = decimate([h["step"] for h in history])
            x_max = x_end(self.total_steps, int(steps[-1]))
            for key, line in self.lines.items():
                values = decimate([h.get(key, math.nan) for h in history])
                hold_domains(line, x_max, values, key == "dead_fraction")
                with line.hold_sync():
                    line.x, line.y = steps, values
        latest = history[-1]
        if curves or self.progress.value == 0:  # the bar moves with the curves: each
            with self.progress.hold_sync():  # change costs a browser a ~10 ms repaint
                self.progress.max = max(self.total_steps or 0, int(latest["step"]), 1)
                self.progress.value = int(latest["step"])
        self.status.value = self._summary(latest)  # step i / n, rate, ETA: every redraw

    def _summary(self, latest: Mapping[str, float]) -> str:
        elapsed = self._clock() - self._started_at
        return status_line(latest, self.total_steps, self.steps_per_s, elapsed)

    @property
    def steps_per_s(self) -> float | None:
        """Training steps per second between the first and the latest logged step of the run
        (None until two logged steps are apart in time)."""
        if len(self._step_times) < 2:
            return None
        (first_step, first_time), (step, now) = self._step_times[0], self._step_times[-1]
        if now <= first_time or step <= first_step:
            return None
        return (step - first_step) / (now - first_time)

    def _start_run(self, total_steps: int | None) -> None:
        reset_domains(self.lines)
        self.history = []
        self.total_steps = total_steps
        self._error = None
        self._stop_requested.clear()
        self._started_at = self._clock()
        self._last_draw = self._last_curves = -math.inf
        self._step_times = []

    def _finish(self) -> None:
        self.draw()
        self.stop_button.disabled = True
        n = int(self.history[-1]["step"]) if self.history else 0
        stopped = "callback" if self._stop_requested.is_set() else None
        ended = self._outcome(n, stopped)
        self.status.value = f"{ended} · {self._clock() - self._started_at:.1f} s"

    def _outcome(self, n: int, stop_reason: Any) -> str:
        return outcome(n, stop_reason, self._error)


def _daemon_timer(seconds: float, function: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, function)
    timer.daemon = True  # never keeps the kernel from exiting
    timer.start()
    return timer
