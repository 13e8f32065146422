"""What every Explorer-driven widget shares: the base class, unit buttons, figure defaults.

The pattern, used by every view: a widget *is* an ``ipywidgets.VBox`` (so it displays and
nests like any widget), holds the Explorer, exposes ``.figure`` (its main bqplot Figure),
draws from ``ex.selection`` only, and writes user actions back to ``ex.selection`` only.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Figure, Lines
from numpy.typing import NDArray

from sae_widgets.analysis.checks import check_positive_int
from sae_widgets.data.checks import check_choice
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._busy import Busy

__all__ = [
    "ExplorerView",
    "Indices",
    "axis",
    "check_choice",
    "check_count",
    "check_css_size",
    "close_tree",
    "event_index",
    "event_number",
    "figure",
    "pixel_shape",
    "set_lines",
    "set_ticks",
    "text_width",
    "toggle_buttons",
    "wrapping_row",
]


def check_count(value: Any, name: str, most: int | None = None, minimum: int = 1) -> int:
    """A view's "how many" option as an int >= `minimum` (TypeError/ValueError naming `name`),
    capped at `most` (asking for more rows than exist shows them all)."""
    count = check_positive_int(value, name, minimum)
    return count if most is None else min(count, max(most, minimum))


def check_css_size(value: Any, name: str) -> str:
    """A CSS length such as "420px" or "50%" (what ipywidgets' Layout accepts)."""
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be a CSS size such as '420px'; got {value!r}")
    return value


def _widget_parts(value: Any) -> Iterator[widgets.Widget]:
    """The widgets held by one trait value (a widget, or a list, tuple or dict of them)."""
    if isinstance(value, widgets.Widget):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _widget_parts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _widget_parts(item)


def close_tree(root: widgets.Widget) -> None:
    """Close `root` and every widget it holds (children, marks, axes, scales, layouts...) and
    drop their observers: a closed view's picker or slider must not drive the Selection
    any more, and its widgets' comms are freed."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        for name in getattr(widget, "keys", ()):
            stack.extend(_widget_parts(getattr(widget, name, None)))
        if widget is not root:
            widget.close()
        widget.unobserve_all()


def event_number(event: Any, key: str) -> float | None:
    """The finite number `key` of a browser event's "data" (bqplot's element_click), or None
    when the event is malformed: a handler ignores such an event rather than raise into the
    comm, where nobody would see the error."""
    data = event.get("data") if isinstance(event, dict) else None
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def event_index(event: Any, size: int) -> int | None:
    """The element index in [0, size) of a browser click event, or None (see event_number)."""
    index = event_number(event, "index")
    if index is None or not index.is_integer() or not 0 <= index < size:
        return None
    return int(index)


def event_positions(value: Any) -> np.ndarray | None:
    """A browser's selected points (a mark's `selected`) as int64 positions (None, nothing
    selected: an empty array), or None when it is no 1-D array of whole numbers (a malformed
    message, which the caller ignores)."""
    if value is None:
        return np.zeros(0, np.int64)
    array = np.asarray(value)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        return None
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array % 1 == 0).all()):
        return None
    return array.astype(np.int64)


Indices = Sequence[int] | NDArray[np.integer[Any]]
"""Unit or sample indices as views receive them: a list or an integer numpy array."""

TITLE_STYLE = {"font-size": "14px"}
"""Figure titles: a size that fits above small pictures without covering them."""

TITLE_ROOM = 34
"""Top margin (px) a 14 px title needs. bqplot puts the title's baseline one em below
``-margin.top / 2``, so with less room it slides down into the plot area."""

_MARGIN = {"top": TITLE_ROOM, "bottom": 35, "left": 45, "right": 10}


def figure(
    marks: Sequence[Any],
    axes: Sequence[Any] = (),
    *,
    title: str = "",
    width: str = "360px",
    height: str = "240px",
    margin: dict[str, int] | None = None,
    **kwargs: Any,
) -> Figure:
    """A bqplot Figure with our defaults: fixed size, small margins, no animation."""
    kwargs.setdefault("title_style", dict(TITLE_STYLE))
    return Figure(
        marks=list(marks),
        axes=list(axes),
        title=title,
        fig_margin=dict(margin or _MARGIN),
        animation_duration=0,
        layout=widgets.Layout(width=width, height=height),
        **kwargs,
    )


def axis(scale: Any, label: str = "", *, vertical: bool = False, **kwargs: Any) -> Axis:
    """A bqplot Axis with an explicit number format (default: 3 significant digits).

    Never leave a numeric axis to guess its format: bqplot's guess throws in the browser when
    an update makes the domain a single point (one logged step, a unit that never fires).
    """
    kwargs.setdefault("tick_format", ".3~g")
    orientation = "vertical" if vertical else "horizontal"
    return Axis(scale=scale, label=label, orientation=orientation, **kwargs)


def set_ticks(axis: Axis, values: Sequence[float], labels: Sequence[str]) -> None:
    """Put ticks at `values` (data units) named by `labels`.

    The labels are sent first, in a message of their own: bqplot redraws the ticks of new
    `tick_values` in a d3 transition that keeps the label formatter of that moment, so labels
    arriving with or after the values were overwritten by the old ones a frame later.
    """
    positions = np.asarray(values, dtype=np.float64)
    # Keys as the browser spells the tick values: JavaScript's String(2.5) is "2.5", of 3 "3".
    keys = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in positions]
    axis.tick_labels = dict(zip(keys, labels))
    axis.tick_values = positions.astype(np.float32)


def set_lines(mark: Lines, x: Any, y: Any) -> None:
    """Draw `y` ((n,) one line, or (n_lines, n): one line per row) over `x` (n,).

    bqplot squeezes every axis of length 1 out of a 2-D y: lines of one point each became
    one line through them all (and one line of one point was refused with a TraitError). A
    single point is therefore given twice and drawn as a dot (a line needs two points).
    """
    x_n = np.asarray(x, dtype=np.float32).reshape(-1)
    y_n = np.asarray(y, dtype=np.float32)
    single = x_n.size == 1
    if single:
        x_n, y_n = np.repeat(x_n, 2), np.repeat(y_n, 2, axis=-1)
    with mark.hold_sync():
        mark.x, mark.y = x_n, y_n
        mark.marker = "circle" if single else None


def text_width(labels: Sequence[str], *, char_px: float = 7.5, padding_px: int = 28) -> str:
    """A CSS width that shows the longest of `labels` whole on a Jupyter button.

    Jupyter buttons have a fixed default width and cut longer labels with an ellipsis;
    7.5 px per character is the width of the 13 px UI font, padding covers an icon's room.
    """
    longest = max((len(label) for label in labels), default=0)
    return f"{int(longest * char_px + padding_px)}px"


class _Choice(widgets.ToggleButtons):
    """ToggleButtons that always have one button picked: a browser message of no index
    (`null`) is ignored, and the browser shown the kept one again, rather than leaving the
    value None that every handler of the choice would then have to refuse."""

    def set_state(self, sync_data: dict[str, Any]) -> None:
        if "index" in sync_data and sync_data["index"] is None and self._options_labels:
            sync_data = {name: v for name, v in sync_data.items() if name != "index"}
            self.send_state("index")
        super().set_state(sync_data)


def toggle_buttons(
    options: Sequence[tuple[str, str]],
    value: str,
    *,
    tooltips: Sequence[str] = (),
    **kwargs: Any,
) -> widgets.ToggleButtons:
    """ToggleButtons of (label, value) options, every button wide enough for every label."""
    buttons = _Choice(options=list(options), value=value, tooltips=list(tooltips), **kwargs)
    buttons.style.button_width = text_width([label for label, _ in options])
    return buttons


def wrapping_row(children: Sequence[widgets.Widget], **layout: Any) -> widgets.HBox:
    """An HBox whose children wrap onto a new line when the row is too narrow for them,
    top-aligned (a short widget does not stretch to its tallest neighbour)."""
    layout = {"flex_flow": "row wrap", "align_items": "flex-start", **layout}
    return widgets.HBox(list(children), layout=widgets.Layout(**layout))


def pixel_shape(ex: Explorer) -> tuple[int, ...] | None:
    """The image shape the SAE's input vectors can be drawn in, or None.

    That is the dataset's image shape when X is those pixels flattened (raw-image data);
    activations of a model have images too, but their vectors are not pixels.
    """
    shape = ex.dataset.image_shape
    if shape is None or int(np.prod(shape)) != ex.dataset.n_features:
        return None
    return shape


class ExplorerView(widgets.VBox):
    """Base of the widgets that follow an Explorer's Selection.

    Subclasses call `follow` for the Selection traits they draw; `close` detaches them, so a
    closed view costs nothing on later Selection changes. Every view follows
    ``selection.revision`` (bumped by `Explorer.refresh`) with `redraw`, so views keep no
    copy of the Explorer's data that outlives a refresh.
    """

    figure: Figure

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every view's constructor closes the view when it fails part-way: a half-built view
        would otherwise keep following (and redrawing on) the shared Selection."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def guarded(self: ExplorerView, *args: Any, **kw: Any) -> None:
            try:
                init(self, *args, **kw)
            except BaseException:
                self.close()
                raise

        cls.__init__ = guarded  # type: ignore[method-assign]

    def __init__(self, ex: Explorer, **box_kwargs: Any) -> None:
        if not isinstance(ex, Explorer):
            raise TypeError(f"ex: expected an sae_widgets.Explorer, got {type(ex).__name__}")
        super().__init__(**box_kwargs)
        self.ex = ex
        self.selection = ex.selection
        self._followers: list[tuple[Callable[[Any], None], list[str]]] = []
        # "working..." while this view redraws after a Selection change that takes > 200 ms;
        # a view shows `busy.widget` where its user looks.
        self.busy = Busy()
        self.follow(lambda _change: self.redraw(), "revision")

    def redraw(self) -> None:
        """Draw everything again from the Explorer (its SAE was trained further or refit,
        `Explorer.refresh`): each view replaces what it derived from the old codes."""

    def follow(self, handler: Callable[[Any], None], *names: str) -> None:
        """Call `handler(change)` whenever one of the named Selection traits changes (with the
        view's "working..." note up if it takes long)."""

        def redraw(change: Any) -> None:
            with self.busy:
                handler(change)

        self.selection.observe(redraw, list(names))
        self._followers.append((redraw, list(names)))

    def focus_unit(self, unit: int) -> None:
        """What clicking a unit anywhere in this view does: focus it in the Selection."""
        self.selection.unit = unit  # the Selection checks it (SelectionError naming `unit`)

    def close(self) -> None:
        """Stop following the Selection and close this view and every widget inside it."""
        # getattr: ipywidgets' __del__ also closes a view whose __init__ failed part-way
        for handler, names in getattr(self, "_followers", ()):
            self.selection.unobserve(handler, names)
        getattr(self, "_followers", []).clear()
        close_tree(self)
        super().close()
