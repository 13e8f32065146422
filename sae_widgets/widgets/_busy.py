"""`Busy`: the "working..." note a view shows while it recomputes for longer than ~200 ms."""

from __future__ import annotations

import threading

import ipywidgets as widgets

__all__ = ["Busy"]


class Busy:
    """A "working..." note shown while a view recomputes (``with busy:``), only when that takes
    longer than `delay_s`: quick updates never flash it.

    A timer thread shows the note if the work is still running after `delay_s`; its message
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
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Busy:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._timer = threading.Timer(self.delay_s, self._show)
                self._timer.daemon = True
                self._timer.start()
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
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._shown:
                self._shown = False
                self.widget.value = ""
