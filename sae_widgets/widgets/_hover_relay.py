"""`HoverRelay`: lets the points of a bqplot scatter be hovered while a selector is active.

Why: bqplot draws the Figure's interaction (our LassoSelector or BrushSelector) in a layer
*above* the marks, and the selector's background rectangle takes every pointer event over the
plot area (``pointer-events: all``; bqplot's Figure.ts builds svg-marks, then svg-interaction
on top). So with a lasso or rectangle tool active a Scatter never gets ``mouseover``: no
tooltip, and ``hovered_point`` never reaches the kernel. Measured in JupyterLab 4 with
Chromium: ``document.elementFromPoint`` over a dot returns the lassoselector's ``rect``; with
``figure.interaction = None`` the same hover shows the card at once.

The relay is a tiny anywidget (anywidget already comes with jupyter-scatter) placed inside the
view. In the browser it watches the pointer over the view's main figure and, while no mouse
button is pressed, finds the topmost visible point under it (``document.elementsFromPoint``
sees through the selector's rectangle) and hands that point bqplot's own ``mouseover`` /
``mousemove`` / ``mouseout`` events. bqplot then does what it always does for a hovered point:
shows the mark's ``tooltip`` widget and syncs ``hovered_point``. Drags still go to the
selector, untouched (the relay never stops or cancels an event). The kernel never changes the
relay after creating it, so a relay that anywidget loaded late works all the same (see
_steady_anywidget).
"""

from __future__ import annotations

import traitlets

from sae_widgets.widgets._steady_anywidget import SteadyAnyWidget

__all__ = ["HoverRelay"]

_ESM = """
const FIND_EVERY_MS = 100;
const GIVE_UP_AFTER = 600;  // tries: a minute for the figure to be drawn

function visibleDotAt(x, y) {
  // elementsFromPoint lists everything under the pointer, the selector's rectangle included;
  // the first visible dot is the one drawn on top.
  return document.elementsFromPoint(x, y).find(node =>
    node.classList && node.classList.contains('dot')
    && getComputedStyle(node).opacity !== '0');
}

function relay(target, type, event) {
  target.dispatchEvent(new MouseEvent(type, {
    bubbles: true, cancelable: true, view: window,
    clientX: event.clientX, clientY: event.clientY,
    screenX: event.screenX, screenY: event.screenY,
  }));
}

export default {
  render({ model, el }) {
    let figure = null;
    let hovered = null;
    let tries = 0;
    let timer = null;

    const leave = event => {
      if (hovered) relay(hovered, 'mouseout', event);
      hovered = null;
    };
    const move = event => {
      if (!event.isTrusted) return;  // our own relayed events bubble up here too
      if (event.buttons !== 0) { leave(event); return; }  // a drag belongs to the selector
      const dot = visibleDotAt(event.clientX, event.clientY);
      if (dot !== hovered) {
        leave(event);
        if (dot) relay(dot, 'mouseover', event);
        hovered = dot || null;
      } else if (dot) {
        relay(dot, 'mousemove', event);  // bqplot moves its tooltip with the pointer
      }
    };
    const onLeave = event => { if (event.isTrusted) leave(event); };

    const attach = () => {
      const view = el.closest(model.get('view_selector'));
      figure = view && view.querySelector(model.get('figure_selector'));
      if (figure) {
        figure.addEventListener('mousemove', move);
        figure.addEventListener('mouseleave', onLeave);
        model.set('attached', true);
        model.save_changes();
      } else if (++tries < GIVE_UP_AFTER) {
        timer = setTimeout(attach, FIND_EVERY_MS);
      }
    };
    attach();
    return () => {
      clearTimeout(timer);
      if (figure) {
        figure.removeEventListener('mousemove', move);
        figure.removeEventListener('mouseleave', onLeave);
      }
    };
  },
};
"""


class HoverRelay(SteadyAnyWidget):
    """Hands hover events to the points under a selector layer (see the module docstring).

    Display it *inside* the view whose figure it serves: it finds the figure as
    ``el.closest(view_selector).querySelector(figure_selector)`` from its own place on the page.
    """

    _esm = _ESM
    view_selector = traitlets.Unicode(help="CSS selector of the enclosing view").tag(sync=True)
    figure_selector = traitlets.Unicode(
        ".bqplot.figure.sw-figure", help="CSS selector of the figure inside that view"
    ).tag(sync=True)
    attached = traitlets.Bool(False, help="set by the browser once it listens").tag(sync=True)

    def __init__(self, view_selector: str, **kwargs: object) -> None:
        super().__init__(view_selector=view_selector, **kwargs)
        self.layout.display = "none"  # nothing to see; it only listens
