"""Fuzz round 7 of the public API (non-widget): odd dtypes, shapes, hooks and options earlier
rounds did not try. Each test pins a defect a user hit; the fix is in the commit that added it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import sae_widgets as sw
from sae_widgets import analysis as A


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def _rows(n: int = 12, d: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("shape", [(-2, -3), (-1, -6), (0, 6), (6, 0)])
def test_an_input_shape_with_a_negative_or_zero_size_is_named(shape: tuple[int, ...]) -> None:
    # (-2, -3) holds 6 values by its product, so it passed the size check and reached torch's
    # raw "RuntimeError: invalid shape dimension -3" from reshape
    model = nn.Sequential(nn.Flatten(), _net())
    with pytest.raises(ValueError, match=r"input_shape .*positive"):
        sw.collect_activations(model, "1.1", _rows(), input_shape=shape)
    ds = sw.collect_activations(model, "1.1", _rows(), input_shape=(2, 3))
    assert ds.X.shape == (12, 5)


class _MetaLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.empty(x.shape[0], 3, device="meta")  # a shape without values


def test_a_layer_whose_output_has_no_values_is_named() -> None:
    # was torch's raw "RuntimeError: Tensor.item() cannot be called on meta tensors" from the
    # finiteness check of the captured output
    model = nn.Sequential(_MetaLayer(), nn.Identity())
    with pytest.raises(TypeError, match=r"layer '0' .*'meta' device"):
        sw.collect_activations(model, "0", _rows())


@pytest.mark.parametrize(
    "option",
    [{"max_tokens": 3}, {"max_length": 4}, {"drop_special": False}, {"drop_first": 1}],
    ids=lambda option: next(iter(option)),
)
def test_token_options_without_a_tokenizer_are_refused_not_ignored(option: dict) -> None:
    # max_tokens=3 without tokenizer= gave all 12 rows (the option was silently dropped), and
    # drop_first=-3 was not even checked
    with pytest.raises(ValueError, match=rf"{next(iter(option))} .*tokenizer="):
        sw.collect_activations(_net(), "1", _rows(), **option)
    defaults = {"max_tokens": None, "max_length": None, "drop_special": True, "drop_first": 0}
    assert sw.collect_activations(_net(), "1", _rows(), **defaults).X.shape == (12, 5)


@pytest.mark.parametrize(
    "codes",
    [
        lambda Z: Z.astype(np.complex64) + 1j,  # the imaginary part was silently dropped
        lambda Z: sp.csr_matrix(Z.astype(np.complex128) * (1 + 1j)),
        lambda Z: Z.astype(str),  # parsed as numbers
        lambda Z: Z.astype(object),
        lambda Z: [[1.0], [1.0, 2.0]],  # numpy's raw "inhomogeneous shape"
    ],
    ids=["complex", "complex-sparse", "strings", "object", "ragged"],
)
def test_codes_that_are_not_real_numbers_are_refused_naming_codes(codes: object) -> None:
    Z = np.maximum(np.random.default_rng(0).standard_normal((6, 4)), 0).astype(np.float32)
    with pytest.raises(TypeError, match=r"codes must .*real numbers"):
        A.CodeStore(codes(Z))  # type: ignore[operator]
    for fine in (Z, Z > 0, (Z * 10).astype(np.int64), sp.csr_matrix(Z), Z.tolist()):
        assert A.CodeStore(fine).n_units == 4


@pytest.fixture(scope="module")
def spliced() -> tuple[nn.Module, sw.SAE]:
    model = _net()
    acts = sw.collect_activations(model, "1", _rows(64))
    return model, sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(acts.X, progress=False)


@pytest.mark.parametrize("edit", ["set", "add", "steer"])
def test_an_edit_value_on_the_meta_device_is_a_type_error(
    spliced: tuple[nn.Module, sw.SAE], edit: str
) -> None:
    # float() of a meta tensor is torch's raw "Tensor.item() cannot be called on meta tensors"
    model, sae = spliced
    with pytest.raises(TypeError, match=rf"{edit}\[0\] must be a number"):
        sw.Intervention(model, "1", sae, **{edit: {0: torch.tensor(1.0, device="meta")}})
    assert sw.Intervention(model, "1", sae, **{edit: {0: torch.tensor(1.0)}}).keep_error


@pytest.mark.parametrize(
    "mean, error, message",
    [
        (torch.zeros(5, device="meta"), ValueError, r"mean is a tensor on the 'meta' device"),
        (np.ones(5) * (1 + 1j), TypeError, r"mean must .*real numbers"),  # imaginary dropped
        (torch.ones(5, dtype=torch.complex64), TypeError, r"mean must .*real numbers"),
        ([], ValueError, r"mean must hold .*at least one"),  # failed later, at each forward
    ],
    ids=["meta", "complex", "complex-tensor", "empty"],
)
def test_a_mean_ablation_checks_its_mean_up_front(
    spliced: tuple[nn.Module, sw.SAE], mean: object, error: type, message: str
) -> None:
    model, _ = spliced
    with pytest.raises(error, match=message):
        sw.Intervention(model, "1", ablate="mean", mean=mean)
    x = torch.from_numpy(_rows(3))
    with sw.Intervention(model, "1", ablate="mean", mean=np.ones(5, dtype=bool)):
        edited = model(x)
    assert torch.allclose(edited, model[2](torch.ones(3, 5)))


def test_edit_rows_takes_tensors_as_it_takes_numpy(spliced: tuple[nn.Module, sw.SAE]) -> None:
    # A meta tensor reached torch's raw "Cannot copy out of meta tensor"; complex and bool
    # tensors were edited as their real part / as 0-1 and answered in their own dtype, and
    # integer tensors had the edit truncated back to integers (numpy integers are edited in
    # float32).
    model, sae = spliced
    edit = sw.Intervention(model, "1", sae, set={0: 1.5})
    with pytest.raises(ValueError, match=r"x is a tensor on the 'meta' device"):
        edit.edit_rows(torch.zeros(2, 5, device="meta"))
    for dtype in (torch.complex64, torch.bool):
        with pytest.raises(TypeError, match=r"x must be .*real numbers"):
            edit.edit_rows(torch.ones(2, 5, dtype=dtype))
    ints = np.arange(10).reshape(2, 5)
    from_numpy = edit.edit_rows(ints)
    from_torch = edit.edit_rows(torch.from_numpy(ints))
    assert from_torch.dtype == torch.float32
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)


class _SumLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()  # one number for the whole batch


@pytest.mark.parametrize("edit", [{"ablate": "zero"}, {"set": {0: 1.0}}], ids=["ablate", "set"])
def test_an_intervention_on_a_layer_with_a_scalar_output_names_the_layer(
    spliced: tuple[nn.Module, sw.SAE], edit: dict
) -> None:
    # was a raw "IndexError: tuple index out of range" from output.shape[-1] in the hook
    _, sae = spliced
    model = nn.Sequential(_SumLayer())
    with (
        pytest.raises(ValueError, match=r"layer '0' output has shape \(\)"),
        sw.Intervention(model, "0", sae if "set" in edit else None, **edit),
    ):
        model(torch.ones(2, 5))


def test_training_parameters_set_after_a_fit_apply_to_the_next_partial_fit() -> None:
    # set_params(lr=1e-5) after fit was silently ignored: partial_fit kept training at the
    # rate (and logging, clipping, ...) the first fit's trainer was built with
    X = _rows(64)
    sae = sw.SAE(n_units=16, k=4, epochs=1, batch_size=16, seed=0).fit(X, progress=False)
    sae.set_params(lr=1e-5, warmup_steps=0, log_every=1)
    logged = len(sae.history_)
    sae.partial_fit(X)
    new = sae.history_[logged:]
    assert len(new) == 4  # one entry per step: log_every=1 applied
    assert all(entry["lr"] == pytest.approx(1e-5) for entry in new)


@pytest.mark.parametrize(
    "change",
    [{"n_units": 8}, {"activation": "relu"}, {"k": 2}],
    ids=lambda change: next(iter(change)),
)
def test_partial_fit_refuses_an_architecture_the_fitted_model_does_not_have(
    change: dict,
) -> None:
    # set_params(n_units=8) then partial_fit trained on the 16-unit model without a word;
    # get_params() then described a model the estimator did not hold
    X = _rows(64)
    sae = sw.SAE(n_units=16, k=4, epochs=1, batch_size=16, seed=0).fit(X, progress=False)
    steps = sae.n_steps_
    with pytest.raises(ValueError, match=rf"{next(iter(change))}=.*fit\(\)"):
        sae.set_params(**change).partial_fit(X)
    assert sae.n_steps_ == steps  # nothing trained
    sae.fit(X, progress=False)  # fit starts the new architecture
    assert sae.model_.cfg.n_units == sae.n_units and sae.model_.cfg.activation == sae.activation


def test_partial_fit_continues_loaded_and_wrapped_models_whatever_their_k_hint(
    tmp_path: object,
) -> None:
    X = _rows(64)
    for activation in ("jumprelu", "relu", "matryoshka_batchtopk"):
        sae = sw.SAE(n_units=32, activation=activation, k=4, epochs=1, seed=0)
        sae.fit(X, progress=False).save(f"{tmp_path}/{activation}")
        sw.SAE.load(f"{tmp_path}/{activation}").partial_fit(X)
        sw.SAE.from_module(sae.model_).partial_fit(X)


@pytest.mark.parametrize("sizes", [np.array(16), torch.tensor(16)], ids=["numpy", "torch"])
def test_a_zero_dimensional_array_of_prefix_sizes_is_named(sizes: object) -> None:
    # has __iter__ but iterating raised the raw "TypeError: iteration over a 0-d array"
    with pytest.raises(TypeError, match=r"prefix_sizes must be"):
        sw.SAE(activation="matryoshka_batchtopk").set_params(prefix_sizes=sizes)
    with pytest.raises(TypeError, match=r"prefix_sizes must be"):
        sw.SAEConfig(d_in=4, n_units=64, activation="matryoshka_batchtopk", k=2, prefix_sizes=sizes)
    cfg = sw.SAEConfig(4, 64, "matryoshka_batchtopk", 2, prefix_sizes=np.array([16]))
    assert cfg.prefix_sizes == (16, 64)


def test_a_store_writer_refuses_complex_rows_and_fields_before_writing(tmp_path: Path) -> None:
    # complex rows were stored as their real part without a word; a complex field was written
    # into a store that ActivationStore then refused to open ("'fields' must map names to
    # numeric dtypes"), so the rows written with it were lost
    from sae_widgets.data.store import ActivationStore, StoreWriter

    X = _rows(5)
    with StoreWriter(tmp_path / "rows", 6) as writer:
        with pytest.raises(TypeError, match=r"X must hold numbers, real ones"):
            writer.append(X.astype(np.complex64))
        with pytest.raises(TypeError, match=r"fields\['lab'\] must hold numbers, real ones"):
            writer.append(X, {"lab": np.arange(5) * 1j})
        writer.append(X, {"lab": np.arange(5)})
    store = ActivationStore(tmp_path / "rows")
    np.testing.assert_array_equal(store.X[:], X)


@pytest.mark.parametrize(
    "first, later",
    [
        (np.arange(3), np.array([0.5, 1.5, 2.5])),  # stored as 0, 1, 2
        (np.arange(3) > 0, np.arange(3)),  # 2 stored as True
        (np.arange(3), np.arange(3) * 1j),  # a ComplexWarning, the imaginary part dropped
        (np.arange(3), np.array([2**70] * 3, dtype=object)),  # a raw OverflowError
    ],
    ids=["floats-into-ints", "ints-into-bools", "complex", "objects"],
)
def test_a_store_field_keeps_its_kind_across_appends(
    tmp_path: Path, first: np.ndarray, later: np.ndarray
) -> None:
    from sae_widgets.data.store import ActivationStore, StoreWriter

    X = np.ones((3, 2), np.float32)
    with StoreWriter(tmp_path / "s", 2) as writer:
        writer.append(X, {"f": first})
        with pytest.raises(TypeError, match=r"fields\['f'\] "):
            writer.append(X, {"f": later})
        writer.append(X, {"f": first.astype(np.int8) if first.dtype.kind == "i" else first})
    stored = ActivationStore(tmp_path / "s").fields["f"]
    np.testing.assert_array_equal(stored, np.concatenate([first, first]))


def _autoencoder_state(m: int = 12, d: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "encoder.weight": torch.randn(m, d, generator=g),
        "encoder.bias": torch.zeros(m),
        "decoder.weight": torch.randn(d, m, generator=g),
        "bias": torch.zeros(d),
    }


def test_a_dictionary_learning_state_dict_with_sparse_tensors_loads_as_dense(
    tmp_path: Path,
) -> None:
    # torch.save keeps a sparse tensor sparse; reading it reached torch's raw "RuntimeError:
    # unsupported memory format option Contiguous"
    state = _autoencoder_state()
    torch.save({**state, "encoder.weight": state["encoder.weight"].to_sparse()}, tmp_path / "ae.pt")
    (tmp_path / "dense").mkdir()
    torch.save(state, tmp_path / "dense" / "ae.pt")
    X = _rows(5)
    np.testing.assert_array_equal(
        sw.SAE.load(tmp_path).transform(X), sw.SAE.load(tmp_path / "dense").transform(X)
    )


def test_a_checkpoint_with_complex_weights_is_refused_in_every_layout(tmp_path: Path) -> None:
    # SAELens' reader (and dictionary_learning's JumpReLU threshold, biases) called .float()
    # before checking: a complex W_enc loaded as its real part, with only a torch warning
    from safetensors.torch import load_file, save_file

    X = _rows(40)
    sw.SAE(n_units=12, k=3, epochs=1, seed=0).fit(X, progress=False).save(tmp_path / "ours")
    weights = load_file(str(tmp_path / "ours" / "sae_weights.safetensors"))
    weights["W_enc"] = weights["W_enc"].to(torch.complex64) + 1j
    save_file(weights, str(tmp_path / "ours" / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match=r"'W_enc' holds complex numbers"):
        sw.SAE.load(tmp_path / "ours")
    (tmp_path / "dl").mkdir()
    state = _autoencoder_state()
    torch.save({**state, "bias": state["bias"].to(torch.complex64)}, tmp_path / "dl" / "ae.pt")
    with pytest.raises(ValueError, match=r"'bias' holds complex numbers"):
        sw.SAE.load(tmp_path / "dl")


def _digits_npz(path: Path, **arrays: object) -> str:
    X = sw.datasets.digits().X[:50]
    np.savez(path, X=X, **arrays)  # type: ignore[arg-type]
    return str(path)


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("cli") / "ck"
    X = sw.datasets.digits().X[:200]
    sw.SAE(n_units=16, k=2, epochs=1, seed=0).fit(X, progress=False).save(folder)
    return str(folder)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (np.array(3), "one label per sample"),  # a raw IndexError traceback
        (np.array([None] * 50, dtype=object), "'labels' cannot be read"),  # blamed the vectors
    ],
    ids=["scalar", "objects"],
)
def test_cli_eval_names_labels_it_cannot_use_in_one_line(
    digits_checkpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    labels: np.ndarray,
    fragment: str,
) -> None:
    from sae_widgets.cli import main

    data = _digits_npz(tmp_path / "data.npz", labels=labels)
    assert main(["eval", digits_checkpoint, "--data", data, "--model", "digits-mlp"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_cli_reads_the_vectors_of_an_npz_whose_other_arrays_hold_objects(
    digits_checkpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # every array of the .npz was loaded to pick X: an object array beside it (metadata)
    # made the vectors "unreadable", --key X included
    from sae_widgets.cli import main

    data = _digits_npz(tmp_path / "data.npz", meta=np.array([{"a": 1}], dtype=object))
    for key in ([], ["--key", "X"]):
        assert main(["eval", digits_checkpoint, "--data", data, "--json", *key]) == 0
        assert '"fvu"' in capsys.readouterr().out


@pytest.fixture(scope="module")
def summary_inputs() -> tuple[A.CodeStore, np.ndarray]:
    X = _rows(60)
    sae = sw.SAE(n_units=10, k=3, epochs=1, seed=0).fit(X, progress=False)
    return A.CodeStore.from_sae(sae, X), sae.components_


@pytest.mark.parametrize(
    "bad, error",
    [
        (lambda D: D.astype(np.complex128) * 1j, TypeError),  # ranked by the real part (0)
        (lambda D: D.astype(str), TypeError),  # parsed as numbers
        (lambda D: np.where(np.arange(10)[:, None] == 3, np.nan, D), ValueError),  # NaN cosines
    ],
    ids=["complex", "strings", "nan"],
)
def test_unit_summary_refuses_a_decoder_that_is_not_finite_real_numbers(
    summary_inputs: tuple[A.CodeStore, np.ndarray], bad: object, error: type
) -> None:
    store, D = summary_inputs
    with pytest.raises(error, match=r"decoder must"):
        A.unit_summary(store, 0, bad(D))  # type: ignore[operator]
    assert len(A.unit_summary(store, 0, D.astype(np.float16)).nearest_units) == 8


@pytest.mark.parametrize(
    "seed, error", [(-1, ValueError), ("a", TypeError), (1.5, TypeError), (True, TypeError)]
)
def test_analysis_functions_name_a_bad_seed(
    summary_inputs: tuple[A.CodeStore, np.ndarray], seed: object, error: type
) -> None:
    # numpy's raw "expected non-negative integer" / "unrecognized seed string" / "seed must
    # be integer" from default_rng, scikit-learn's InvalidParameterError from PCA; True was 1
    store, D = summary_inputs
    coords = np.random.default_rng(0).standard_normal((300, 2))
    calls = [
        lambda s: A.unit_summary(store, 0, D, seed=s),
        lambda s: A.pca_projection(coords, seed=s),  # scikit-learn's InvalidParameterError
        lambda s: A.display_subset(coords, 10, seed=s),
        lambda s: A.default_heatmap_rows(300, cap=5, seed=s),
    ]
    for call in calls:
        with pytest.raises(error, match=r"seed must be"):
            call(seed)
        call(np.int64(3))
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*32"):
        A.pca_projection(coords, seed=2**40)


@pytest.mark.parametrize("n_samples, error", [(-1, ValueError), ("x", TypeError), (5.0, TypeError)])
def test_default_heatmap_rows_names_a_bad_sample_count(n_samples: object, error: type) -> None:
    # numpy's raw "a must be a positive integer unless no samples are taken", a bare
    # "'<' not supported between instances of 'str' and 'int'"
    with pytest.raises(error, match=r"n_samples must be"):
        A.default_heatmap_rows(n_samples)  # type: ignore[arg-type]
    assert list(A.default_heatmap_rows(np.int64(3))) == [0, 1, 2]


@pytest.mark.parametrize("store", [np.ones((4, 3)), None], ids=["array", "none"])
def test_functions_of_a_code_store_name_anything_else(store: object) -> None:
    # each was a bare AttributeError ("'numpy.ndarray' object has no attribute 'n_samples'")
    from sae_widgets.analysis.unit_stats import unit_stats

    calls = [
        lambda: A.enrichment(store, [0]),  # type: ignore[arg-type]
        lambda: A.heatmap_matrix(store, [0], [0]),  # type: ignore[arg-type]
        lambda: A.default_heatmap_units(store),  # type: ignore[arg-type]
        lambda: A.unit_summary(store, 0, np.eye(3)),  # type: ignore[arg-type]
        lambda: unit_stats(store),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"store must be a CodeStore"):
            call()


def test_a_callback_returning_a_numpy_false_stops_training() -> None:
    # `return np.isfinite(metrics["loss"])` gives np.False_, which `is False` missed: the fit
    # trained on as if the callback had said nothing
    X = _rows(64)
    sae = sw.SAE(n_units=8, k=2, epochs=2, batch_size=16, log_every=1, seed=0)
    sae.fit(X, callbacks=lambda metrics: np.bool_(False), progress=False)
    assert sae.stop_reason_ == "callback" and sae.n_steps_ == 1
    sae.fit(X, callbacks=lambda metrics: np.isfinite(metrics["loss"]), progress=False)
    assert sae.stop_reason_ is None and sae.n_steps_ == sae.fit_steps_


def test_a_callback_that_edits_its_metrics_leaves_the_history_intact() -> None:
    # callbacks got the very dict appended to history_: one that popped or cleared keys (to
    # reformat them for a logger) emptied the recorded history
    X = _rows(64)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=16, log_every=1, seed=0)
    sae.fit(X, callbacks=lambda metrics: metrics.clear(), progress=False)
    assert all({"step", "fvu", "l0"} <= set(entry) for entry in sae.history_)
    sae.partial_fit(X, callbacks=lambda metrics: metrics.pop("fvu"))
    assert all("fvu" in entry for entry in sae.history_)


_DTYPES = st.sampled_from(
    ["bool", "int8", "uint16", "int64", "float16", "float32", "float64", "complex64", "<U4"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.5]),
    ),
    dtype=_DTYPES,
    layout=st.sampled_from(["dense", "fortran", "reversed", "csr", "csc", "coo", "tensor"]),
)
def test_a_code_store_of_any_real_dtype_and_layout_counts_like_float32(
    codes: np.ndarray, dtype: str, layout: str
) -> None:
    import scipy.sparse as sp_

    typed = codes.astype(dtype)
    given = {
        "dense": lambda a: a,
        "fortran": np.asfortranarray,
        "reversed": lambda a: a[::-1][::-1],
        "csr": sp_.csr_matrix,
        "csc": sp_.csc_matrix,
        "coo": sp_.coo_matrix,
        "tensor": lambda a: torch.from_numpy(np.ascontiguousarray(a)),
    }[layout]
    try:
        value = given(typed)
    except (TypeError, ValueError, RuntimeError):
        return  # a layout that cannot hold this dtype (a string tensor, a sparse str matrix)
    if np.dtype(dtype).kind not in "biuf":
        with pytest.raises(TypeError, match=r"codes must"):
            A.CodeStore(value)
        return
    store = A.CodeStore(value)
    expected = typed.astype(np.float32)
    np.testing.assert_array_equal(store.counts, np.count_nonzero(expected, axis=0))
    np.testing.assert_array_equal(store.dense(np.arange(len(codes))), expected)
