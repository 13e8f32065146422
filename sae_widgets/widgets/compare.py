"""CompareView: two SAEs on the same samples, units matched by decoder cosine.

A scatter of the Hungarian pairs (x: decoder cosine, y: log2 of how much more often A's unit
fires than its partner in B), coloured by the kind of A's unit (shared, split, merge, new);
a click on a point focuses that unit of A. Under it, for the focused unit of A, its top
samples beside its best matches in B with theirs; and the same for the focused unit of B
(its best matches in A). Focus lives in the two Explorers' Selections (`Comparison`), which
this view follows and sets; it talks to no other view. Like every view it follows both
Selections' ``revision``: `Explorer.refresh` on either side (or `Comparison.refresh`) redraws
it from the new matching.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import LinearScale, Scatter

from sae_widgets.analysis import KINDS
from sae_widgets.analysis.checks import check_index
from sae_widgets.explore.comparison import Comparison, PairTable
from sae_widgets.widgets._panels import SampleGallery
from sae_widgets.widgets._view import axis, check_count, event_index, figure, wrapping_row
from sae_widgets.widgets.text import TopTokens

__all__ = ["KIND_COLORS", "CompareView"]

KIND_COLORS = {"shared": "#4c78a8", "split": "#f58518", "merge": "#54a24b", "new": "#b279a2"}
"""Colour of each kind of unit, in the scatter and the legend."""

_OTHER = {"a": "b", "b": "a"}


def _kind_html(kind: str) -> str:
    return f'<span style="color:{KIND_COLORS[kind]}"><b>{kind}</b></span>'


class _UnitColumn(widgets.VBox):
    """One unit: a caption, its top samples and a button that focuses it."""

    def __init__(
        self, cmp: Comparison, side: str, on_sample: Callable[[int], None], top_n: int
    ) -> None:
        self.cmp, self.side, self.top_n = cmp, side, top_n
        self.unit: int | None = None
        ex = cmp.explorer(side)
        dataset = ex.dataset
        if dataset.images is not None:
            self.gallery = SampleGallery(on_sample, images=dataset.images, n_cols=4, width=200)
        else:
            self.gallery = SampleGallery(on_sample, X=dataset.X, width=260)
        # Language-model tokens: top tokens in their context instead of the row gallery.
        self.top_tokens = TopTokens(ex, n_logits=5) if dataset.tokens is not None else None
        samples_view = self.gallery.figure if self.top_tokens is None else self.top_tokens
        self.caption = widgets.HTML(layout=widgets.Layout(max_width="260px"))
        self.button = widgets.Button(layout=widgets.Layout(width="auto"))
        self.button.on_click(lambda _button: self.focus())
        super().__init__([self.caption, samples_view, self.button])

    def show(self, unit: int | None, caption: str = "") -> None:
        self.unit = unit
        self.layout.display = "none" if unit is None else None
        if unit is None:
            return
        ex = self.cmp.explorer(self.side)
        samples, values = self.cmp.top_samples(unit, self.side, self.top_n)
        # A unit that never fires has no samples to draw (an empty gallery is a blank block).
        self.gallery.figure.layout.display = None if len(samples) else "none"
        if not len(samples):
            self.gallery.samples = []
            caption += " · <i>never fires</i>"
        if self.top_tokens is not None:
            self.top_tokens.show(unit, samples, values)
        elif len(samples):
            dims = np.argsort(-np.abs(ex.unit_direction(unit)), kind="stable")[:24]
            self.gallery.show(samples, values, dims=dims)
        self.caption.value = caption
        self.button.description = f"focus {self.cmp.names[self.side == 'b']} unit {unit}"

    def focus(self) -> None:
        """What the button does: focus this unit in its side's Selection."""
        if self.unit is not None:
            self.cmp.selection_of(self.side).unit = self.unit


