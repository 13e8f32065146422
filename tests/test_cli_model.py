"""`sae-widgets train/eval --model`: an SAE on a model's layer, and the spliced figures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import sae_widgets as sw
from sae_widgets.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli_model") / "mlp"
    argv = ["train", "--data", "digits", "--model", "digits-mlp", "--units", "32", "--k", "4"]
    assert main([*argv, "--epochs", "2", "--quiet", "--out", str(out), "--json"]) == 0
    return out


def test_train_on_the_builtin_models_layer(mlp_checkpoint: Path) -> None:
    sae = sw.SAE.load(mlp_checkpoint)
    assert sae.n_features_in_ == 128  # net.1 of the digits MLP, not the 64 pixels


def test_eval_with_a_model_prints_the_spliced_figures(
    mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "eval", str(mlp_checkpoint), "--data", "digits", "--model", "digits-mlp", "--json"
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["layer"] == "net.1"
    expected = sw.metrics.evaluate(
        sw.SAE.load(mlp_checkpoint),
        sw.datasets.digits(),
        model=sw.datasets.digits_mlp(),
        layer="net.1",
    )
    for key in ("loss_recovered", "loss_recovered_mean_ablation", "ce_spliced", "fvu"):
        assert payload["metrics"][key] == pytest.approx(expected[key], rel=1e-5)
    code, table, _ = run(
        capsys, "eval", str(mlp_checkpoint), "--data", "digits", "--model", "digits-mlp"
    )
    assert code == 0
    assert "loss_recovered " in table and "digits -> digits-mlp net.1" in table


def test_a_model_from_module_function(
    mlp_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        import sae_widgets as sw

        def classifier():
            return sw.datasets.digits_mlp()

        def not_a_model():
            return 3
    """)
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        capsys,
        "eval",
        str(mlp_checkpoint),
        "--data",
        "digits",
        "--model",
        "my_models:classifier",
        "--layer",
        "net.1",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["metrics"]["loss_recovered"] > 0
    code, _, err = run(
        capsys,
        "eval",
        str(mlp_checkpoint),
        "--data",
        "digits",
        "--model",
        "my_models:not_a_model",
        "--layer",
        "net.1",
    )
    assert code == 2 and "returned int, not a torch.nn.Module" in err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--model", "resnet"], "--model must be one of digits-mlp or 'module:function'"),
        (["--model", "no_such_module_xyz:f", "--layer", "a"], "cannot import 'no_such_module_xyz'"),
        (["--model", "json:dumps"], "--layer is required"),
        (["--layer", "net.1"], "--layer needs --model"),
        (["--model", "digits-mlp", "--layer", "net.7"], "layer 'net.7' not found"),
        (["--model", "digits-mlp", "--layer", "net.3"], "width 128"),
    ],
)
def test_model_mistakes_print_one_line(
    mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    code, out, err = run(capsys, "eval", str(mlp_checkpoint), "--data", "digits", *extra)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def _input_store(folder: Path, labels: bool) -> Path:
    """The digits pixels (the MLP's inputs) in an activation store, with or without labels."""
    from sae_widgets.data.store import StoreWriter

    ds = sw.datasets.digits()
    with StoreWriter(folder, 64, shard_size=500) as writer:
        writer.append(ds.X, {"labels": ds.labels} if labels else None)
    return folder


def test_eval_with_a_model_scores_against_the_labels_of_a_store(
    mlp_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the store's labels were ignored: "--model scores a classifier against labels; ... none"
    store = str(_input_store(tmp_path / "inputs", labels=True))
    argv = ["eval", str(mlp_checkpoint), "--data", store, "--model", "digits-mlp", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    sae, model, ds = sw.SAE.load(mlp_checkpoint), sw.datasets.digits_mlp(), sw.datasets.digits()
    expected = sw.metrics.evaluate(sae, ds, model=model, layer="net.1")
    for key in ("loss_recovered", "ce_original", "accuracy_spliced", "fvu"):
        assert json.loads(out)["metrics"][key] == pytest.approx(expected[key], rel=1e-5)
    code, out, err = run(capsys, *argv, "--n-samples", "300")  # the labels of those samples
    assert code == 0, err
    expected = sw.metrics.evaluate(sae, ds[:300], model=model, layer="net.1")
    assert json.loads(out)["metrics"]["ce_original"] == pytest.approx(expected["ce_original"])


def test_eval_with_a_model_on_a_store_without_labels_says_so(
    mlp_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(_input_store(tmp_path / "unlabelled", labels=False))
    code, out, err = run(
        capsys, "eval", str(mlp_checkpoint), "--data", store, "--model", "digits-mlp"
    )
    assert code == 2 and out == ""
    assert f"{store} has none" in err and "store written with labels" in err
