"""`sae-widgets` train / eval / info: in-process through main(), and the installed script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

import sae_widgets as sw
from sae_widgets.cli import main
from sae_widgets.sae.training import Trainer

SMALL = ["--units", "16", "--epochs", "1", "--quiet"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sae-widgets: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def digits_X() -> np.ndarray:
    return sw.datasets.digits().X[:400]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint written by the CLI itself (once for the module: training is the slow part)."""
    out = tmp_path_factory.mktemp("cli") / "digits"
    argv = ["train", "--data", "digits", "--n-samples", "400", "--k", "4", *SMALL]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    return out


def test_train_prints_metrics_of_the_saved_checkpoint(
    trained: Path, digits_X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    sae = sw.SAE.load(trained)
    assert (sae.activation, sae.k, sae.n_units, sae.n_features_in_) == ("topk", 4, 16, 64)
    meta = json.loads((trained / "cfg.json").read_text())["metadata"]
    # The metadata keeps the metrics the command printed: those of the saved model on the data.
    assert meta["metrics"] == sw.metrics.evaluate(sae, digits_X)
    assert meta["params"]["epochs"] == 1


def test_train_json_and_table(
    tmp_path: Path, digits_X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "train",
        "--data",
        "digits",
        "--n-samples",
        "400",
        "--activation",
        "relu",
        "--l1-coeff",
        "3",
        *SMALL,
        "--out",
        str(tmp_path / "r"),
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["out"] == str((tmp_path / "r").absolute())
    assert (payload["activation"], payload["k"], payload["n_units"]) == ("relu", None, 16)
    assert payload["n_samples"] == 400 and payload["d_in"] == 64
    loaded = sw.SAE.load(tmp_path / "r")
    assert loaded.l1_coeff == 3.0
    assert payload["metrics"] == sw.metrics.evaluate(loaded, digits_X)

    code, out, err = run(
        capsys,
        "train",
        "--data",
        "digits",
        "--n-samples",
        "400",
        "--k",
        "2",
        "--units",
        "8",
        "--epochs",
        "1",
    )
    assert code == 0
    table = dict(line.split(None, 1) for line in out.strip().splitlines() if " " in line)
    assert {"fvu", "mse", "l0", "dead_fraction"} <= table.keys()
    assert float(table["l0"]) <= 2.0
    assert "not saved" in out
    assert "SAE training" in err  # the tqdm progress bar, on stderr


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".safetensors"])
def test_train_on_a_file_of_vectors(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    X = np.random.default_rng(0).normal(size=(300, 10)).astype(np.float32)
    path = tmp_path / f"acts{suffix}"
    extra: list[str] = []
    if suffix == ".npy":
        np.save(path, X)
    elif suffix == ".npz":
        np.savez(path, labels=np.zeros(300), acts=X)
        extra = ["--key", "acts"]
    else:
        save_numpy({"X": X, "other": np.ones(3, dtype=np.float32)}, str(path))
    code, out, _ = run(capsys, "train", "--data", str(path), *extra, "--k", "3", *SMALL, "--json")
    assert code == 0
    assert json.loads(out)["d_in"] == 10


def test_eval_matches_evaluate_on_ours_and_on_a_foreign_checkpoint(
    tmp_path: Path, trained: Path, digits_X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "eval", str(trained), "--data", "digits", "--json")
    assert code == 0
    payload = json.loads(out)
    all_digits = sw.datasets.digits().X
    assert payload["metrics"] == sw.metrics.evaluate(sw.SAE.load(trained), all_digits)
    assert payload["n_samples"] == len(all_digits)

    # a sparsify folder, as SparseCoder.save_to_disk writes it
    gen = torch.Generator().manual_seed(0)
    folder = tmp_path / "layers.3"
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"d_in": 64, "num_latents": 24, "k": 5}))
    tensors = {
        "encoder.weight": torch.randn(24, 64, generator=gen),
        "encoder.bias": torch.zeros(24),
        "W_dec": torch.randn(24, 64, generator=gen),
        "b_dec": torch.zeros(64),
    }
    save_file(tensors, str(folder / "sae.safetensors"))
    code, out, _ = run(capsys, "eval", str(folder), "--data", "digits", "--n-samples", "400")
    assert code == 0
    table = dict(line.split(None, 1) for line in out.strip().splitlines())
    expected = sw.metrics.evaluate(sw.SAE.load(folder), digits_X)
    assert float(table["l0"]) == pytest.approx(expected["l0"], rel=1e-3)
    assert float(table["fvu"]) == pytest.approx(expected["fvu"], rel=1e-3)


