"""Views over an Explorer: one module per widget (Explorer and Selection live in `explore`;
they are re-exported here for code written against the first release).

Kept import-light: widget classes (UnitInspector, PCABrush, ...) are reached through the
top-level `sae_widgets` namespace, which imports their modules only when asked.
"""

from sae_widgets.explore.explorer import Explorer
from sae_widgets.explore.selection import Selection, SelectionError

__all__ = ["Explorer", "Selection", "SelectionError"]
