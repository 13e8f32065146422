"""sae_widgets: train sparse autoencoders and explore their units with linked Jupyter widgets.

Public names are imported lazily so that `import sae_widgets` stays fast and a notebook that
only needs the data layer never pays for ipywidgets or bqplot.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Dataset": "sae_widgets.data.dataset",
    "Attribute": "sae_widgets.data.dataset",
    "collect_activations": "sae_widgets.data.activations",
    "TextCorpus": "sae_widgets.data.corpus",
    "TokenRows": "sae_widgets.data.tokens",
    "load_language_model": "sae_widgets.data.models",
    "ActivationStore": "sae_widgets.data.store",
    "SAELensCache": "sae_widgets.data.store_arrow",
    "SAE": "sae_widgets.sae.estimator",
    "SAEConfig": "sae_widgets.sae.model",
    "SparseAutoencoder": "sae_widgets.sae.model",
    "Intervention": "sae_widgets.sae.splice",
    "Explorer": "sae_widgets.explore.explorer",
    "Comparison": "sae_widgets.explore.comparison",
    "compare": "sae_widgets.explore.comparison",
    "CompareView": "sae_widgets.widgets.compare",
    "Selection": "sae_widgets.explore.selection",
    "UnitInspector": "sae_widgets.widgets.unit_inspector",
    "ActivationHeatmap": "sae_widgets.widgets.heatmap",
    "ProbeSlider": "sae_widgets.widgets.probe_slider",
    "PCABrush": "sae_widgets.widgets.pca_brush",
    "PrefixSlider": "sae_widgets.widgets.prefix_slider",
    "UnitTable": "sae_widgets.widgets.unit_table",
    "TrainingMonitor": "sae_widgets.widgets.training_monitor",
    "SteeringView": "sae_widgets.widgets.steering",
    "image_grid": "sae_widgets.widgets.images",
}
_SUBMODULES = {
    "datasets": "sae_widgets.data.datasets",
    "metrics": "sae_widgets.sae.metrics",
    "models": "sae_widgets.data.models",  # offline language models (the `text` extra)
    # the layers themselves, so `sw.data.StoreWriter` works without importing them first
    "data": "sae_widgets.data",
    "sae": "sae_widgets.sae",
    "analysis": "sae_widgets.analysis",
    "explore": "sae_widgets.explore",
    "widgets": "sae_widgets.widgets",
}

__all__ = [*sorted(_EXPORTS), *sorted(_SUBMODULES), "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from sae_widgets.data import datasets as datasets
    from sae_widgets.data import models as models
    from sae_widgets.data.activations import collect_activations as collect_activations
    from sae_widgets.data.corpus import TextCorpus as TextCorpus
    from sae_widgets.data.dataset import Attribute as Attribute
    from sae_widgets.data.dataset import Dataset as Dataset
    from sae_widgets.data.models import load_language_model as load_language_model
    from sae_widgets.data.store import ActivationStore as ActivationStore
    from sae_widgets.data.store_arrow import SAELensCache as SAELensCache
    from sae_widgets.data.tokens import TokenRows as TokenRows
    from sae_widgets.explore.comparison import Comparison as Comparison
    from sae_widgets.explore.comparison import compare as compare
    from sae_widgets.explore.explorer import Explorer as Explorer
    from sae_widgets.explore.selection import Selection as Selection
    from sae_widgets.sae import metrics as metrics
    from sae_widgets.sae.estimator import SAE as SAE
    from sae_widgets.sae.model import SAEConfig as SAEConfig
    from sae_widgets.sae.model import SparseAutoencoder as SparseAutoencoder
    from sae_widgets.sae.splice import Intervention as Intervention
    from sae_widgets.widgets.compare import CompareView as CompareView


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
    elif name in _EXPORTS:
        module = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'sae_widgets' has no attribute {name!r}")
    globals()[name] = module  # cache: later lookups skip __getattr__
    return module


def __dir__() -> list[str]:
    return __all__
