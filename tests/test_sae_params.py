"""Declarative parameter checks of sw.SAE: every hyperparameter's bad values raise a
ValueError/TypeError naming the parameter and the value, at fit and in set_params."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.params import SAE_PARAMETERS, check_device

X = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)

# parameter -> (bad value, expected error)
BAD = [
    ("n_units", 0, ValueError),
    ("n_units", 2.5, TypeError),
    ("n_units", True, TypeError),
    ("activation", "sigmoid", ValueError),
    ("activation", 3, TypeError),
    ("k", 0, ValueError),
    ("k", 2.5, TypeError),
    ("k", "4", TypeError),
    ("epochs", 0, ValueError),
    ("epochs", 1.0, TypeError),
    ("batch_size", -3, ValueError),
    ("lr", 1e6, ValueError),
    ("lr", -1.0, ValueError),
    ("lr", math.nan, ValueError),
    ("lr", "0.1", TypeError),
    ("seed", 1.7, TypeError),
    ("seed", "abc", TypeError),
    ("seed", 2**64, ValueError),
    ("seed", -1, ValueError),
    ("device", "meta", ValueError),
    ("device", "not-a-device", ValueError),
    ("device", 3, TypeError),
    ("grad_clip", math.nan, ValueError),
    ("grad_clip", -1.0, ValueError),
    ("grad_clip", math.inf, ValueError),
    ("aux_coeff", -0.1, ValueError),
    ("k_aux", 0, ValueError),
    ("l1_coeff", -1.0, ValueError),
    ("l0_coeff", -1e-3, ValueError),
    ("l0_coeff", math.inf, ValueError),
    ("warmup_steps", -1, ValueError),
    ("warmup_steps", 2.5, TypeError),
    ("log_every", 0, ValueError),
    ("decay_fraction", 1.5, ValueError),
    ("dead_window", 0, ValueError),
    ("min_steps_per_epoch", 0, ValueError),
    ("shuffle", "no", TypeError),
    ("shuffle", 1, TypeError),
    ("prefix_sizes", "abc", TypeError),
    ("prefix_sizes", ("a",), TypeError),  # was a ValueError (fuzz report A item 13)
    ("prefix_sizes", [4, None], TypeError),
    ("prefix_sizes", (True,), TypeError),
]


@pytest.mark.parametrize(("name", "value", "error"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_value_names_the_parameter_at_fit_and_in_set_params(
    name: str, value: object, error: type
) -> None:
    sae = SAE(**{"n_units": 8, "k": 2, "epochs": 1, name: value})
    with pytest.raises(error, match=f"^{name} must be ") as info:
        sae.fit(X, progress=False)
    assert f"got {value!r}" in str(info.value)
    assert not hasattr(sae, "model_")
    with pytest.raises(error, match=f"^{name} must be"):
        SAE().set_params(**{name: value})


def test_every_parameter_has_a_constraint() -> None:
    assert set(SAE_PARAMETERS) == set(SAE().get_params())
    for name, constraint in SAE_PARAMETERS.items():
        assert constraint.describe(), name


def test_good_values_pass_and_numpy_scalars_are_accepted() -> None:
    sae = SAE(
        n_units=np.int64(8),
        k=np.int32(2),
        epochs=1,
        lr=np.float32(0.01),
        seed=np.int64(3),
        grad_clip=None,
        shuffle=np.bool_(False),
        warmup_steps=0,
        device=torch.device("cpu"),
    )
    sae.fit(X, progress=False)
    assert sae.seed_ == 3


def test_cross_parameter_rules() -> None:
    with pytest.raises(ValueError, match="k is required for activation='topk'"):
        SAE(n_units=8, k=None).fit(X, progress=False)
    with pytest.raises(ValueError, match="k must be at most n_units=8"):
        SAE(n_units=8, k=9).fit(X, progress=False)
    with pytest.raises(ValueError, match="prefix_sizes applies to matryoshka_batchtopk"):
        SAE(n_units=8, k=2, prefix_sizes=(4,)).fit(X, progress=False)
    with pytest.raises(ValueError, match="prefix_sizes must be strictly increasing"):
        SAE(n_units=8, k=2, activation="matryoshka_batchtopk", prefix_sizes=(4, 2)).fit(
            X, progress=False
        )
    # relu ignores k, whatever n_units is (the default k=16 with 8 units must not fail)
    SAE(n_units=8, activation="relu", epochs=1).fit(X, progress=False)
    # jumprelu's k is a starting L0, capped at n_units where it is used
    assert SAE(n_units=8, activation="jumprelu", epochs=1).fit(X, progress=False).model_.cfg.k == 16


def test_seed_none_draws_a_seed_per_fit() -> None:
    a = SAE(n_units=8, k=2, epochs=1, seed=None).fit(X, progress=False)
    b = SAE(n_units=8, k=2, epochs=1, seed=None).fit(X, progress=False)
    assert a.seed_ != b.seed_ and 0 <= a.seed_ < 2**63
    again = SAE(n_units=8, k=2, epochs=1, seed=a.seed_).fit(X, progress=False)
    np.testing.assert_array_equal(again.components_, a.components_)


def test_progress_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="progress must be a bool"):
        SAE(n_units=8, k=2, epochs=1).fit(X, progress="yes")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_build_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"device must be .* got 'cuda' .not available on this"):
        SAE(n_units=8, k=2, device="cuda").fit(X, progress=False)
    with pytest.raises(ValueError, match="not available"):
        check_device("device", "cuda:3")


def test_set_params_still_works_for_good_values_and_clone() -> None:
    from sklearn.base import clone

    sae = SAE().set_params(lr=0.01, seed=None, grad_clip=None)
    assert sae.lr == 0.01 and sae.seed is None
    assert clone(sae).get_params() == sae.get_params()
    assert sw.SAE.__doc__ is not None and "progress=False" in sw.SAE.__doc__
    assert "Fitted attributes" in sw.SAE.__doc__ and "history_" in sw.SAE.__doc__
