"""`Busy`: the "working..." note a view shows while it recomputes for longer than ~200 ms."""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

__all__ = ["Busy"]


class _Watcher:
    """One daemon thread for every `Busy` of the process: it shows the notes whose work
    outlasts its delay. (A timer thread per ``with`` block cost a thread start each time:
    ~2 ms per view on a unit change, 7 views, more on a loaded machine.)"""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[Busy, float] = {}  # note -> when to show it (time.monotonic())
        self._wake_at = float("inf")  # when the thread wakes next, unless notified
        self._thread: threading.Thread | None = None

    def add(self, busy: Busy, delay_s: float) -> None:
        with self._cond:
            deadline = time.monotonic() + delay_s
            self._due[busy] = deadline
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sw-busy", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:  # else it wakes in time, and looks again
                self._cond.notify()

    def remove(self, busy: Busy) -> None:
        with self._cond:
            self._due.pop(busy, None)  # if the thread wakes for it, it finds nothing due

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [busy for busy, at in self._due.items() if at <= now]
                for busy in due:
                    del self._due[busy]
                if not due:
                    self._wake_at = min(self._due.values(), default=float("inf"))
                    self._cond.wait(None if self._due == {} else self._wake_at - now)
                    self._wake_at = float("-inf")  # awake: no notify needed
                    continue
            for busy in due:  # outside the condition: _show takes the note's own lock
                busy._show()


_WATCHER = _Watcher()


class Busy:
    """A "working..." note shown while a view recomputes (``with busy:``), only when that takes
    longer than `delay_s`: quick updates never flash it.

    A watcher thread shows the note if the work is still running after `delay_s`; its message
    reaches the browser at once, while the kernel's main thread keeps computing. Nested and
    repeated ``with`` blocks share one note. `shown_count` counts how often it was shown.
    """

    TEXT = '<span style="color:var(--jp-ui-font-color2, #888)"><i>working...</i></span>'

    def __init__(self, delay_s: float = 0.2) -> None:
        if not delay_s >= 0:
            raise ValueError(f"delay_s: expected a number of seconds >= 0, got {delay_s!r}")
        self.delay_s = float(delay_s)
        self.widget = widgets.HTML("", layout=widgets.Layout(min_height="18px"))
        self.widget.add_class("sw-busy")
        self.shown_count = 0
        self._lock = threading.Lock()
        self._depth = 0
        self._shown = False

    def __enter__(self) -> Busy:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                _WATCHER.add(self, self.delay_s)
        return self

    def _show(self) -> None:
        with self._lock:
            if self._depth > 0 and not self._shown:
                self._shown = True
                self.shown_count += 1
                self.widget.value = self.TEXT

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return
            _WATCHER.remove(self)
            if self._shown:
                self._shown = False
                self.widget.value = ""
