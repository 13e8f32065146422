"""sae.save / SAE.load: bit-exact round trips, the metadata block, training after loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.exceptions import NotFittedError

import sae_widgets as sw
from sae_widgets.sae.checkpoint import describe_checkpoint, save_sae
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

D_IN, N_UNITS = 12, 20


def _random_sae(activation: str, seed: int = 0) -> sw.SAE:
    """A fitted estimator around random weights (no training needed for io tests)."""
    gen = torch.Generator().manual_seed(seed)
    k = 3 if activation in ("topk", "batchtopk") else None
    module = SparseAutoencoder(SAEConfig(D_IN, N_UNITS, activation, k), generator=gen)
    with torch.no_grad():
        module.b_enc.copy_(torch.randn(N_UNITS, generator=gen) * 0.1)
        module.b_dec.copy_(torch.randn(D_IN, generator=gen))
        if activation == "jumprelu":
            module.log_threshold.copy_(torch.randn(N_UNITS, generator=gen))
        if activation == "batchtopk":
            module.batch_threshold.copy_(torch.rand(N_UNITS, generator=gen) * 0.3)
    return sw.SAE.from_module(module, epochs=3, batch_size=64, lr=1e-3, seed=seed)


def _inputs(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, D_IN)).astype(np.float32) + 0.5


@pytest.mark.parametrize("activation", ["relu", "topk", "batchtopk", "jumprelu"])
def test_save_then_load_is_bit_exact(tmp_path: Path, activation: str) -> None:
    sae = _random_sae(activation)
    sae.save(tmp_path / "run")
    loaded = sw.SAE.load(tmp_path / "run")

    saved_w, loaded_w = sae.model_.weights(), loaded.model_.weights()
    assert saved_w.keys() == loaded_w.keys()
    for name in saved_w:
        assert torch.equal(saved_w[name], loaded_w[name]), name
    X = _inputs()
    codes = sae.transform(X)
    assert (codes != 0).any()
    assert np.array_equal(loaded.transform(X), codes)
    assert np.array_equal(loaded.inverse_transform(codes), sae.inverse_transform(codes))
    assert loaded.get_params() == sae.get_params()


def test_load_accepts_str_and_path_and_save_needs_a_fitted_sae(tmp_path: Path) -> None:
    sae = _random_sae("topk")
    sae.save(str(tmp_path / "a"))
    assert np.array_equal(sw.SAE.load(str(tmp_path / "a")).components_, sae.components_)
    with pytest.raises(NotFittedError):
        sw.SAE().save(tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="not an SAE checkpoint"):
        sw.SAE.load(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[sw.SAE, Path, np.ndarray]:
    X = sw.datasets.digits().X
    sae = sw.SAE(n_units=32, activation="topk", k=4, epochs=1, seed=0).fit(X, progress=False)
    folder = tmp_path_factory.mktemp("ckpt") / "digits"
    sae.save(folder)
    return sae, folder, X


def test_metadata_block_keeps_version_params_history_and_metrics(
    trained: tuple[sw.SAE, Path, np.ndarray],
) -> None:
    sae, folder, _ = trained
    cfg = json.loads((folder / "cfg.json").read_text())
    meta = cfg["metadata"]
    assert meta["sae_widgets_version"] == sw.__version__
    assert (meta["activation"], meta["k"]) == ("topk", 4)
    assert meta["params"]["n_units"] == 32 and meta["params"]["epochs"] == 1
    assert meta["training"]["n_steps"] == sae.n_steps_ > 0
    assert meta["training"]["history"] == sae.history_
    last = sae.history_[-1]
    assert meta["metrics"]["fvu"] == last["fvu"] and meta["metrics"]["l0"] == last["l0"]


def test_given_metrics_are_written_and_info_describes_the_folder(
    tmp_path: Path, trained: tuple[sw.SAE, Path, np.ndarray]
) -> None:
    sae, _, _ = trained
    save_sae(sae, tmp_path / "run", metrics={"fvu": 0.25, "mse": 0.5, "l0": 4.0})
    info = describe_checkpoint(tmp_path / "run")
    assert info["layout"] == "sae_widgets"
    assert (info["activation"], info["k"], info["d_in"], info["n_units"]) == ("topk", 4, 64, 32)
    assert info["shapes"] == {"W_enc": [64, 32], "b_enc": [32], "W_dec": [32, 64], "b_dec": [64]}
    assert info["metrics"] == {"fvu": 0.25, "mse": 0.5, "l0": 4.0}
    assert info["training"]["n_steps"] == sae.n_steps_
    assert info["training"]["logged_steps"] == len(sae.history_)


def test_a_loaded_sae_keeps_training(trained: tuple[sw.SAE, Path, np.ndarray]) -> None:
    sae, folder, X = trained
    loaded = sw.SAE.load(folder)
    assert loaded.history_ == sae.history_
    before = loaded.components_.copy()
    loaded.partial_fit(X[:512])
    assert loaded.n_steps_ > 0
    assert not np.array_equal(loaded.components_, before)
    assert len(loaded.history_) > len(sae.history_)
    assert loaded.transform(X[:5]).shape == (5, 32)
    refit = sw.SAE.load(folder).fit(X[:300], progress=False)  # fit starts afresh, as sklearn's
    assert refit.transform(X[:5]).shape == (5, 32)


def _saelens_encode(folder: Path, x: np.ndarray) -> np.ndarray:
    """SAELens v6 inference from the files alone, by key name (sae_lens/saes/*.py)."""
    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae_weights.safetensors"))
    sae_in = torch.from_numpy(x) - w["b_dec"] * cfg["apply_b_dec_to_input"]
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    if cfg["architecture"] == "standard":
        return pre.relu().numpy()
    if cfg["architecture"] == "topk":
        values, indices = pre.topk(cfg["k"], dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu()).numpy()
    assert cfg["architecture"] == "jumprelu"
    return (pre.relu() * (pre > w["threshold"].relu())).numpy()


def test_a_trained_sae_opens_in_saelens_with_its_input_scaling_folded(
    trained: tuple[sw.SAE, Path, np.ndarray],
) -> None:
    sae, folder, X = trained
    codes = sae.transform(X)
    np.testing.assert_allclose(_saelens_encode(folder, X), codes, rtol=1e-5, atol=1e-5)
    w = load_file(str(folder / "sae_weights.safetensors"))
    x_hat = torch.from_numpy(codes) @ w["W_dec"] + w["b_dec"]
    np.testing.assert_allclose(x_hat.numpy(), sae.inverse_transform(codes), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "topk", "batchtopk", "jumprelu"])
def test_saved_folder_gives_our_codes_under_saelens_formulas(
    tmp_path: Path, activation: str
) -> None:
    sae = _random_sae(activation)
    sae.save(tmp_path / "run")
    X = _inputs()
    np.testing.assert_allclose(_saelens_encode(tmp_path / "run", X), sae.transform(X), atol=1e-6)


def test_a_loaded_sae_continues_its_step_count(trained: tuple[sw.SAE, Path, np.ndarray]) -> None:
    # steps restarted at 1 after a load, so history_ went backwards (a TrainingMonitor then
    # took the continuation for a new run and dropped the saved curve)
    sae, folder, X = trained
    loaded = sw.SAE.load(folder)
    assert (loaded.n_steps_, loaded.n_samples_seen_) == (sae.n_steps_, sae.n_samples_seen_)
    loaded.set_params(batch_size=128).partial_fit(X[:512])
    assert loaded.n_steps_ == sae.n_steps_ + 4
    assert loaded.n_samples_seen_ == sae.n_samples_seen_ + 512
    steps = [entry["step"] for entry in loaded.history_]
    assert steps == sorted(set(steps)) and steps[-1] == loaded.n_steps_


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", -5, r"lr must be None or a finite number in \(0, 1\]; got -5"),
        ("epochs", 0, "epochs must be a positive integer; got 0"),
        ("precision", "fp64", "precision must be one of 'fp32', 'bf16'; got 'fp64'"),
        ("batch_size", "64", "batch_size must be a positive integer; got '64'"),
        ("shuffle", 1, "shuffle must be a bool"),
        ("seed", -1, "seed must be None or an integer"),
    ],
)
def test_load_refuses_saved_parameters_the_constructor_refuses(
    trained: tuple[sw.SAE, Path, np.ndarray],
    tmp_path: Path,
    field: str,
    value: object,
    message: str,
) -> None:
    # fuzz report A item 9: these loaded, and partial_fit or transform failed later
    sae = trained[0]
    folder = tmp_path / "edited"
    sae.save(folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["params"][field] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=rf"cfg\.json: metadata\.params\.{field} .*{message}"):
        sw.SAE.load(folder)


def test_every_saved_activation_loads_and_keeps_training(tmp_path: Path) -> None:
    X = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
    for activation in ("relu", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk"):
        options = dict(lr=1e-3, warmup_steps=0, grad_clip=None, shuffle=False, log_every=3)
        sae = sw.SAE(n_units=8, k=2, activation=activation, epochs=1, batch_size=32, **options)
        sae.fit(X, progress=False).save(tmp_path / activation)
        loaded = sw.SAE.load(tmp_path / activation)
        assert loaded.get_params() == sae.get_params()
        loaded.partial_fit(X)
        assert loaded.transform(X).shape == (64, 8)
