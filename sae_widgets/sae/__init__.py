"""The trainable backend: the SparseAutoencoder module, its training loop, the `SAE`
estimator and the metrics users reach as `sae_widgets.metrics`."""

from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.training import StopTraining, TrainConfig

__all__ = ["SAE", "SAEConfig", "SparseAutoencoder", "StopTraining", "TrainConfig"]
