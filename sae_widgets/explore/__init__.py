"""GUI-free exploration state: the shared `Selection` and the `Explorer` that answers every
view's question. The views in `sae_widgets.widgets` only read and write these.

data/, sae/ and analysis/ never import each other; they meet here.
"""

from sae_widgets.explore.comparison import Comparison, PairTable, compare
from sae_widgets.explore.explorer import Explorer
from sae_widgets.explore.selection import Selection, SelectionError, SelectionTypeError

__all__ = [
    "Comparison",
    "Explorer",
    "PairTable",
    "Selection",
    "SelectionError",
    "SelectionTypeError",
    "compare",
]
