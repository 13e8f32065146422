"""`UnitButtons`: a caption and a row of buttons, each of which focuses one unit.

One widget for the whole row (an anywidget: anywidget comes with jupyter-scatter), so showing
other units is one message to the browser, where a pool of ipywidgets Buttons cost a message
per button and per style change (a unit change sent 16 of them for the inspector's nearest and
co-firing rows alone). A click sends the unit back as a custom message. What the row shows
(caption, buttons, direction) travels in the widget's `view_state`, so a row whose model
anywidget loaded late still follows the kernel (see _steady_anywidget).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import traitlets

from sae_widgets.widgets._steady_anywidget import VIEW_STATE_JS, SteadyAnyWidget

__all__ = ["UnitButtons"]

_ESM = (
    VIEW_STATE_JS
    + """
export default {
  async render({ model, el }) {
    const state = await viewState(model);
    const row = document.createElement('div');
    row.className = 'sw-unit-buttons';
    el.appendChild(row);
    const draw = () => {
      const { caption: html = '', items = [], vertical = false } = state.get('value');
      row.classList.toggle('sw-vertical', vertical);
      row.replaceChildren();
      const caption = document.createElement('span');
      caption.className = 'sw-unit-caption';
      caption.innerHTML = html;
      row.appendChild(caption);
      for (const item of items) {
        const button = document.createElement('button');
        button.className = 'jupyter-button widget-button sw-unit-button';
        button.title = `focus unit ${item.unit}`;
        if (item.color) {  // a legend: a swatch in the colour, the label in the theme's
          const swatch = document.createElement('span');
          swatch.className = 'sw-swatch';
          swatch.style.color = item.color;
          swatch.textContent = '\u2501 ';
          button.appendChild(swatch);
        }
        button.appendChild(document.createTextNode(item.label));
        if (item.bold) button.style.fontWeight = 'bold';
        button.addEventListener('click', () => model.send({ unit: item.unit }));
        row.appendChild(button);
      }
    };
    draw();
    state.on('change:value', draw);
    return () => state.off('change:value', draw);
  },
};
"""
)

_CSS = """
.sw-unit-buttons { display: flex; flex-wrap: wrap; align-items: center; gap: 2px 4px; }
.sw-unit-buttons.sw-vertical { flex-direction: column; align-items: flex-start; }
.sw-unit-buttons .sw-unit-caption { margin-right: 4px; }
.sw-unit-buttons .sw-unit-button { width: auto; margin: 0; }
"""


class UnitButtons(SteadyAnyWidget):
    """A caption and at most `size` buttons, each focusing one unit when clicked.

    Parameters
    ----------
    caption:
        HTML shown before the buttons.
    on_unit:
        Called with the unit of a clicked button.
    size:
        The most buttons shown at once.

    Attributes
    ----------
    units:
        The units of the buttons shown, in order.
    items:
        What the browser draws: one {"unit", "label", "color", "bold"} per button.
    """

    _esm = _ESM
    _css = _CSS
    has_view_state = True
    # Not synced themselves: the browser draws them from `view_state` (see _steady_anywidget).
    caption = traitlets.Unicode("", help="HTML before the buttons")
    items = traitlets.List(
        traitlets.Dict(), help="one {unit, label, color, bold} per button, in order"
    )
    vertical = traitlets.Bool(False, help="one button under the other")

    def __init__(self, caption: str, on_unit: Callable[[int], None], size: int = 8) -> None:
        super().__init__(caption=caption)
        self._on_unit = on_unit
        self.size = size
        self.units: list[int] = []
        self.on_msg(self._browser_click)
        self._send_view_state()

    @traitlets.observe("caption", "items", "vertical")
    def _send_view_state(self, _change: Any = None) -> None:
        if self.view_state is not None:  # None only before the base's __init__ set it
            self.view_state.value = {
                "caption": self.caption,
                "items": self.items,
                "vertical": self.vertical,
            }

    def show(
        self,
        units: Sequence[Any],
        captions: Sequence[str] | None = None,
        *,
        colors: Sequence[str] | None = None,
        strong: int | None = None,
    ) -> None:
        """Offer these units (at most `size`), labelled by `captions` (default "unit <u>").

        `colors` puts a swatch of each colour before its button's label (a legend; the label
        keeps the theme's text colour, readable on a light or dark theme, where coloured
        text was not); the button of unit `strong` is drawn bold (the focused unit).
        """
        units = [int(u) for u in units][: self.size]
        labels = [f"unit {u}" for u in units] if captions is None else list(captions)
        self.units = units
        self.items = [
            {
                "unit": unit,
                "label": str(labels[position]),
                "color": colors[position] if colors is not None else "",
                "bold": unit == strong,
            }
            for position, unit in enumerate(units)
        ]

    def click(self, position: int) -> None:
        """What a click on the button at `position` does (also callable from tests)."""
        if 0 <= position < len(self.units):
            self._on_unit(self.units[position])

    def _browser_click(self, _widget: Any, content: Any, _buffers: Any) -> None:
        unit = content.get("unit") if isinstance(content, dict) else None
        if isinstance(unit, int) and not isinstance(unit, bool) and unit in self.units:
            self.click(self.units.index(unit))