class _MatchPanel(widgets.VBox):
    """The focused unit of one side beside its best matches on the other side."""

    def __init__(self, cmp: Comparison, side: str, n_show: int, top_n: int) -> None:
        self.cmp, self.side, self.n_show = cmp, side, n_show
        other = _OTHER[side]
        self.title = widgets.HTML()
        self.own = _UnitColumn(cmp, side, self._pick_sample(side), top_n)
        self.matches = [
            _UnitColumn(cmp, other, self._pick_sample(other), top_n) for _ in range(n_show)
        ]
        self.shown: list[int] = []
        super().__init__([self.title, wrapping_row([self.own, *self.matches])])

    def _pick_sample(self, side: str) -> Callable[[int], None]:
        def pick(sample: int) -> None:
            self.cmp.selection_of(side).probe_sample = sample

        return pick

    def draw(self) -> None:
        cmp, side, other = self.cmp, self.side, _OTHER[self.side]
        name, other_name = cmp.names[side == "b"], cmp.names[other == "b"]
        unit = cmp.selection_of(side).unit
        self.layout.display = "none" if unit is None else None
        if unit is None:
            self.shown = []
            self.own.show(None)
            for column in self.matches:
                column.show(None)
            return
        # n_show=0 shows no match columns; the kind and the partner still need one match
        found = cmp.matches(unit, side, max(self.n_show, 1))
        self.shown = [int(u) for u in found.units[: self.n_show]]
        best = f" and its best matches in {html.escape(other_name)} (decoder cosine)"
        self.title.value = (
            f"<b>{html.escape(name)} unit {unit}</b> ({_kind_html(found.kind)})"
            f"{best if self.n_show else ''}; Hungarian partner: "
            f"{found.hungarian if found.hungarian >= 0 else 'none'}"
        )
        self.own.show(
            unit,
            f"<b>{html.escape(name)} unit {unit}</b> · fires on "
            f"{100 * cmp.frequency(unit, side):.2f}%",
        )
        focused = cmp.selection_of(other).unit
        for position, column in enumerate(self.matches):
            if position >= len(found.units):
                column.show(None)
                continue
            match = int(found.units[position])
            mark = " · <i>focused</i>" if match == focused else ""
            column.show(
                match,
                f"<b>{html.escape(other_name)} unit {match}</b> · cos "
                f"{found.cosines[position]:.2f} · fires on "
                f"{100 * cmp.frequency(match, other):.2f}%{mark}",
            )


