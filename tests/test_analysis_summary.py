"""unit_summary against brute-force computations on the dense codes."""

import numpy as np
import pytest

from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.summary import normalize_rows, top_entries, unit_summary

N, U, D, K = 400, 30, 12, 5


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    Z = np.zeros((N, U), dtype=np.float32)
    labels = rng.integers(0, 4, size=N)
    for i in range(N):
        units = rng.choice(U - 1, size=K, replace=False)
        Z[i, units] = rng.random(K, dtype=np.float32) + 0.01
    Z[:, 5] = np.where(labels == 2, 1.5 + rng.random(N, dtype=np.float32), 0)  # label-2 unit
    Z[:, 6] = np.where(labels == 2, rng.random(N, dtype=np.float32) + 0.1, 0)  # its partner
    Z[:, 1] = np.round(Z[:, 1], 1)  # ties in activation values
    Z[:, 0] = rng.random(N, dtype=np.float32) + 0.1  # fires everywhere
    labels[:7] = -1  # unlabelled samples
    decoder = rng.standard_normal((U, D)).astype(np.float32)
    decoder[U - 1] = 0  # a dead unit with a zero decoder row
    return Z, labels, decoder


def brute_top(samples, values, n):
    order = sorted(range(len(samples)), key=lambda j: (-values[j], samples[j]))[:n]
    return samples[order], values[order]


@pytest.mark.parametrize("unit", [0, 1, 5, 17])
def test_summary_matches_dense_brute_force(unit):
    Z, labels, decoder = make_data()
    store = CodeStore(Z)
    s = unit_summary(store, unit, decoder, labels=labels, label_names=list("abcd"), top_n=10)
    column = Z[:, unit]
    fired = np.flatnonzero(column)
    values = column[fired]

    assert s.unit == unit and s.count == len(fired)
    assert s.frequency == pytest.approx(len(fired) / N)
    assert s.mean_activation == pytest.approx(values.mean(), rel=1e-6)
    assert s.max_activation == pytest.approx(values.max())

    counts, edges = np.histogram(values, bins=32, range=(0.0, values.max()))
    np.testing.assert_array_equal(s.histogram_counts, counts)
    np.testing.assert_allclose(s.histogram_edges, edges)
    assert s.histogram_counts.sum() == len(fired)

    top_samples, top_values = brute_top(fired, values, 10)
    np.testing.assert_array_equal(s.top_samples, top_samples)
    np.testing.assert_array_equal(s.top_values, top_values)

    cosines = normalize_rows(decoder) @ normalize_rows(decoder)[unit]
    cosines[unit] = -np.inf
    order = sorted(range(U), key=lambda v: (-cosines[v], v))[:8]
    np.testing.assert_array_equal(s.nearest_units, order)
    np.testing.assert_allclose(s.nearest_cosines, cosines[order], rtol=1e-5)

    F = (Z != 0).astype(np.int64)
    both = F.T @ F[:, unit]
    both[unit] = 0
    jaccard = both / (F.sum(0) + F[:, unit].sum() - both)
    partners = sorted(np.flatnonzero(both), key=lambda v: (-jaccard[v], v))[:8]
    np.testing.assert_array_equal(s.cofiring_units, partners)
    np.testing.assert_allclose(s.cofiring_jaccard, jaccard[partners], rtol=1e-6)
    np.testing.assert_array_equal(s.cofiring_counts, both[partners])

    fired_labels = labels[fired][labels[fired] >= 0]
    label_counts = np.bincount(fired_labels, minlength=4)
    np.testing.assert_array_equal(s.label_counts, label_counts)
    top = int(np.argmax(label_counts))
    share = label_counts / label_counts.sum()
    entropy = -sum(p * np.log(p) for p in share if p > 0)
    assert s.label_names == ("a", "b", "c", "d")
    assert s.top_label == top
    assert s.top_label_precision == pytest.approx(share[top])
    assert s.top_label_recall == pytest.approx(label_counts[top] / (labels == top).sum())
    assert s.label_selectivity == pytest.approx(1 - entropy / np.log(4))


def test_label_unit_is_selective_and_dense_unit_is_not():
    Z, labels, decoder = make_data()
    store = CodeStore(Z)
    specific = unit_summary(store, 5, decoder, labels=labels)
    everywhere = unit_summary(store, 0, decoder, labels=labels)
    assert specific.top_label == 2
    assert specific.top_label_recall == 1.0
    assert specific.top_label_precision == 1.0
    assert specific.label_selectivity == 1.0
    assert everywhere.label_selectivity < 0.05
    # By raw count the dense unit 0 ties with the true partner 6; Jaccard puts 6 first.
    assert specific.cofiring_counts[0] == specific.cofiring_counts[1] == specific.count
    np.testing.assert_array_equal(specific.cofiring_units[:2], [6, 0])
    assert specific.cofiring_jaccard[0] == 1.0


