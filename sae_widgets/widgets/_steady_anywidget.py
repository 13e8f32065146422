"""`SteadyAnyWidget`: the base of our anywidgets (UnitButtons, HoverRelay, RendererFit), so that
a model the browser loads late still shows what the kernel sends it, and so that our own views
do not make it late.

Why (anywidget 0.11.0, read in its bundle and measured in JupyterLab 4 with Chromium): anywidget
gives each model 2 s, from its creation in the browser, to import its ESM (a blob module) and
bind it (``AbortSignal.timeout(2000)`` in its ``Runtime``). Past that the model's ``ready``
promise rejects with "[anywidget] Failed to initialize model." and stays rejected, and
``AnyModel._handle_comm_msg`` awaits ``ready`` before each message from the kernel: every later
state update and custom message to that model is dropped, for good (its view still draws,
from the state the model was created with). The rejection surfaces as an uncaught page error
when no kernel message was waiting on it; JupyterLab's kernel connection swallows it silently
when one was. The import itself takes milliseconds, but it waits for the page's main thread,
which drawing a dashboard's bqplot figures (software rendering, 2 busy cores) held for 0.5 to
3.2 s at a time in the round-8 browser notebook (tests/browser/test_browser_round8.py): models
created while their own dashboard was drawn finished their import up to 2.2 s after creation,
and the page error was seen in about 2 runs of 5 (tests/browser/test_widget_lifecycle.py makes
a model's load slow on purpose instead). With the gate below, the same notebook's imports took
at most 0.3 s.

So:

- right after creating the model, the kernel sends it one empty message (`GATE`). JupyterLab and
  Notebook 7 handle kernel messages one at a time, each after the last has been handled, and
  anywidget handles this one only once the model's ESM is loaded: the cell's display and every
  message after it (the bqplot figures that hold the main thread) wait until then, so our own
  drawing no longer starves the import. When something else holds the page past 2 s anyway,
  this empty message is the one that waited, and the one anywidget drops.
- what the kernel changes after creation lives in `view_state`, a plain ipywidgets model (no
  anywidget runtime, nothing awaited): the ESM reads and watches it there (`VIEW_STATE_JS`),
  so a model that loaded late still follows the kernel. What the browser sends (clicks,
  `model.set` + ``save_changes``) goes straight to the kernel either way.
"""

from __future__ import annotations

from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

__all__ = ["GATE", "VIEW_STATE_JS", "SteadyAnyWidget", "ViewState"]

# The message that holds the kernel's later messages until the model's ESM is loaded; the ESMs
# ignore it.
GATE = {"sw_gate": 1}

# For an ESM whose widget has a `view_state`: the plain model holding what the kernel changes.
VIEW_STATE_JS = """
function viewState(model) {
  const ref = model.get('view_state');
  return model.widget_manager.get_model(ref.slice('IPY_MODEL_'.length));
}
"""


class ViewState(widgets.Widget):
    """What a view draws, set by the kernel: a plain ipywidgets model (no view of its own)."""

    value = traitlets.Dict(help="the state the browser draws").tag(sync=True)


class SteadyAnyWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """An anywidget that sends `GATE` once created (see the module docstring); a subclass whose
    kernel side changes what the browser shows sets `has_view_state` and writes it to
    `view_state.value` (or sends custom messages with `view_state.send`)."""

    has_view_state = False
    view_state = traitlets.Instance(
        ViewState, allow_none=True, help="the plain model the ESM reads the kernel's state from"
    ).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, **kwargs: Any) -> None:
        if self.has_view_state:  # created first, so the model's creation already names it
            kwargs["view_state"] = ViewState()
        super().__init__(**kwargs)
        self.send(GATE)

    def close(self) -> None:
        state = getattr(self, "view_state", None)  # None: __init__ failed (ipywidgets' __del__)
        if state is not None:
            state.close()
        super().close()
