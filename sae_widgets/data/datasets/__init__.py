"""Built-in datasets, generated or shipped with a dependency (nothing is downloaded), and
`digits_mlp()`, a small digits classifier trained on the spot (loaded on first use: torch)."""

from typing import Any

from sae_widgets.data.datasets._digits import digits
from sae_widgets.data.datasets._docstrings import DOCSTRING_KINDS, python_docstrings
from sae_widgets.data.datasets._sentences import SENTENCE_ATTRIBUTES, sentences
from sae_widgets.data.datasets._shapes import SHAPE_NAMES, render_shapes, shapes
from sae_widgets.data.datasets._superposition import (
    firing_probabilities,
    hierarchy_parents,
    superposition,
)

__all__ = [
    "DOCSTRING_KINDS",
    "SENTENCE_ATTRIBUTES",
    "SHAPE_NAMES",
    "DigitMLP",
    "digits",
    "digits_mlp",
    "firing_probabilities",
    "hierarchy_parents",
    "python_docstrings",
    "render_shapes",
    "sentences",
    "shapes",
    "superposition",
]


def __getattr__(name: str) -> Any:
    if name in ("DigitMLP", "digits_mlp"):
        from sae_widgets.data.datasets import _digits_mlp

        return getattr(_digits_mlp, name)
    raise AttributeError(f"module 'sae_widgets.data.datasets' has no attribute {name!r}")
