"""Pure computation over (sae, dataset) that the views display and the benchmarks time.

No ipywidgets, bqplot or IPython here (tests/test_layering.py enforces it): everything takes
and returns numpy arrays, scipy sparse matrices and frozen dataclasses.
"""

from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.compare import KINDS, SAEComparison, UnitMatches, compare_saes
from sae_widgets.analysis.matching import (
    Assignment,
    NearestMatches,
    hungarian_matches,
    nearest_matches,
)
from sae_widgets.analysis.probe import ProbeResult, probe_attribute
from sae_widgets.analysis.projection import Projection, display_subset, pca_projection
from sae_widgets.analysis.selection import (
    Enrichment,
    HeatmapData,
    default_heatmap_rows,
    default_heatmap_units,
    enrichment,
    heatmap_matrix,
    samples_in_rect,
)
from sae_widgets.analysis.summary import IntervalSamples, UnitSummary, unit_summary

__all__ = [
    "KINDS",
    "Assignment",
    "CodeStore",
    "Enrichment",
    "HeatmapData",
    "IntervalSamples",
    "NearestMatches",
    "ProbeResult",
    "Projection",
    "SAEComparison",
    "UnitMatches",
    "UnitSummary",
    "compare_saes",
    "default_heatmap_rows",
    "default_heatmap_units",
    "display_subset",
    "enrichment",
    "heatmap_matrix",
    "hungarian_matches",
    "nearest_matches",
    "pca_projection",
    "probe_attribute",
    "samples_in_rect",
    "unit_summary",
]
