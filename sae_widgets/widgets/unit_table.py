"""UnitTable: every unit in one searchable, sortable list; picking a row focuses its unit.

Sort by how often a unit fires, its maximum activation, its label selectivity, or its
enrichment in the current selection (re-ranked when the selection changes); search by unit
number or by the name of the label it fires on most; previous / next step the focus through
the sorted, filtered order.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
from traitlets import Tuple, observe, validate

from sae_widgets.analysis.unit_stats import UnitStats, unit_stats
from sae_widgets.data.checks import is_int
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._view import (
    ExplorerView,
    check_choice,
    check_count,
    toggle_buttons,
    wrapping_row,
)
from sae_widgets.wording import counted, shortened_apart

__all__ = ["LABEL_ROOM", "SORT_KEYS", "UnitTable"]

SORT_KEYS = {
    "frequency": "how often the unit fires, most frequent first",
    "max activation": "its largest activation, strongest first",
    "selectivity": "how much it fires on one label only (1) rather than all (0)",
    "enrichment": "how specifically it fires on the selected samples",
}
_HEADER = "  unit   freq %    max    sel  enrich  label"
LABEL_ROOM = 32
"""Characters of a top label a row shows: the 430 px table cuts a longer one mid-letter,
so it is shortened to this with "…" and the table's tooltip names the focused unit's whole
label."""


class _Rows(widgets.Select):
    """A Select for many (label, unit) rows: a selection re-ranks all 4,096 of them, and
    ipywidgets' per-option checks (each label a Unicode trait, each pair inspected and
    re-built twice) were most of that redraw's kernel time. Here the labels are checked as one
    tuple and the pairs split in one `zip`. The browser side is ipywidgets' own Select."""

    _options_labels = Tuple(read_only=True, help="The labels for the options.").tag(sync=True)

    @validate("options")
    def _validate_options(self, proposal: Any) -> Any:
        rows = tuple(proposal.value)
        if not all(type(row) is tuple and len(row) == 2 and type(row[0]) is str for row in rows):
            return super()._validate_options(proposal)  # ipywidgets' general forms
        self._options_full = rows
        return rows

    @observe("options")
    def _propagate_options(self, change: Any) -> None:
        # ipywidgets' own, with the labels and values split by one zip
        labels, values = zip(*self._options_full) if self._options_full else ((), ())
        self.set_trait("_options_labels", labels)
        self._options_values = values
        if self.index is None or self._initializing_traits_ is True:
            return
        if not labels:
            self.index = None
        elif self.index == 0:
            self._notify_trait("index", 0, 0)  # value and label follow the new first row
        else:
            self.index = 0