class CompareView(widgets.VBox):
    """Compare two SAEs: matched pairs, and a focused unit's matches side by side.

    Parameters
    ----------
    cmp:
        A `Comparison` (``sw.compare(ex_a, ex_b)``).
    n_show:
        Best matches shown per focused unit.
    top_n:
        Top-activating samples shown per unit.

    Attributes
    ----------
    figure:
        The scatter Figure.
    scatters:
        One bqplot Scatter per kind (keys of `KIND_COLORS`); ``units[kind]`` are the units of A
        its points stand for, in order.
    focus_mark:
        A ring around the focused unit of A's point (hidden when it has none).
    summary:
        HTML: "N shared, N split, N merged, N new" and the legend.
    panel_a, panel_b:
        The focused unit of A with its matches in B, and the focused unit of B with its
        matches in A (hidden while that side has no focused unit).
    """

    def __init__(self, cmp: Comparison, *, n_show: int = 3, top_n: int = 8) -> None:
        if not isinstance(cmp, Comparison):
            raise TypeError(f"cmp must be an sae_widgets.Comparison; got {type(cmp).__name__}")
        n_show = check_count(n_show, "n_show", max(cmp.ex_a.n_units, cmp.ex_b.n_units), 0)
        top_n = check_count(top_n, "top_n", cmp.ex_a.n_samples)
        super().__init__()
        self.cmp = cmp
        self.pairs: PairTable = cmp.pairs()
        self._drawn_revisions = cmp.revisions
        x_scale, y_scale = LinearScale(), LinearScale()
        scales = {"x": x_scale, "y": y_scale}
        self.units: dict[str, np.ndarray] = {}
        self.scatters: dict[str, Scatter] = {}
        for kind in KINDS:
            chosen = self.pairs.kind == kind
            self.units[kind] = self.pairs.unit_a[chosen]
            scatter = Scatter(
                x=self.pairs.cosine[chosen].astype(np.float32),
                y=self.pairs.log2_ratio[chosen].astype(np.float32),
                scales=scales,
                colors=[KIND_COLORS[kind]],
                default_size=24,
                opacities=[0.8],
                labels=[kind],
            )
            scatter.on_element_click(self._clicked)
            self.scatters[kind] = scatter
        self.focus_mark = Scatter(
            x=np.zeros(1, np.float32),
            y=np.zeros(1, np.float32),
            scales=scales,
            colors=["#000000"],
            fill=False,
            stroke="#000000",
            stroke_width=2.5,
            default_size=160,
            visible=False,
            preserve_domain={"x": True, "y": True},  # the ring never moves the axes
        )
        a, b = cmp.names
        self.figure = figure(
            [*self.scatters.values(), self.focus_mark],
            [
                axis(x_scale, f"decoder cosine ({a} unit to its Hungarian partner in {b})"),
                axis(y_scale, f"log2 firing ratio {a}/{b}", vertical=True),
            ],
            title=self._title(),
            width="560px",
            height="360px",
            margin={"top": 34, "bottom": 45, "left": 60, "right": 10},
        )
        self.figure.add_class("sw-figure")
        self.summary = widgets.HTML(self._summary_html())
        self.panel_a = _MatchPanel(cmp, "a", n_show, top_n)
        self.panel_b = _MatchPanel(cmp, "b", n_show, top_n)
        self.children = [self.summary, self.figure, self.panel_a, self.panel_b]
        self.add_class("sw-compare")
        self._followers = [
            (cmp.selection, self._on_unit_a, "unit"),
            (cmp.selection_b, self._on_unit_b, "unit"),
            (cmp.selection, self._on_revision, "revision"),
            (cmp.selection_b, self._on_revision, "revision"),
        ]
        for selection, handler, name in self._followers:
            selection.observe(handler, name)
        self._draw_focus()
        self.panel_a.draw()
        self.panel_b.draw()

    def _title(self) -> str:
        a, b = self.cmp.names
        return f"matched units: {a} ({self.cmp.ex_a.n_units}) vs {b} ({self.cmp.ex_b.n_units})"

    def _summary_html(self) -> str:
        counts = self.cmp.result.counts("a")
        legend = " ".join(
            f'<span style="color:{KIND_COLORS[k]}">●</span> {k} ({counts[k]})' for k in KINDS
        )
        return (
            f"<b>{html.escape(self.cmp.summary())}</b> · threshold cos ≥ "
            f"{self.cmp.result.threshold:g}<br>points: units of {html.escape(self.cmp.names[0])}"
            f" · {legend} · click a point to focus its unit"
        )

    # -- Selection -> view ---------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw everything again from the Comparison's current matching (either Explorer was
        refreshed after more training or a refit): the scatter, the summary, the focus ring
        and both panels."""
        self._drawn_revisions = self.cmp.revisions
        self.pairs = self.cmp.pairs()
        with self.figure.hold_sync():
            for kind, scatter in self.scatters.items():
                chosen = self.pairs.kind == kind
                self.units[kind] = self.pairs.unit_a[chosen]
                with scatter.hold_sync():
                    scatter.x = self.pairs.cosine[chosen].astype(np.float32)
                    scatter.y = self.pairs.log2_ratio[chosen].astype(np.float32)
            self.figure.title = self._title()
        self.summary.value = self._summary_html()
        self._draw_focus()
        self.panel_a.draw()
        self.panel_b.draw()

    def _on_revision(self, _change: Any) -> None:
        # Comparison.refresh bumps both revisions and lets the views hear them only after
        # both: the second notification finds the view drawn already.
        if self.cmp.revisions != self._drawn_revisions:
            self.redraw()

    def _on_unit_a(self, _change: Any) -> None:
        self._draw_focus()
        self.panel_a.draw()
        self.panel_b.draw()  # marks which of its matches is focused

    def _on_unit_b(self, _change: Any) -> None:
        self.panel_b.draw()
        self.panel_a.draw()

    def _draw_focus(self) -> None:
        unit = self.cmp.selection.unit
        rows = np.flatnonzero(self.pairs.unit_a == unit) if unit is not None else []
        with self.focus_mark.hold_sync():
            if len(rows):
                row = rows[0]
                self.focus_mark.x = self.pairs.cosine[row : row + 1].astype(np.float32)
                self.focus_mark.y = self.pairs.log2_ratio[row : row + 1].astype(np.float32)
            self.focus_mark.visible = bool(len(rows))

    # -- view -> Selection ---------------------------------------------------------------------

    def unit_at(self, kind: str, index: int) -> int:
        """The unit of A drawn as point `index` of the `kind` scatter."""
        if not isinstance(kind, str) or kind not in self.units:
            raise ValueError(f"kind must be one of {sorted(self.units)}; got {kind!r}")
        units = self.units[kind]
        return int(units[check_index(index, len(units), "index")])

    def _clicked(self, mark: Scatter, event: dict[str, Any]) -> None:
        kind = next((k for k, s in self.scatters.items() if s is mark), None)
        if kind is None:
            return
        index = event_index(event, len(self.units[kind]))  # None: malformed, ignored
        if index is not None:
            self.cmp.selection.unit = self.unit_at(kind, index)

    def close(self) -> None:
        # getattr: ipywidgets' __del__ also closes a view whose __init__ failed part-way
        for selection, handler, name in getattr(self, "_followers", ()):
            selection.unobserve(handler, name)
        self._followers = []
        super().close()