def test_intervals_partition_the_firing_samples():
    Z, _, decoder = make_data()
    store = CodeStore(Z)
    s = unit_summary(store, 3, decoder, n_intervals=4, per_interval=3, seed=7)
    column = Z[:, 3]
    edges = np.linspace(0, column.max(), 5)
    assert [iv.low for iv in s.intervals] == pytest.approx(edges[:-1])
    assert [iv.high for iv in s.intervals] == pytest.approx(edges[1:])
    for i, iv in enumerate(s.intervals):
        members = np.flatnonzero((column > edges[i]) & (column <= edges[i + 1]))
        assert iv.count == len(members)
        assert len(iv.samples) == min(3, len(members))
        assert set(iv.samples) <= set(members)
        np.testing.assert_array_equal(iv.values, column[iv.samples])
        assert np.all(np.diff(iv.values) <= 0)
    assert sum(iv.count for iv in s.intervals) == np.count_nonzero(column)
    again = unit_summary(store, 3, decoder, n_intervals=4, per_interval=3, seed=7)
    for a, b in zip(s.intervals, again.intervals):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_dead_unit_summary_is_empty_not_an_error():
    Z, labels, decoder = make_data()
    store = CodeStore(Z)
    s = unit_summary(store, U - 1, decoder, labels=labels)
    assert s.count == 0 and s.frequency == 0 and s.max_activation == 0
    assert s.histogram_counts.sum() == 0 and len(s.top_samples) == 0
    assert all(iv.count == 0 and len(iv.samples) == 0 for iv in s.intervals)
    assert len(s.cofiring_units) == 0
    np.testing.assert_array_equal(s.nearest_cosines, np.zeros(8))  # zero decoder row
    assert s.top_label is None and np.isnan(s.label_selectivity)


def test_pre_normalized_decoder_gives_the_same_answer():
    Z, _, decoder = make_data()
    store = CodeStore(Z)
    a = unit_summary(store, 4, decoder)
    b = unit_summary(store, 4, normalize_rows(decoder), decoder_normalized=True)
    np.testing.assert_array_equal(a.nearest_units, b.nearest_units)
    assert a.label_counts is None and a.top_label is None


def test_top_entries_keeps_ties_in_key_order():
    keys = np.array([9, 3, 7, 1, 5])
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    chosen, chosen_scores = top_entries(keys, scores, 2)
    np.testing.assert_array_equal(chosen, [1, 3])
    np.testing.assert_array_equal(chosen_scores, [2.0, 2.0])


def test_bad_arguments_raise_naming_them():
    Z, labels, decoder = make_data()
    store = CodeStore(Z)
    with pytest.raises(ValueError, match="unit must be in"):
        unit_summary(store, U, decoder)
    with pytest.raises(ValueError, match="decoder must have shape"):
        unit_summary(store, 0, decoder[:-1])
    with pytest.raises(ValueError, match="labels must have shape"):
        unit_summary(store, 0, decoder, labels=labels[:-1])
    with pytest.raises(ValueError, match="top_n must be at least 1"):
        unit_summary(store, 0, decoder, top_n=0)
    with pytest.raises(ValueError, match="label_names must name every label"):
        unit_summary(store, 0, decoder, labels=labels, label_names=["a"])


def test_busy_unit_cofiring_is_estimated_from_a_subset():
    Z, _, decoder = make_data()
    store = CodeStore(Z)
    exact = unit_summary(store, 0, decoder, n_cofiring=U)  # unit 0 fires on all 400 samples
    assert exact.cofiring_counts.sum() == (Z[:, 1:] != 0).sum()
    estimate = unit_summary(store, 0, decoder, n_cofiring=U, max_cofiring_samples=200)
    again = unit_summary(store, 0, decoder, n_cofiring=U, max_cofiring_samples=200)
    np.testing.assert_array_equal(estimate.cofiring_counts, again.cofiring_counts)
    true = dict(zip(exact.cofiring_units, exact.cofiring_counts))
    guessed = dict(zip(estimate.cofiring_units, estimate.cofiring_counts))
    for unit, count in true.items():
        if count >= 50:
            assert abs(guessed[unit] - count) <= 0.35 * count, unit


def test_a_single_unit_or_empty_lists_are_summaries_not_errors():
    keys = np.arange(3)
    units, scores = top_entries(keys, np.array([1.0, 2.0, 3.0]), 0)
    assert units.tolist() == [] and scores.tolist() == []
    lone = CodeStore(np.array([[1.0], [0.0], [2.0]]))  # an SAE of one unit has no neighbours
    summary = unit_summary(lone, 0, np.ones((1, 4)))
    assert summary.nearest_units.tolist() == [] and summary.cofiring_units.tolist() == []
    assert summary.count == 2 and summary.top_samples.tolist() == [2, 0]
    store = CodeStore(np.array([[1.0, 3.0], [0.0, 1.0], [2.0, 0.0]]))
    quiet = unit_summary(store, 0, np.eye(2), n_nearest=0, n_cofiring=0)
    assert quiet.nearest_units.tolist() == [] and quiet.cofiring_units.tolist() == []


def test_prepared_labels_give_the_same_summary_and_are_checked():
    from dataclasses import asdict

    from sae_widgets.analysis.summary import prepare_labels

    Z, labels, decoder = make_data()
    store = CodeStore(Z)
    index = prepare_labels(labels, N, list("abcd"))
    np.testing.assert_array_equal(index.totals, np.bincount(labels[labels >= 0], minlength=4))
    for unit in (0, 5, 17, U - 1):
        raw = unit_summary(store, unit, decoder, labels=labels, label_names=list("abcd"))
        prepared = unit_summary(store, unit, decoder, labels=index)
        for name, value in asdict(raw).items():
            if name != "intervals":
                np.testing.assert_array_equal(getattr(prepared, name), value, err_msg=name)
    with pytest.raises(ValueError, match="label_names must be None"):
        unit_summary(store, 0, decoder, labels=index, label_names=list("abcd"))
    with pytest.raises(ValueError, match=r"labels must have shape \(400,\)"):
        unit_summary(store, 0, decoder, labels=prepare_labels(labels[:-1], N - 1))
    with pytest.raises(ValueError, match="label_names must name every label"):
        prepare_labels(labels, N, ["a"])
