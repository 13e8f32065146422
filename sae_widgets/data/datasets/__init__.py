"""Built-in datasets, generated or shipped with a dependency (nothing is downloaded)."""

from sae_widgets.data.datasets._digits import digits
from sae_widgets.data.datasets._shapes import SHAPE_NAMES, render_shapes, shapes
from sae_widgets.data.datasets._superposition import firing_probabilities, superposition

__all__ = [
    "SHAPE_NAMES",
    "digits",
    "firing_probabilities",
    "render_shapes",
    "shapes",
    "superposition",
]
