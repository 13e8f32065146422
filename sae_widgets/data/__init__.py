"""Where vectors come from: `Dataset`, `Attribute`, built-in `datasets`, `collect_activations`,
`ActivationStore` (activations on disk), `SAELensCache` (a SAELens activation cache, read).

Names load on first use so that `from sae_widgets.data import Dataset` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Dataset": "sae_widgets.data.dataset",
    "Attribute": "sae_widgets.data.dataset",
    "collect_activations": "sae_widgets.data.activations",
    "ActivationStore": "sae_widgets.data.store",
    "SAELensCache": "sae_widgets.data.store_arrow",
    "StoreError": "sae_widgets.data.store",
    "StoreWriter": "sae_widgets.data.store",
}

__all__ = [
    "ActivationStore",
    "Attribute",
    "Dataset",
    "SAELensCache",
    "StoreError",
    "StoreWriter",
    "collect_activations",
    "datasets",
]

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.data import datasets
    from sae_widgets.data.activations import collect_activations
    from sae_widgets.data.dataset import Attribute, Dataset
    from sae_widgets.data.store import ActivationStore, StoreError, StoreWriter
    from sae_widgets.data.store_arrow import SAELensCache


def __getattr__(name: str) -> Any:
    if name == "datasets":
        value: Any = importlib.import_module("sae_widgets.data.datasets")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'sae_widgets.data' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
