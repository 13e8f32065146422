"""Readers of each SAE checkpoint layout into one canonical record, and the SAELens writer.

Pure functions over files and tensors: nothing here knows the estimator, so each layout can be
tested on its own. `sae_widgets.sae.checkpoint` picks the layout and builds the estimator.
"""

from sae_widgets.sae.formats.dictionary_learning import read_dictionary_learning
from sae_widgets.sae.formats.record import (
    CheckpointWeights,
    fold_decoder_norm,
    fold_input_bias,
    fold_input_scaling,
    orient,
)
from sae_widgets.sae.formats.saelens import read_saelens, saelens_files
from sae_widgets.sae.formats.sparsify import read_sparsify
from sae_widgets.sae.registry import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "CheckpointWeights",
    "fold_decoder_norm",
    "fold_input_bias",
    "fold_input_scaling",
    "orient",
    "read_dictionary_learning",
    "read_saelens",
    "read_sparsify",
    "saelens_files",
]
