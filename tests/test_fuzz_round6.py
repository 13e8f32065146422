"""Fuzz round 6 of the public API: inputs earlier rounds did not try (huge generator sizes,
saving into the working folder, ...). Each test pins a defect a user hit; the fix is in the
commit that added it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import sae_widgets as sw


@pytest.fixture(scope="module")
def fitted() -> sw.SAE:
    X = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
    return sw.SAE(n_units=8, k=2, epochs=1, seed=0).fit(X, progress=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sw.datasets.firing_probabilities(10**13, 1.0),
        lambda: sw.datasets.firing_probabilities(10**13, 1.0, firing="zipf"),
        lambda: sw.datasets.superposition(n=4, n_features=10**13, dim=1, active=1.0),
    ],
    ids=["uniform", "zipf", "superposition"],
)
def test_more_features_than_memory_are_refused_naming_n_features(call: object) -> None:
    # was numpy's raw MemoryError ("Unable to allocate 72.8 TiB") from np.full(n_features)
    with pytest.raises(ValueError, match="n_features would need"):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("spelling", [".", "", "abs", "parent"])
def test_saving_into_the_working_folder_is_refused_and_leaves_it_in_place(
    fitted: sw.SAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # The swap renamed the working folder away: the process was left in a deleted folder
    # (os.getcwd() then raised FileNotFoundError, and so did the next save("")).
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    monkeypatch.chdir(work / "inner" if spelling == "parent" else work)
    folder = {".": ".", "": "", "abs": str(work), "parent": ".."}[spelling]
    with pytest.raises(ValueError, match=r"folder: .* is the working folder or one above it"):
        fitted.save(folder)
    assert Path(os.getcwd()).exists() and Path.cwd().samefile(os.getcwd())
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging left
    fitted.save("run")  # a subfolder of the working folder still saves
    assert sw.SAE.load("run").n_features_in_ == 5


def test_saving_over_a_checkpoint_that_is_the_working_folder_keeps_it(
    fitted: sw.SAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted.save(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(ValueError, match="working folder"):
        fitted.save(".")
    assert sorted(os.listdir(".")) == ["cfg.json", "sae_weights.safetensors"]
    assert Path.cwd().samefile(tmp_path / "run")
