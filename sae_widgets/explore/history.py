"""Undo and redo for the selected samples, and the set operations of a selection tool.

`SelectionHistory` watches one `Selection`'s ``samples`` and remembers earlier values, so a
view (or a user in Python) can step back after a lasso that went wrong. `combine` is the pure
rule behind "add to" / "subtract from" the selection. Neither knows any widget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.checks import sorted_unique
from sae_widgets.explore.selection import Selection

__all__ = ["MODES", "SelectionHistory", "combine"]

MODES = ("replace", "add", "subtract")
"""How a newly drawn set of samples meets the current selection."""


def combine(current: Any, new: Any, mode: str = "replace") -> NDArray[np.int64]:
    """The selection after drawing `new` over `current`: `new` itself ("replace"), their
    union ("add") or `current` without `new` ("subtract"); sorted, distinct."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    fresh = sorted_unique(np.asarray(new, dtype=np.int64).reshape(-1))
    if mode == "replace":
        return fresh
    old = sorted_unique(np.asarray(current, dtype=np.int64).reshape(-1))
    if mode == "add":
        return sorted_unique(np.concatenate([old, fresh]))
    if len(fresh) == 0:
        return old
    at = np.minimum(np.searchsorted(fresh, old), len(fresh) - 1)
    return old[fresh[at] != old]


class SelectionHistory:
    """The earlier values of ``selection.samples``, for `undo` and `redo`.

    Parameters
    ----------
    selection:
        The Selection whose ``samples`` are recorded (every change, from any view or Python).
    limit:
        At most this many earlier selections are kept (the oldest are forgotten).
    """

    def __init__(self, selection: Selection, limit: int = 50) -> None:
        if not isinstance(selection, Selection):
            raise TypeError(f"selection: expected a Selection, got {type(selection).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit: expected a positive int, got {limit!r}")
        self.selection = selection
        self.limit = limit
        self._undo: list[list[int]] = []
        self._redo: list[list[int]] = []
        self._replaying = False
        selection.observe(self._record, "samples")

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _record(self, change: dict[str, Any]) -> None:
        old = change["old"]
        if self._replaying or not isinstance(old, list) or old == change["new"]:
            return  # our own replay, the first assignment (old is Undefined), or no change
        self._undo.append(list(old))
        del self._undo[: -self.limit]
        self._redo.clear()

    def _replay(self, source: list[list[int]], target: list[list[int]]) -> bool:
        if not source:
            return False
        target.append(list(self.selection.samples))
        self._replaying = True
        try:
            self.selection.samples = source.pop()
        finally:
            self._replaying = False
        return True

    def undo(self) -> bool:
        """Go back to the previous selection; False (and nothing changes) when there is none."""
        return self._replay(self._undo, self._redo)

    def redo(self) -> bool:
        """Re-apply the selection the last `undo` left; False when there is none."""
        return self._replay(self._redo, self._undo)

    def close(self) -> None:
        """Stop recording."""
        self.selection.unobserve(self._record, "samples")
