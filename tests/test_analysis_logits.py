"""Logit effects: the top promoted and suppressed tokens of a direction through W_U."""

from __future__ import annotations

import numpy as np
import pytest

from sae_widgets.analysis.logits import logit_effects


def brute_force(direction: np.ndarray, unembedding: np.ndarray, top: int):
    effects = unembedding.astype(np.float64) @ direction.astype(np.float64)
    order = np.argsort(-effects, kind="stable")
    return order[:top], effects[order[:top]], order[::-1][:top], effects[order[::-1][:top]]


def test_matches_a_brute_force_product_on_random_data() -> None:
    rng = np.random.default_rng(0)
    unembedding = rng.normal(size=(500, 16)).astype(np.float32)
    direction = rng.normal(size=16).astype(np.float32)
    found = logit_effects(direction, unembedding, top=7)
    up, up_values, down, down_values = brute_force(direction, unembedding, 7)
    np.testing.assert_array_equal(found.promoted_ids, up)
    np.testing.assert_array_equal(found.suppressed_ids, down)
    np.testing.assert_allclose(found.promoted_values, up_values, rtol=1e-5)
    np.testing.assert_allclose(found.suppressed_values, down_values, rtol=1e-5)
    assert np.all(np.diff(found.promoted_values) <= 0)
    assert np.all(np.diff(found.suppressed_values) >= 0)


def test_norm_weight_scales_the_direction_first() -> None:
    rng = np.random.default_rng(1)
    unembedding = rng.normal(size=(50, 4)).astype(np.float32)
    direction = rng.normal(size=4).astype(np.float32)
    weight = np.array([2.0, 0.5, 1.0, 3.0], np.float32)
    scaled = logit_effects(direction * weight, unembedding, top=5)
    folded = logit_effects(direction, unembedding, top=5, norm_weight=weight)
    np.testing.assert_array_equal(scaled.promoted_ids, folded.promoted_ids)
    np.testing.assert_allclose(scaled.promoted_values, folded.promoted_values, rtol=1e-6)


def test_top_larger_than_the_vocabulary_returns_every_token() -> None:
    found = logit_effects(np.ones(2), np.eye(2, dtype=np.float32), top=10)
    assert sorted(found.promoted_ids.tolist()) == [0, 1]


@pytest.mark.parametrize(
    ("direction", "unembedding", "kwargs", "error", "message"),
    [
        (np.ones(3), np.ones((5, 4)), {}, ValueError, "unembedding must have shape"),
        (np.ones((2, 3)), np.ones((5, 3)), {}, ValueError, "direction must be 1-D"),
        (np.array([1.0, np.nan]), np.ones((5, 2)), {}, ValueError, "direction contains NaN"),
        (np.ones(2), np.ones((5, 2)), {"top": 0}, ValueError, "top"),
        (np.ones(2), np.ones((5, 2)), {"norm_weight": np.ones(3)}, ValueError, "norm_weight"),
        ("abc", np.ones((5, 2)), {}, TypeError, "direction"),
    ],
)
def test_bad_input(direction, unembedding, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        logit_effects(direction, unembedding, **kwargs)
