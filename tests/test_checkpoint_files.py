"""Checkpoint files without the estimator: the SAELens layout we write, atomic replacement,
and clear errors for corrupt, unsafe or foreign folders."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae_widgets.sae import checkpoint
from sae_widgets.sae.checkpoint import read_weights, write_weights
from sae_widgets.sae.formats import CheckpointWeights

D_IN, N_UNITS = 5, 7


def _record(activation: str = "topk", k: int | None = 2, seed: int = 0) -> CheckpointWeights:
    gen = torch.Generator().manual_seed(seed)
    threshold = None
    if activation in ("jumprelu", "batchtopk"):
        threshold = torch.rand(N_UNITS, generator=gen)
    return CheckpointWeights(
        W_enc=torch.randn(D_IN, N_UNITS, generator=gen),
        b_enc=torch.randn(N_UNITS, generator=gen),
        W_dec=torch.randn(N_UNITS, D_IN, generator=gen),
        b_dec=torch.randn(D_IN, generator=gen),
        activation=activation,
        k=k if activation in ("topk", "batchtopk") else None,
        threshold=threshold,
        metadata={"sae_widgets_version": "test", "note": "hello"},
    )


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


@pytest.mark.parametrize(
    ("activation", "architecture"),
    [("relu", "standard"), ("topk", "topk"), ("jumprelu", "jumprelu"), ("batchtopk", "jumprelu")],
)
def test_written_folder_is_the_saelens_layout(
    tmp_path: Path, activation: str, architecture: str
) -> None:
    record = _record(activation)
    folder = write_weights(record, tmp_path / "run")

    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    expected_shapes = {
        "W_enc": (D_IN, N_UNITS),
        "W_dec": (N_UNITS, D_IN),
        "b_enc": (N_UNITS,),
        "b_dec": (D_IN,),
    }
    if activation in ("jumprelu", "batchtopk"):
        expected_shapes["threshold"] = (N_UNITS,)
    assert {name: tuple(t.shape) for name, t in tensors.items()} == expected_shapes
    for name, tensor in tensors.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, getattr(record, name))
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == architecture
    assert (cfg["d_in"], cfg["d_sae"]) == (D_IN, N_UNITS)
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["dtype"] == "float32" and cfg["device"] == "cpu"
    assert cfg.get("k") == (2 if activation == "topk" else None)
    assert cfg["metadata"]["activation"] == activation
    assert cfg["metadata"]["note"] == "hello"


@pytest.mark.parametrize("activation", ["relu", "topk", "jumprelu", "batchtopk"])
def test_write_then_read_is_bit_exact(tmp_path: Path, activation: str) -> None:
    record = _record(activation)
    back = read_weights(write_weights(record, tmp_path / "run"))
    assert (back.activation, back.k, back.layout) == (activation, record.k, "sae_widgets")
    for name, tensor in record.tensors().items():
        assert torch.equal(back.tensors()[name], tensor), name
    assert back.metadata["note"] == "hello"


def test_negative_thresholds_of_our_own_checkpoints_are_kept(tmp_path: Path) -> None:
    record = _record("jumprelu")
    assert record.threshold is not None
    record.threshold = record.threshold - 0.5
    back = read_weights(write_weights(record, tmp_path / "run"))
    assert back.threshold is not None and torch.equal(back.threshold, record.threshold)


def test_existing_checkpoint_is_replaced_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    folder = write_weights(_record(seed=0), tmp_path / "run")
    (folder / "sparsity.safetensors").write_bytes(b"stale")  # replaced as a whole folder
    write_weights(_record(seed=1), folder)
    assert torch.equal(read_weights(folder).W_enc, _record(seed=1).W_enc)
    assert not (folder / "sparsity.safetensors").exists()
    assert _siblings(folder) == ["run"]


def test_a_failed_save_leaves_the_old_checkpoint_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_weights(_record(seed=0), tmp_path / "run")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(tensors: dict, filename: str) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_weights(_record(seed=1), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert _siblings(folder) == ["run"]


def test_a_folder_that_is_not_a_checkpoint_is_never_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not an SAE checkpoint; refusing"):
        write_weights(_record(), folder)
    assert (folder / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_weights(_record(), tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_weights(write_weights(_record(), empty)).n_units == N_UNITS


def test_a_parent_that_cannot_be_made_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "plain_file").write_text("x")
    inside_a_file = tmp_path / "plain_file" / "run"
    with pytest.raises(OSError, match=r"cannot save to .*plain_file/run.*parent folder"):
        write_weights(_record(), inside_a_file)
    assert (tmp_path / "plain_file").read_text() == "x"


def test_metadata_is_made_json_safe(tmp_path: Path) -> None:
    record = _record()
    record.metadata = {"history": [float("nan"), torch.tensor(2.5), {"x": (1, 2)}]}
    cfg = json.loads((write_weights(record, tmp_path / "run") / "cfg.json").read_text())
    assert cfg["metadata"]["history"] == [None, 2.5, {"x": [1, 2]}]


# ---------------------------------------------------------------- folders we cannot read


def test_a_foreign_folder_lists_the_files_each_layout_expects(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="not an SAE checkpoint") as info:
        read_weights(tmp_path)
    message = str(info.value)
    for name in ("cfg.json", "sae_weights.safetensors", "sae.safetensors", "ae.pt", "config.json"):
        assert name in message
    assert "weights.bin" in message
    with pytest.raises(ValueError, match="does not exist"):
        read_weights(tmp_path / "missing")
    with pytest.raises(ValueError, match="is a file"):
        read_weights(tmp_path / "weights.bin")
    with pytest.raises(TypeError, match="folder must be a folder path"):
        read_weights(3)  # type: ignore[arg-type]


def _saved(tmp_path: Path) -> Path:
    return write_weights(_record("relu"), tmp_path / "run")


def test_truncated_safetensors_gets_a_clear_error(tmp_path: Path) -> None:
    weights = _saved(tmp_path) / "sae_weights.safetensors"
    data = weights.read_bytes()
    for cut in (4, 40, len(data) // 2, len(data) - 1):
        weights.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupt safetensors"):
            read_weights(weights.parent)


def test_a_header_claiming_petabytes_is_rejected_without_allocating(tmp_path: Path) -> None:
    weights = _saved(tmp_path) / "sae_weights.safetensors"
    weights.write_bytes((2**50).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="truncated or corrupt safetensors"):
        read_weights(weights.parent)


def test_corrupt_json_and_bad_values_get_clear_errors(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    cfg_text = (folder / "cfg.json").read_text()
    (folder / "cfg.json").write_text(cfg_text[: len(cfg_text) // 2])
    with pytest.raises(ValueError, match="not a readable JSON config"):
        read_weights(folder)
    cfg = json.loads(cfg_text)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "d_in": D_IN + 1}))
    with pytest.raises(ValueError, match=r"W_enc must have shape \(6, 7\) or \(7, 6\)"):
        read_weights(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "temporal"}))
    with pytest.raises(ValueError, match="architecture 'temporal' is not supported"):
        read_weights(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(ValueError, match=r"missing tensor.*r_mag, b_gate, b_mag"):
        read_weights(folder)  # gated is read, from its own tensors
    (folder / "cfg.json").write_text(cfg_text)
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    tensors["W_dec"][0, 0] = float("nan")
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="W_dec holds NaN"):
        read_weights(folder)
    del tensors["b_enc"]
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="missing tensor"):
        read_weights(folder)


def test_truncated_ae_pt_gets_a_clear_error(tmp_path: Path) -> None:
    state = {
        "encoder.weight": torch.randn(4, 3),
        "encoder.bias": torch.zeros(4),
        "decoder.weight": torch.randn(3, 4),
        "bias": torch.zeros(3),
    }
    torch.save(state, tmp_path / "ae.pt")
    assert read_weights(tmp_path).activation == "relu"
    data = (tmp_path / "ae.pt").read_bytes()
    (tmp_path / "ae.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupt or unsafe torch file"):
        read_weights(tmp_path)
    (tmp_path / "ae.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="truncated, corrupt or unsafe torch file"):
        read_weights(tmp_path)


class _Payload:
    """Unpickling this with full pickle would create a file: code from the checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_an_ae_pt_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save({"encoder.weight": _Payload(marker)}, folder / "ae.pt")
    with pytest.raises(ValueError, match="unsafe torch file"):
        read_weights(folder)
    assert not marker.exists()
    (folder / "ae.pt").write_bytes(pickle.dumps(_Payload(marker)))  # a bare (legacy) pickle
    with pytest.raises(ValueError, match="unsafe torch file"):
        read_weights(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('"d_in": NaN', "NaN is not a JSON number"),
        ('"d_in": Infinity', "Infinity is not a JSON number"),
        ('"d_in": -Infinity', "-Infinity is not a JSON number"),
        ('"d_in": 1e400', "config field 'd_in' must be an integer"),
        ('"d_in": 5.5', "config field 'd_in' must be an integer"),
        ('"d_in": ' + "9" * 5000, "not a readable JSON config"),
        ('"deep": ' + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_cfg_json_with_non_numbers_or_deep_nesting_names_the_file(
    tmp_path: Path, text: str, match: str
) -> None:
    # issue 14 item 10: raw ValueError/OverflowError/RecursionError, not naming the file
    folder = _saved(tmp_path)
    cfg = (folder / "cfg.json").read_text()
    (folder / "cfg.json").write_text(cfg.replace('"d_in": 5', text, 1))
    with pytest.raises(ValueError, match=match) as caught:
        read_weights(folder)
    assert str(folder / "cfg.json") in str(caught.value)


def test_an_unreadable_weights_file_is_reported_as_unreadable_not_truncated(
    tmp_path: Path,
) -> None:
    # issue 14 item 10: a permission problem was reported as "truncated or corrupt"
    import os

    folder = write_weights(_record(), tmp_path / "run")
    weights = folder / "sae_weights.safetensors"
    weights.chmod(0o000)
    opened = [(p, p.stat().st_mode) for p in (folder, *folder.parents)]
    root = os.geteuid() == 0
    groups = os.getgroups()
    try:
        if root:  # root reads anything: read as nobody, through folders it may enter
            for path, mode in opened:
                path.chmod(mode | 0o005)
            os.setgroups([])
            os.setegid(65534)
            os.seteuid(65534)
        with pytest.raises(PermissionError) as caught:
            read_weights(folder)
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
            os.setgroups(groups)
            for path, mode in opened:
                path.chmod(mode)
    assert f"{weights}: the file cannot be read (Permission denied)" in str(caught.value)
    assert "truncated" not in str(caught.value)
