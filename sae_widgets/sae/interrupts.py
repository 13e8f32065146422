"""Ctrl-C during training: a request to stop at the next step, never a half-done update.

`SigintGuard` replaces Python's SIGINT handler for the length of a `fit`: a Ctrl-C (or many,
held down) only records the request, and the training loop stops at the next step boundary,
with the model folded back to user space and in eval mode. No KeyboardInterrupt can land in
the middle of initialisation, of an optimiser step or of the clean-up.

Escape hatch: if a step does not end within `ESCAPE_AFTER_S` seconds of the first Ctrl-C (a
callback blocked on something), a further Ctrl-C raises KeyboardInterrupt inside the loop,
where the trainer's clean-up still runs with signals deferred.

The guard only acts in the main thread (Python delivers signals there only) and only over
Python-level handlers: a SIGINT that is ignored or left to the OS stays so. A custom handler
is restored afterwards and called once if a Ctrl-C was absorbed.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

ESCAPE_AFTER_S = 5.0


class SigintGuard:
    """Context manager that turns SIGINT into a `pending` flag (see the module docstring)."""

    _active: SigintGuard | None = None  # the outermost guard in force (fit inside a callback)

    def __init__(self) -> None:
        self.pending = False
        self.first_at: float | None = None
        self.escapable = False  # True only while the loop runs a step or a callback
        self._previous: Any = None
        self._installed = False
        self._outer: SigintGuard | None = None

    def __enter__(self) -> SigintGuard:
        outer = SigintGuard._active
        if outer is not None:  # nested fit: share the outer guard's flag
            self._outer = outer
            return self
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIG_IGN / SIG_DFL / set from C: leave it alone
            return self
        self._previous = previous
        signal.signal(signal.SIGINT, self._handle)
        self._installed = True
        SigintGuard._active = self
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if not self.pending:
            self.pending, self.first_at = True, now
            return
        if self.escapable and self.first_at is not None and now - self.first_at > ESCAPE_AFTER_S:
            raise KeyboardInterrupt

    @property
    def interrupted(self) -> bool:
        """Whether a Ctrl-C asked training to stop."""
        return self._outer.interrupted if self._outer is not None else self.pending

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._installed:
            return
        self.escapable = False
        signal.signal(signal.SIGINT, self._previous)
        SigintGuard._active = None
        if self.pending and self._previous is not signal.default_int_handler:
            self._previous(signal.SIGINT, None)  # a user's own handler still hears of it


__all__ = ["ESCAPE_AFTER_S", "SigintGuard"]