def test_info_describes_a_checkpoint(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", str(trained))
    assert code == 0
    table = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert table["layout"] == "sae_widgets"
    assert table["architecture"] == "topk (k=4)"
    assert (table["d_in"], table["n_units"]) == ("64", "16")
    assert "W_enc" in out and "64 x 16" in out
    code, out, _ = run(capsys, "info", str(trained), "--json")
    info = json.loads(out)
    assert info["shapes"]["W_dec"] == [16, 64]
    assert info["training"]["n_steps"] > 0 and info["metrics"]["l0"] <= 4


def test_help_on_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["info", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert out.startswith("usage: sae-widgets")
    assert "--activation" in run(capsys, "train", "--help")[1]


def test_user_mistakes_print_one_line_and_exit_2(
    tmp_path: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = ["train", "--quiet", "--epochs", "1"]
    assert_user_error(run(capsys, *train, "--data", str(tmp_path / "x.npy")), "does not exist")
    assert_user_error(run(capsys, *train, "--data", "mnist"), "--data must be one of")
    assert_user_error(run(capsys, *train, "--data", "digits", "--activation", "gelu"), "gelu")
    assert_user_error(run(capsys, *train, "--data", "digits", "--units", "0"), "--units")
    assert_user_error(run(capsys, *train, "--data", "digits", "--units", "8", "--k", "9"), "k")
    assert_user_error(
        run(capsys, *train, "--data", "digits", "--activation", "relu", "--k", "3"), "--k"
    )
    assert_user_error(run(capsys, *train), "--data")
    assert_user_error(run(capsys), "COMMAND")
    assert_user_error(run(capsys, "fly"), "invalid choice")

    np.save(tmp_path / "flat.npy", np.zeros(10, dtype=np.float32))
    assert_user_error(run(capsys, *train, "--data", str(tmp_path / "flat.npy")), "2-D")
    bad = np.ones((20, 4), dtype=np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert_user_error(run(capsys, *train, "--data", str(tmp_path / "nan.npy")), "NaN")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert_user_error(run(capsys, *train, "--data", str(tmp_path / "junk.npz")), "cannot read")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert_user_error(
        run(capsys, *train, "--data", "digits", "--out", str(keep)), "refusing to replace"
    )
    assert (keep / "notes.txt").read_text() == "mine"

    assert_user_error(
        run(capsys, "eval", str(trained), "--data", "shapes", "--n-samples", "5"),
        "1024 features",
        "d_in=64",
    )
    assert_user_error(run(capsys, "info", str(tmp_path / "nowhere")), "does not exist")
    assert_user_error(
        run(capsys, "info", str(keep)), "not an SAE checkpoint", "sae_weights.safetensors", "ae.pt"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("cfg.json", "sae_weights.safetensors"):
        data = (trained / name).read_bytes()
        (broken / name).write_bytes(data if name == "cfg.json" else data[: len(data) // 3])
    assert_user_error(run(capsys, "info", str(broken)), "truncated or corrupt")


def _script() -> Path:
    script = Path(sys.executable).with_name("sae-widgets")
    assert script.exists(), "install the package (pip install -e .) to get the entry point"
    return script


def test_installed_entry_point(trained: Path) -> None:
    done = subprocess.run(
        [str(_script()), "info", str(trained), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_units"] == 16
    done = subprocess.run(
        [str(_script()), "eval", str(trained), "--data", "nothing.npy"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "sae-widgets: error: data file 'nothing.npy' does not exist\n"


def test_eval_json_is_strict_json_when_a_metric_is_undefined(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one sample has no variance, so FVU is undefined: --json must still be valid JSON
    one = tmp_path / "one.npy"
    np.save(one, sw.datasets.digits().X[:1])
    code, out, _ = run(capsys, "eval", str(trained), "--data", str(one), "--json")
    assert code == 0
    payload = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
    assert payload["metrics"]["fvu"] is None
    assert payload["metrics"]["mse"] > 0


def test_n_samples_beyond_the_data_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 14 item 11: digits has 1797 samples; 5000 trained on 1797 without a word
    train = ["train", *SMALL, "--n-samples", "5000"]
    assert_user_error(run(capsys, *train, "--data", "digits"), "--n-samples 5000", "only 1797")
    np.save(tmp_path / "x.npy", np.ones((30, 4), dtype=np.float32))
    assert_user_error(
        run(capsys, *train, "--data", str(tmp_path / "x.npy")), "--n-samples 5000", "only 30"
    )


def test_an_unwritable_out_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 14 item 11: the error came only after the whole training run
    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(sw.SAE, "fit", must_not_train)
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "run"
    assert_user_error(
        run(capsys, "train", "--data", "digits", *SMALL, "--out", str(out)), "--out", "not a folder"
    )
    if os.geteuid() != 0:  # root writes anywhere: permissions cannot stop it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_user_error(
            run(capsys, "train", "--data", "digits", *SMALL, "--out", str(locked / "run")),
            "cannot write",
        )


def test_device_meta_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    # issue 14 item 11: printed a traceback
    assert_user_error(
        run(capsys, "train", "--data", "digits", *SMALL, "--device", "meta"), "--device 'meta'"
    )


def test_train_help_shows_the_defaults_and_they_are_the_estimators(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # issue 14 item 11: --k, --epochs, --batch-size hid their defaults
    from sae_widgets.cli_parser import TRAIN_DEFAULTS

    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    defaults = sw.SAE().get_params()
    options = text.split("options:", 1)[1]
    for option, name in (
        ("--k K", "k"),
        ("--epochs EPOCHS", "epochs"),
        ("--batch-size", "batch_size"),
    ):
        assert TRAIN_DEFAULTS[name] == defaults[name]
        own_help = options.split(option, 1)[1].split(" --", 1)[0]
        assert f"(default: {defaults[name]})" in own_help, option
    assert TRAIN_DEFAULTS["l1_coeff"] == defaults["l1_coeff"]
    for shown in ("(default: topk)", "(default: 256)", "--overwrite"):
        assert shown in text


def test_an_interrupted_run_never_replaces_a_checkpoint_without_overwrite(
    tmp_path: Path,
    digits_X: np.ndarray,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 14 item 1 (in-process; tests/test_faults.py sends a real SIGINT to the CLI)
    np.save(tmp_path / "x.npy", digits_X)
    good = tmp_path / "good"
    argv = ["train", "--data", str(tmp_path / "x.npy"), "--units", "16", "--k", "4", "--quiet"]
    assert main([*argv, "--epochs", "2", "--out", str(good)]) == 0
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    training, finished = threading.Event(), threading.Event()
    step = Trainer.train_step

    def stepping(self: Trainer, *args: object, **kwargs: object) -> object:
        training.set()
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", stepping)

    def ctrl_c_while_training() -> None:
        # once a step runs (fit's guard is in place), Ctrl-C; again after 30 s if the run
        # has not returned, so that no timing can leave it training its 100,000 epochs
        training.wait()
        while not finished.is_set():
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                os.kill(os.getpid(), signal.SIGINT)
            finished.wait(30.0)

    # Ctrl-C as an interactive Python has it: a runner started in the background (a
    # non-interactive shell's `&`) inherits SIGINT ignored, which fit leaves alone
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=ctrl_c_while_training, daemon=True)
    presser.start()
    try:
        code, _, err = run(capsys, *argv, "--epochs", "100000", "--out", str(good))
    finally:
        finished.set()
        training.set()
        signal.signal(signal.SIGINT, inherited)
    presser.join()
    assert code == 130, err
    assert "training interrupted after" in err and "kept the existing checkpoint" in err
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sw.SAE.load(tmp_path / "good.interrupted").n_units == 16


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"sae-widgets {sw.__version__}\n", "")


def test_precision_reaches_the_estimator_and_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mixed"
    argv = ["train", "--data", "digits", "--n-samples", "300", "--k", "4", *SMALL]
    with pytest.warns(RuntimeWarning, match="on CPU the compiled kernels"):
        code, _, _ = run(capsys, *argv, "--precision", "bf16", "--out", str(out), "--json")
    assert code == 0
    assert sw.SAE.load(out).precision == "bf16"
    code, _, err = run(capsys, *argv, "--precision", "fp16")
    assert code == 2 and "--precision" in err and "fp16" in err


def test_eval_on_an_activation_store(
    trained: Path, digits_X: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `eval CKPT --data STORE` read X.shape off the store itself: an AttributeError traceback
    from sae_widgets.data.store import StoreWriter

    with StoreWriter(tmp_path / "acts", 64, shard_size=150) as writer:
        writer.append(digits_X)
    code, out, _ = run(capsys, "eval", str(trained), "--data", str(tmp_path / "acts"), "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["n_samples"] == 400
    expected = sw.metrics.evaluate(sw.SAE.load(trained), digits_X)
    assert payload["metrics"]["fvu"] == pytest.approx(expected["fvu"], rel=1e-5)
    assert_user_error(
        run(capsys, "eval", str(trained), "--data", str(tmp_path / "acts"), "--n-samples", "401"),
        "--n-samples 401",
        "only 400",
    )


def test_empty_names_and_a_key_that_picks_nothing_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: --out '' aimed at the current folder ("... exists and is not an SAE checkpoint",
    # or a save into it when empty), --layer '' quietly meant digits-mlp's default net.1, and
    # --key was ignored for a .npy, a built-in or a store
    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained despite a bad argument")

    monkeypatch.setattr(sw.SAE, "fit", must_not_train)
    monkeypatch.chdir(tmp_path)
    train = ["train", "--data", "digits", *SMALL]
    assert_user_error(run(capsys, *train, "--out", ""), "--out", "non-empty")
    assert_user_error(run(capsys, *train, "--model", "digits-mlp", "--layer", ""), "--layer")
    assert_user_error(run(capsys, *train, "--model", " "), "--model", "non-empty")
    assert_user_error(run(capsys, *train, "--key", "X"), "--key", "digits")
    np.save(tmp_path / "x.npy", np.ones((30, 4), dtype=np.float32))
    assert_user_error(run(capsys, "train", "--data", "x.npy", "--key", "X", *SMALL), "--key")
    assert list(tmp_path.iterdir()) == [tmp_path / "x.npy"]