class UnitTable(ExplorerView):
    """All units as rows; the focused unit is the highlighted row.

    Parameters
    ----------
    ex:
        The Explorer whose Selection this view follows and sets.
    rows:
        Rows visible at once (the list scrolls).
    sort_by:
        One of `SORT_KEYS`.

    Attributes
    ----------
    search, sort_by:
        The search Text and the sort ToggleButtons.
    table:
        A Select whose options are (row text, unit) in the shown order.
    order:
        The units shown, in order (after search and sort).
    previous_button, next_button:
        Focus the unit before / after the focused one in `order`.
    """

    def __init__(self, ex: Explorer, *, rows: int = 12, sort_by: str = "frequency") -> None:
        rows = check_count(rows, "rows", getattr(ex, "n_units", None))
        sort_by = check_choice(sort_by, "sort_by", list(SORT_KEYS))
        super().__init__(ex)
        self._read_stats()
        self._syncing = False
        self.search = widgets.Text(
            placeholder="unit number or label",
            description="search",
            continuous_update=True,
            layout=widgets.Layout(width="240px"),
        )
        self.search.observe(lambda _change: self._draw(), "value")
        self.sort_by = toggle_buttons(
            [(key, key) for key in SORT_KEYS], sort_by, tooltips=list(SORT_KEYS.values())
        )
        self.sort_by.observe(self._sort_changed, "value")
        self.table = _Rows(options=[], rows=rows, layout=widgets.Layout(width="430px"))
        self.table.add_class("sw-unit-rows")
        self.table.observe(self._picked, "value")
        self.previous_button = widgets.Button(description="previous", icon="arrow-up")
        self.next_button = widgets.Button(description="next", icon="arrow-down")
        self.previous_button.on_click(lambda _b: self.step(-1))
        self.next_button.on_click(lambda _b: self.step(1))
        self.caption = widgets.HTML()
        header = widgets.HTML(f'<pre style="margin:0;font-size:12px">{html.escape(_HEADER)}</pre>')
        self.children = [
            # Wraps on a narrow screen, as the sort buttons do (a plain HBox overflowed).
            wrapping_row([self.search, self.previous_button, self.next_button]),
            self.sort_by,
            header,
            self.table,
            self.caption,
        ]
        self.add_class("sw-unit-table")
        self.follow(lambda _change: self._show_focus(), "unit")
        self.follow(self._samples_changed, "samples")
        self._rank_enrichment()
        self._draw()

    # -- what is shown -------------------------------------------------------------------------

    def _read_stats(self) -> None:
        """Per-unit statistics of the Explorer's codes (and what is formatted from them)."""
        self.stats: UnitStats = unit_stats(self.ex.codes, self.ex.dataset.labels)
        self._enrichment = np.zeros(self.ex.n_units)
        self._parts: tuple[np.ndarray, np.ndarray] | None = None
        self.order = np.arange(self.ex.n_units)

    def redraw(self) -> None:
        """Every row again from the refreshed Explorer's codes."""
        self._read_stats()
        self._rank_enrichment()
        self._draw()

    def _rank_enrichment(self) -> None:
        samples = self.selection.samples
        self._enrichment = np.zeros(self.ex.n_units)
        if len(samples):
            found = self.ex.enrichment(samples, top=None)
            self._enrichment[found.units] = found.score

    def _label_name(self, label: int) -> str:
        if label < 0:
            return ""
        names = self.ex.dataset.label_names
        return str(names[label]) if names else str(label)

    def _matches(self, text: str) -> np.ndarray:
        units = np.arange(self.ex.n_units)
        text = text.strip().lower()
        if not text:
            return units
        if text.isascii() and text.isdigit():  # not "٣" or "²": label names, for all isdigit
            return units[[str(u).startswith(text) for u in units]]
        names = [self._label_name(int(t)).lower() for t in self.stats.top_label]
        return units[[text in name for name in names]]

    @property
    def _row_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """Each row's text before and after its enrichment (the only column a new selection
        changes), formatted once, as object arrays a new order indexes in one step."""
        if self._parts is None:
            s = self.stats
            names = self.ex.dataset.label_names
            room = shortened_apart([str(n) for n in names], LABEL_ROOM) if names else []
            before, after = [], []
            for unit in range(self.ex.n_units):
                sel = s.selectivity[unit]
                selectivity = "   -" if np.isnan(sel) else f"{sel:.2f}"
                before.append(
                    f"{unit:>6} {100 * s.frequency[unit]:>7.2f} {s.max_activation[unit]:>6.3g} "
                    f"{selectivity:>6} "
                )
                top = int(s.top_label[unit])
                after.append(f"  {room[top] if room and top >= 0 else self._label_name(top)}")
            self._parts = (np.array(before, dtype=object), np.array(after, dtype=object))
        return self._parts

    def _sort_changed(self, change: dict[str, Any]) -> None:
        if change["new"] is None:  # ToggleButtons allow no selection: keep the last order
            self.sort_by.value = change["old"]
            return
        self._draw()

    def _draw(self) -> None:
        units = self._matches(self.search.value)
        key = {
            "frequency": -self.stats.frequency,
            "max activation": -self.stats.max_activation.astype(np.float64),
            "selectivity": -np.nan_to_num(self.stats.selectivity, nan=-1.0),
            "enrichment": -self._enrichment,
        }[self.sort_by.value][units]
        self.order = units[np.argsort(key, kind="stable")]
        self._syncing = True
        try:
            with self.table.hold_sync():
                before, after = self._row_parts
                units = self.order.tolist()
                self.table.options = [
                    (f"{b}{score:>7.3f}{a}", u)
                    for b, score, a, u in zip(
                        before[self.order].tolist(),
                        self._enrichment[self.order].tolist(),
                        after[self.order].tolist(),
                        units,
                    )
                ]
                self._show_focus()
        finally:
            self._syncing = False
        n_selected = len(self.selection.samples)
        note = (
            f"enrichment in the {counted(n_selected, 'selected sample')}"
            if n_selected
            else "enrichment: select samples to rank by it"
        )
        self.caption.value = (
            f"{len(self.order):,} of {counted(self.ex.n_units, 'unit')} shown · {note}"
        )

    def _show_focus(self) -> None:
        unit = self.selection.unit
        self._syncing = True
        try:
            self.table.value = unit if unit is not None and unit in self.order else None
        finally:
            self._syncing = False
        label = self._label_name(int(self.stats.top_label[unit])) if unit is not None else ""
        # the browser's title attribute: hovering the table reads the whole (maybe cut) label
        self.table.tooltip = f"unit {unit}: mostly label {label}" if label else None

    def _samples_changed(self, _change: Any) -> None:
        self._rank_enrichment()
        self._draw()

    # -- view -> Selection ---------------------------------------------------------------------

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] is not None:
            self.focus_unit(int(change["new"]))

    def step(self, offset: int) -> None:
        """Focus the unit `offset` rows away from the focused one (the first row if none)."""
        if not is_int(offset):
            raise TypeError(f"offset must be an int (rows to move); got {offset!r}")
        if len(self.order) == 0:
            return
        unit = self.selection.unit
        where = np.flatnonzero(self.order == unit)
        position = int(where[0]) + offset if len(where) else 0
        self.focus_unit(int(self.order[int(np.clip(position, 0, len(self.order) - 1))]))
