"""Leftovers of round 8: training resumed from a checkpoint, parameters set before a save,
steering a half-precision layer, codes of inputs near 1e30, the ProbeSlider after
selection.clear(), over-long file names."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_fits import fit_tiny

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")

X = np.random.default_rng(0).normal(size=(192, 6)).astype(np.float32)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic on both sides of each comparison
    yield
    torch.set_num_threads(threads)


# ---- partial_fit after save/load continues the same training -----------------------------------


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu", "relu"])
def test_partial_fit_after_a_save_and_load_trains_as_without_them(
    activation: str, tmp_path: Path, one_thread
) -> None:
    # the loaded SAE started a fresh Adam (no moments, warm-up again, a new input scale):
    # its next partial_fit moved the weights by up to 0.05 more than the unsaved one's
    first = sw.SAE(n_units=8, k=2, batch_size=32, activation=activation, seed=0)
    first.partial_fit(X[:96])
    first.save(tmp_path / "run", training_state=True)
    loaded = sw.SAE.load(tmp_path / "run")
    unpickled = pickle.loads(pickle.dumps(first))
    for sae in (first, loaded, unpickled):
        sae.partial_fit(X[96:])
        sae.partial_fit(X[:64])
    np.testing.assert_allclose(loaded.components_, first.components_, atol=1e-6)
    np.testing.assert_allclose(loaded.transform(X), first.transform(X), atol=1e-5)
    np.testing.assert_allclose(unpickled.components_, first.components_, atol=1e-6)
    assert [h["step"] for h in loaded.history_] == [h["step"] for h in first.history_]
    assert loaded.n_samples_seen_ == first.n_samples_seen_ == 256
    np.testing.assert_allclose(
        [h["lr"] for h in loaded.history_], [h["lr"] for h in first.history_]
    )


def test_a_fit_saved_and_loaded_keeps_training_like_the_fit_itself(
    tmp_path: Path, one_thread
) -> None:
    fitted = fit_tiny(X)
    fitted.save(tmp_path / "run", training_state=True)
    loaded = sw.SAE.load(tmp_path / "run")
    loaded.partial_fit(X[:64])
    fitted.partial_fit(X[:64])
    np.testing.assert_allclose(loaded.components_, fitted.components_, atol=1e-6)


def test_a_checkpoint_without_training_state_still_loads_and_trains(tmp_path: Path) -> None:
    # the default save, older saves and other libraries' hold no training state: a fresh
    # optimiser, the counts going on
    fitted = fit_tiny(X)
    fitted.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "cfg.json",
        "sae_weights.safetensors",
    ]
    loaded = sw.SAE.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.transform(X), fitted.transform(X), atol=1e-6)
    steps = loaded.n_steps_
    loaded.partial_fit(X[:64])
    assert loaded.n_steps_ == steps + 2 and np.isfinite(loaded.components_).all()


# ---- parameters set after the fit are those the loaded SAE has ---------------------------------

# A value unlike the default for every parameter set_params accepts (device: `load(device=)`).
CHANGED = {
    "n_units": 12,
    "activation": "relu",
    "k": 3,
    "prefix_sizes": (4, 12),
    "l1_coeff": 2.5,
    "l0_coeff": 0.01,
    "epochs": 3,
    "batch_size": 16,
    "lr": 0.01,
    "seed": 7,
    "warmup_steps": 5,
    "decay_fraction": 0.25,
    "grad_clip": 2.0,
    "aux_coeff": 0.1,
    "k_aux": 4,
    "dead_window": 1000,
    "min_steps_per_epoch": 4,
    "shuffle": False,
    "log_every": 2,
    "shuffle_buffer": 64,
    "precision": "bf16",
}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_parameter_set_before_a_save_is_kept_by_load(name: str, tmp_path: Path) -> None:
    # k=3 (and n_units, activation, prefix_sizes) set after the fit came back as the fitted
    # model's: the next fit of the loaded SAE was not the one the user had asked for
    assert set(CHANGED) == set(sw.SAE().get_params()) - {"device"}  # every parameter
    sae = fit_tiny(X)
    assert sae.get_params()[name] != CHANGED[name]
    sae.set_params(**{name: CHANGED[name]})
    sae.save(tmp_path / "run")
    loaded = sw.SAE.load(tmp_path / "run")
    assert loaded.get_params() == sae.get_params()
    assert loaded.model_.cfg == sae.model_.cfg  # the weights' own architecture


def test_a_k_set_before_a_save_is_the_next_fits_k(tmp_path: Path) -> None:
    sae = fit_tiny(X).set_params(k=3)
    sae.save(tmp_path / "run")
    loaded = sw.SAE.load(tmp_path / "run")
    assert loaded.k == 3 and loaded.model_.cfg.k == 2  # the weights are still the k=2 fit
    with pytest.raises(ValueError, match=r"partial_fit trains the fitted model on: .*k=3"):
        loaded.partial_fit(X)  # as the unsaved SAE refuses
    with pytest.raises(ValueError, match=r"partial_fit trains the fitted model on: .*k=3"):
        sae.partial_fit(X)
    assert loaded.fit(X[:64], progress=False).model_.cfg.k == 3


# ---- the ProbeSlider after selection.clear() ----------------------------------------------------


@pytest.fixture(scope="module")
def shapes() -> sw.Dataset:
    return sw.datasets.shapes(n=40, size=8, seed=0)


def test_the_probe_slider_draws_nothing_stale_once_the_selection_is_cleared(shapes) -> None:
    # after clear() (probe_attribute None) it swept the dropdown's last attribute again and
    # kept drawing its curves, bars and pictures, unlike every other view
    ex = sw.Explorer(fit_tiny(shapes.X), shapes)
    probe = sw.ProbeSlider(ex, "scale")
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 3
    assert probe.result is not None and len(probe.bars.x) > 0
    ex.selection.clear()
    assert heatmap.card.figure.layout.display == "none"  # as the heatmap's sample card
    assert probe.result is None and len(probe.shown_units) == 0
    assert probe.body.layout.display == "none" and probe.slider.layout.display == "none"
    assert probe.attribute.value is None and "pick an attribute" in probe.sample_text.value
    assert probe.legend.units == []
    probe.attribute.value = "scale"  # picking the last attribute again probes it
    assert ex.selection.probe_attribute == "scale"
    assert probe.result is not None and probe.result.attribute == "scale"
    assert probe.body.layout.display is None and probe.slider.layout.display is None
    assert len(probe.shown_units) > 0 and "sample <b>0</b>" in probe.sample_text.value
    ex.selection.clear()
    ex.selection.probe_attribute = "x"  # or from Python
    assert probe.result is not None and probe.result.attribute == "x"
    assert probe.attribute.value == "x"


# ---- inverse_transform takes every code transform gives -----------------------------------------


def test_codes_of_inputs_near_1e30_are_taken_back_by_inverse_transform() -> None:
    # inputs up to 1e30 are accepted, and their codes exceed it (7e30 here): inverse_transform
    # refused numpy and scipy codes above 1e30 ("Z holds values as large as 7.05e+30"), torch
    # ones not
    sae = fit_tiny(X)
    W_enc = sae.model_.W_enc.detach().numpy()
    rows = np.sign(W_enc.T).astype(np.float32) * np.float32(0.99e30)  # along each unit
    Z = sae.transform(rows)
    assert np.abs(Z).max() > 1e30 and np.isfinite(Z).all()
    expected = sae.inverse_transform(torch.from_numpy(Z)).numpy()
    assert np.isfinite(expected).all()
    for codes in (Z, sae.encode_sparse(rows), Z.astype(np.float64)):
        X_hat = sae.inverse_transform(codes)
        np.testing.assert_allclose(X_hat, expected, rtol=1e-5, atol=np.abs(expected).max() * 1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_codes_whose_reconstruction_overflows_are_refused_naming_z(sparse: bool) -> None:
    sae = fit_tiny(X)
    Z = np.full((2, 8), 3e38, np.float32)
    with pytest.raises(ValueError, match=r"Z is too large: its reconstruction overflows float32"):
        sae.inverse_transform(sp.csr_matrix(Z) if sparse else Z)
    with pytest.raises(ValueError, match=r"Z holds values as large as 1e\+39; at most 3.4e\+38"):
        sae.inverse_transform(np.full((2, 8), 1e39))


# ---- steering a half-precision layer past its range ---------------------------------------------


def _half_model() -> tuple[torch.nn.Module, sw.SAE, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    inputs = torch.from_numpy(X[:32])
    with torch.no_grad():
        hidden = model[0](inputs)
    sae = fit_tiny(hidden.numpy())
    return model.half(), sae, inputs.half()


@pytest.mark.parametrize("edit", ["steer", "set", "add"])
def test_an_edit_that_overflows_a_float16_layer_is_refused_naming_it(edit: str) -> None:
    # 1e6 * a decoder row is far past float16's 65504: the layer's output became inf and the
    # model's NaN, without a word
    model, sae, inputs = _half_model()
    with torch.no_grad(), sw.Intervention(model, "0", sae, **{edit: {1: 1.0}}):
        assert torch.isfinite(model(inputs)).all()  # a push the layer holds
    expected = rf"{edit}\[1\]=1e\+06 overflows the layer's torch.float16 output.*at most"
    with torch.no_grad(), sw.Intervention(model, "0", sae, **{edit: {1: 1e6}}):
        with pytest.raises(ValueError, match=expected):
            model(inputs)
    with pytest.raises(ValueError, match=expected):  # edit_rows too, numpy float16 as well
        sw.Intervention(model, "0", sae, **{edit: {1: 1e6}}).edit_rows(np.zeros((2, 6), "f2"))
    # a float32 layer takes the same push
    rows = sw.Intervention(model, "0", sae, **{edit: {1: 1e6}}).edit_rows(np.zeros((2, 6), "f4"))
    assert np.isfinite(rows).all()


def test_steering_units_whose_pushes_overflow_together_is_refused() -> None:
    model, sae, inputs = _half_model()
    W = sae.model_.W_dec.detach()
    column = int(W[0].abs().argmax())
    alpha = 0.75 * 65504 / float(W[0, column].abs())  # each push alone fits float16
    # a unit pushing that value the same way, by over a third of its largest push
    share = (W[:, column] * torch.sign(W[0, column])) / W.abs().max(dim=1).values
    unit = next(u for u in range(1, 8) if float(share[u]) > 0.34)
    alpha_u = 0.75 * 65504 / float(W[unit].abs().max())
    steer = {
        0: float(torch.sign(W[0, column])) * alpha,
        unit: float(torch.sign(W[unit, column])) * alpha_u,
    }
    with torch.no_grad(), sw.Intervention(model, "0", sae, steer=steer):
        with pytest.raises(ValueError, match=r"together the units move an output value"):
            model(inputs)


# ---- over-long file names -----------------------------------------------------------------------

LONG = "n" * 300  # past every file system's 255 bytes
NEAR = "n" * 240  # fits, but the staging sibling ".NAME.saving-PID-XXXXXXXX" does not


@pytest.mark.parametrize(
    ("name", "limit"), [(LONG, "at most 255 bytes"), (NEAR, "at most 223 bytes")]
)
def test_saving_under_an_over_long_name_is_refused_naming_folder(
    tmp_path: Path, name: str, limit: str
) -> None:
    # the OS's bare "[Errno 36] File name too long: '/tmp/.../nnnn...'" (for NEAR: of the
    # staging folder, whose name the user never typed)
    sae = fit_tiny(X)
    pattern = rf"folder: the name 'nnnn.*'\.\.\.'n+' is {len(name)} bytes long; expected {limit}"
    with pytest.raises(ValueError, match=pattern):
        sae.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    sae.save(tmp_path / name[:223])  # the longest name that saves
    assert sw.SAE.load(tmp_path / name[:223]).n_units == 8


def test_reading_an_over_long_name_is_refused_naming_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^folder: the name .* is 300 bytes long"):
        sw.SAE.load(tmp_path / LONG)
    with pytest.raises(ValueError, match=r"^path: the name .* is 300 bytes long"):
        sw.ActivationStore(tmp_path / LONG)
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # every name fits, the path (4,200+) does not
    with pytest.raises(ValueError, match=r"^folder: the path .* bytes long; expected at most"):
        sw.SAE.load(deep)


def test_writing_a_store_under_an_over_long_name_is_refused_naming_out(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(6, 4))
    for name in (LONG, NEAR):
        with pytest.raises(ValueError, match=rf"^out: the name .* is {len(name)} bytes long"):
            sw.collect_activations(model, layer="0", data=X, out=tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_names_the_over_long_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sae_widgets.cli import main

    train = ["train", "--data", "digits", "--units", "8", "--k", "2", "--epochs", "1"]
    assert main([*train, "--out", str(tmp_path / NEAR)]) == 2
    assert "error: --out: the name 'nnnn" in capsys.readouterr().err
    assert main(["info", str(tmp_path / LONG)]) == 2
    assert "error: checkpoint: the name 'nnnn" in capsys.readouterr().err
    assert main([*train, "--data", str(tmp_path / (LONG + ".npy"))]) == 2
    assert "error: --data: the name 'nnnn" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


class _Stop(Exception):
    pass


@pytest.mark.parametrize("exchange", [True, False])
@pytest.mark.parametrize("point", ["staged", "aside", "swapped"])
def test_a_save_stopped_at_any_step_leaves_weights_and_training_state_of_one_sae(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, exchange: bool, one_thread
) -> None:
    # the training state is one more file: it must be staged and swapped with the weights,
    # never the old weights with the new optimiser state
    from sae_widgets.sae import folder_swap

    first, second = fit_tiny(X, seed=1), fit_tiny(X, seed=2)
    first.save(tmp_path / "run", training_state=True)
    monkeypatch.setattr(folder_swap, "use_exchange", exchange)

    def stop(at: str) -> None:
        if at == point:
            raise _Stop(at)

    monkeypatch.setattr(folder_swap, "fault_hook", stop)
    try:
        second.save(tmp_path / "run", training_state=True)
    except _Stop:
        pass
    monkeypatch.setattr(folder_swap, "fault_hook", None)
    loaded = sw.SAE.load(tmp_path / "run")
    same = first if np.array_equal(loaded.components_, first.components_) else second
    np.testing.assert_array_equal(loaded.components_, same.components_)
    reference = pickle.loads(pickle.dumps(same))
    loaded.partial_fit(X[:64])
    reference.partial_fit(X[:64])
    np.testing.assert_allclose(loaded.components_, reference.components_, atol=1e-6)


def test_training_state_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="training_state must be True or False; got 'yes'"):
        fit_tiny(X).save(tmp_path / "run", training_state="yes")  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()
