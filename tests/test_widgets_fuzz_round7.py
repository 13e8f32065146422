"""Fuzz round 7 of the views and the language-model path: sequences of actions, unusual data
and messages earlier rounds did not try. Each test pins a defect found (the fix is in the
commit that added it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")

RNG = np.random.default_rng(0)
X6 = RNG.random((40, 6)).astype(np.float32)
IMAGES = RNG.random((40, 2, 3)).astype(np.float32)


def _fit(X: Any, **options: Any) -> sw.SAE:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        settings = {"n_units": 8, "k": 2, "epochs": 2, "batch_size": 32, "seed": 0, **options}
        return sw.SAE(**settings).fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pictured() -> sw.Explorer:
    """An Explorer of 40 six-pixel (2 x 3) pictures."""
    ds = sw.Dataset(X6, images=IMAGES)
    return sw.Explorer(_fit(ds.X), ds)


# ---- the heatmap's sample card after its sample is cleared ------------------------------------


@pytest.mark.parametrize("images", [True, False])
def test_the_sample_card_shows_no_stale_sample_once_the_probe_sample_is_cleared(images) -> None:
    # the title said "click the strip ..." but the pictures (or lines) of the last sample
    # stayed drawn under it: after selection.clear() the card showed a sample no one picked
    ds = sw.Dataset(X6, images=IMAGES if images else None)
    ex = sw.Explorer(_fit(ds.X), ds)
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 5
    assert heatmap.card.figure.layout.display != "none"
    ex.selection.clear()
    assert "click the strip" in heatmap.card_title.value
    assert heatmap.card.figure.layout.display == "none"
    assert heatmap.card_input.value == ""
    ex.selection.probe_sample = 7
    assert heatmap.card.figure.layout.display != "none"
    assert "sample 7" in heatmap.card_title.value
