"""Where vectors come from: `Dataset`, `Attribute`, built-in `datasets`, `collect_activations`."""

from sae_widgets.data import datasets
from sae_widgets.data.dataset import Attribute, Dataset

__all__ = ["Attribute", "Dataset", "datasets"]
