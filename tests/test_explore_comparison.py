"""Comparison: two Explorers' SAEs matched, and the answers the compare view asks for."""

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.analysis import compare_saes


@pytest.fixture
def cmp(digits_sae, wider_digits_sae):
    sae_a, ds = digits_sae
    return sw.compare(sw.Explorer(sae_a, ds), sw.Explorer(wider_digits_sae, ds), threshold=0.5)


def test_the_comparison_is_compare_saes_on_the_explorers_decoders_and_codes(cmp):
    expected = compare_saes(
        cmp.ex_a.sae, cmp.ex_b.sae, cmp.ex_a.codes.csr, cmp.ex_b.codes.csr, threshold=0.5
    )
    result = cmp.result
    assert result is cmp.result  # cached
    np.testing.assert_array_equal(result.assignment.b_of_a, expected.assignment.b_of_a)
    np.testing.assert_array_equal(result.kind_b, expected.kind_b)
    np.testing.assert_allclose(result.log2_ratio, expected.log2_ratio)
    assert cmp.summary() == expected.summary()
    assert repr(cmp).startswith("Comparison(A: 40 units, B: 80 units, ")


def test_pairs_table_lists_each_matched_unit_of_a(cmp):
    table = cmp.pairs()
    assert len(table) == 40  # every unit of the narrower SAE is matched
    np.testing.assert_array_equal(table.unit_a, np.arange(40))
    np.testing.assert_array_equal(table.unit_b, cmp.result.assignment.b_of_a)
    counts_a, counts_b = cmp.ex_a.codes.counts, cmp.ex_b.codes.counts
    np.testing.assert_allclose(table.frequency_a, counts_a / cmp.ex_a.n_samples)
    np.testing.assert_allclose(
        table.log2_ratio, np.log2((counts_a + 0.5) / (counts_b[table.unit_b] + 0.5))
    )
    cos = cmp.ex_a.decoder_directions @ cmp.ex_b.decoder_directions.T
    np.testing.assert_allclose(table.cosine, cos[table.unit_a, table.unit_b], atol=1e-5)
    record = table.to_records()[3]
    assert record["unit_a"] == 3 and record["kind"] == table.kind[3]


def test_matches_and_top_samples_of_either_side(cmp):
    cos = cmp.ex_a.decoder_directions @ cmp.ex_b.decoder_directions.T
    found = cmp.matches(7, n=3)
    np.testing.assert_array_equal(found.units, np.argsort(-cos[7], kind="stable")[:3])
    back = cmp.matches(11, side="b")
    np.testing.assert_array_equal(back.units, np.argsort(-cos[:, 11], kind="stable")[:5])
    dense = cmp.ex_b.codes.dense(np.arange(cmp.ex_b.n_samples))[:, 11]
    samples, values = cmp.top_samples(11, side="b", n=4)
    np.testing.assert_array_equal(samples, np.argsort(-dense, kind="stable")[:4])
    np.testing.assert_array_equal(values, dense[samples])
    assert cmp.frequency(11, "b") == pytest.approx(np.count_nonzero(dense) / len(dense))
    assert cmp.selection is cmp.ex_a.selection and cmp.selection_b is cmp.ex_b.selection


def test_compare_builds_explorers_from_two_saes_and_a_dataset(digits_sae, wider_digits_sae):
    sae_a, ds = digits_sae
    cmp = sw.compare(sae_a, wider_digits_sae, ds, names=("40 units", "80 units"))
    assert cmp.ex_a.dataset is cmp.ex_b.dataset
    assert cmp.names == ("40 units", "80 units")
    assert cmp.ex_b.n_units == 80


def test_bad_input_names_the_argument(digits_sae, wider_digits_sae, cmp):
    sae_a, ds = digits_sae
    ex = sw.Explorer(sae_a, ds)
    with pytest.raises(ValueError, match="b must be another Explorer"):
        sw.compare(ex, ex)
    with pytest.raises(ValueError, match="b must explore the same samples"):
        sw.compare(ex, sw.Explorer(wider_digits_sae, ds[np.arange(100)]))
    with pytest.raises(TypeError, match="dataset is missing"):
        sw.compare(sae_a, wider_digits_sae)
    with pytest.raises(TypeError, match="a and b must both be Explorers"):
        sw.compare(ex, wider_digits_sae, ds)
    with pytest.raises(ValueError, match="threshold must be a cosine"):
        sw.compare(ex, cmp.ex_b, threshold=2)
    with pytest.raises(ValueError, match="side must be 'a' or 'b'"):
        cmp.matches(0, side="left")
    with pytest.raises(ValueError, match="n must be at least 1"):
        cmp.top_samples(0, n=0)
    with pytest.raises(ValueError, match=r"unit must be in \[0, 80\)"):
        cmp.frequency(80, "b")


def test_saes_of_other_input_widths_or_unfitted_are_refused_naming_the_side(digits_sae):
    # before: "dataset must have the SAE's input dimension 8" (which SAE? why?), and an
    # unfitted SAE's NotFittedError did not say whether a or b
    from sklearn.exceptions import NotFittedError

    sae_a, ds = digits_sae
    narrow = sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(ds.X[:200, :8], progress=False)
    for a, b in ((sae_a, narrow), (narrow, sae_a)):
        with pytest.raises(ValueError, match="a and b must be SAEs of the same input width"):
            sw.compare(a, b, ds)
    with pytest.raises(ValueError, match=r"a reads vectors of width 64, b of width 8"):
        sw.compare(sw.Explorer(sae_a, ds), sw.Explorer(narrow, sw.Dataset(ds.X[:, :8])))
    with pytest.raises(NotFittedError, match=r"^b: "):
        sw.compare(sae_a, sw.SAE(n_units=8, k=2), ds)
    with pytest.raises(TypeError, match=r"^a must be a sae_widgets\.SAE"):
        sw.compare("not an SAE", sae_a, ds)
