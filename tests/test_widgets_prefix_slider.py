"""PrefixSlider headless, and the dashboard of a Matryoshka SAE (fit -> Explorer -> views)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.widgets.prefix_slider import PrefixSlider, prefix_grid

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture(scope="module")
def matryoshka_digits():
    ds = sw.datasets.digits()
    sae = sw.SAE(
        n_units=48,
        activation="matryoshka_batchtopk",
        k=6,
        epochs=8,
        batch_size=128,
        min_steps_per_epoch=8,
        prefix_sizes=(6, 24),
        seed=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae.fit(ds.X, progress=False)
    finally:
        torch.set_num_threads(threads)
    return ds, sae


def test_slider_draws_the_prefix_reconstruction_and_metrics(matryoshka_digits) -> None:
    ds, sae = matryoshka_digits
    ex = sw.Explorer(sae, ds)
    view = PrefixSlider(ex)
    assert view.slider.value == 6 and view.slider.max == 48
    assert list(view.nested_marks.x) == [6, 24, 48]
    view.slider.value = 24
    expected = ex.prefix_metrics([24])
    assert f"first 24 of 48 units: FVU {expected.fvu[0]:.4f}" in view.info.value
    assert float(view.marker.x[0]) == 24 and float(view.marker.y[0]) == pytest.approx(
        expected.fvu[0], rel=1e-5
    )
    ex.selection.samples = [7, 3]
    # the pair draws sample 7 with its reconstruction from units 0..23
    x_hat = ex.reconstruct_prefix([7], 24)[0]
    codes = sae.transform(ds.X[7:8]).copy()
    codes[:, 24:] = 0
    np.testing.assert_allclose(x_hat, sae.inverse_transform(codes)[0], atol=1e-5)
    # the curve falls with the prefix size at the trained sizes
    fvu = dict(zip(view.curve.x.tolist(), view.curve.y.tolist()))
    assert fvu[6.0] > fvu[24.0] > fvu[48.0]
    view.close()


def test_dashboard_adds_the_slider_only_for_nested_prefixes(matryoshka_digits, digits_sae):
    ds, sae = matryoshka_digits
    dash = sw.Explorer(sae, ds).dashboard()
    assert isinstance(dash.prefix, PrefixSlider) and dash.prefix in dash.children
    dash.close()
    plain, digits = digits_sae
    assert sw.Explorer(plain, digits).dashboard().prefix is None
    assert prefix_grid(48, (6, 24)) == [1, 3, 6, 12, 24, 48]
