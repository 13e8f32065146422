"""Views over an Explorer: the shared Selection state, the Explorer, and one module per widget.

Kept import-light: widget classes (UnitInspector, PCABrush, ...) are reached through the
top-level `sae_widgets` namespace, which imports their modules only when asked.
"""

from sae_widgets.widgets.explorer import Explorer
from sae_widgets.widgets.selection import Selection, SelectionError

__all__ = ["Explorer", "Selection", "SelectionError"]
