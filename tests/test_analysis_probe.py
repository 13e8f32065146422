"""probe_attribute against encoding every varied input one by one."""

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.probe import probe_attribute


@pytest.fixture(scope="module")
def fitted():
    ds = sw.datasets.superposition(n=600, n_features=16, dim=10, active=3.0, seed=1)
    sae = sw.SAE(n_units=24, activation="topk", k=3, epochs=1, batch_size=128, seed=0)
    return ds, sae.fit(ds.X)


def brute_response(sae, attribute, samples, values):
    curves = []
    for value in values:
        rows = [sae.transform(attribute.apply([s], value))[0] for s in samples]
        curves.append(np.mean(rows, axis=0))
    return np.array(curves)


def test_one_sample_matches_encoding_each_value(fitted):
    ds, sae = fitted
    attribute = ds.attributes["feature_2"]
    result = probe_attribute(sae, attribute, 7, len(ds))
    np.testing.assert_array_equal(result.values, attribute.values)
    expected = brute_response(sae, attribute, [7], attribute.values)
    np.testing.assert_allclose(result.response, expected, rtol=1e-5, atol=1e-6)
    sensitivity = expected.max(0) - expected.min(0)
    np.testing.assert_allclose(result.sensitivity, sensitivity, rtol=1e-5, atol=1e-6)
    responsive = [u for u in np.argsort(-sensitivity, kind="stable") if sensitivity[u] > 0]
    np.testing.assert_array_equal(result.ranked_units, responsive)
    varied = np.stack([attribute.apply([7], v)[0] for v in attribute.values])
    np.testing.assert_allclose(result.inputs, varied, rtol=1e-6)
    np.testing.assert_allclose(
        result.reconstructions, sae.inverse_transform(sae.transform(varied)), rtol=1e-5, atol=1e-6
    )
    assert result.attribute == "feature_2" and list(result.samples) == [7]


def test_set_of_samples_is_averaged_in_bounded_batches(fitted):
    ds, sae = fitted
    attribute = ds.attributes["feature_5"]
    samples, values = [3, 40, 41, 599], [0.0, 0.5, 1.25]
    # max_batch_rows=5 forces one sample per batch: the slices must add up to the same mean.
    result = probe_attribute(sae, attribute, samples, len(ds), values, max_batch_rows=5)
    expected = brute_response(sae, attribute, samples, values)
    np.testing.assert_allclose(result.response, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.inputs[1], attribute.apply([3], 0.5)[0], rtol=1e-6)
    one_batch = probe_attribute(sae, attribute, samples, len(ds), values)
    np.testing.assert_allclose(one_batch.response, result.response, rtol=1e-5, atol=1e-6)


def test_varying_a_feature_moves_the_units_that_encode_it(fitted):
    ds, sae = fitted
    result = probe_attribute(sae, ds.attributes["feature_0"], np.arange(50), len(ds))
    # The unit most sensitive to feature 0 is the unit whose decoder best matches feature 0.
    decoder = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
    cosine = decoder @ ds.true_features[0]
    assert cosine[result.ranked_units[0]] > 0.5


def test_codes_of_the_unvaried_value_agree_with_the_code_store(fitted):
    ds, sae = fitted
    store = CodeStore.from_sae(sae, ds.X)
    np.testing.assert_allclose(store.dense(np.arange(len(ds))), sae.transform(ds.X), atol=1e-6)


def test_bad_arguments_raise(fitted):
    ds, sae = fitted
    attribute = ds.attributes["feature_0"]
    with pytest.raises(ValueError, match="samples must hold indices"):
        probe_attribute(sae, attribute, [len(ds)], len(ds))
    with pytest.raises(ValueError, match="samples must name at least one sample"):
        probe_attribute(sae, attribute, [], len(ds))
    with pytest.raises(ValueError, match="values must be finite"):
        probe_attribute(sae, attribute, 0, len(ds), [0.0, np.inf])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D grid"):
        probe_attribute(sae, attribute, 0, len(ds), [])
    with pytest.raises(TypeError, match="attribute must provide"):
        probe_attribute(sae, "feature_0", 0, len(ds))
    # a grid whose sweep cannot fit in memory (a zero-stride view: the test allocates none)
    with pytest.raises(ValueError, match="a probe over 1,000,000,000,000 values"):
        probe_attribute(sae, attribute, 0, len(ds), np.broadcast_to(0.0, (10**12,)))


def test_small_batches_run_on_one_thread_and_restore_the_setting():
    import torch

    from sae_widgets.analysis.threads import SMALL_BATCH_ROWS, threads_for_batch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads_for_batch(21):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with threads_for_batch(SMALL_BATCH_ROWS + 1):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), threads_for_batch(1):
            raise RuntimeError("restored even when the block fails")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
