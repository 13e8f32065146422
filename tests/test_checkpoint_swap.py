"""Replacing a checkpoint folder: symlinks, file modes, leftovers of killed saves, readers
racing a writer, and both swap strategies (renameat2 exchange and rename-aside)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import sae_widgets as sw
from sae_widgets.sae import folder_swap
from sae_widgets.sae.checkpoint import read_weights, write_weights
from sae_widgets.sae.formats import CheckpointWeights

D_IN = 6
DEAD_PID = 2**22 + 12_345  # above Linux's pid_max default: no process has it


def _record(n_units: int = 7, seed: int = 0) -> CheckpointWeights:
    gen = torch.Generator().manual_seed(seed)
    return CheckpointWeights(
        W_enc=torch.randn(D_IN, n_units, generator=gen),
        b_enc=torch.randn(n_units, generator=gen),
        W_dec=torch.randn(n_units, D_IN, generator=gen),
        b_dec=torch.randn(D_IN, generator=gen),
        activation="topk",
        k=2,
        metadata={"sae_widgets_version": "test"},
    )


@pytest.fixture(params=[True, False], ids=["renameat2", "rename-aside"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    monkeypatch.setattr(folder_swap, "use_exchange", request.param)
    yield request.param


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_both_strategies_replace_a_checkpoint_and_leave_nothing_beside_it(
    tmp_path: Path, strategy: bool
) -> None:
    write_weights(_record(7), tmp_path / "run")
    write_weights(_record(9), tmp_path / "run")
    assert read_weights(tmp_path / "run").n_units == 9
    assert _names(tmp_path) == ["run"]


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = write_weights(_record(7), tmp_path / "runs" / "v1")
    link = tmp_path / "latest"
    link.symlink_to(real, target_is_directory=True)
    sae = sw.SAE(n_units=5, k=2, epochs=1).fit(torch.randn(40, D_IN).numpy(), progress=False)
    sae.save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read_weights(real).n_units == 5  # written through to the link's target
    assert _names(tmp_path) == ["latest", "runs"]  # no dangling '.latest.old-*' link
    assert _names(tmp_path / "runs") == ["v1"]
    dangling = tmp_path / "next"
    dangling.symlink_to(tmp_path / "runs" / "v2", target_is_directory=True)
    write_weights(_record(4), dangling)
    assert dangling.is_symlink() and read_weights(tmp_path / "runs" / "v2").n_units == 4


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_folder_get_the_mode_of_a_normal_write(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        folder = write_weights(_record(), tmp_path / "run")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {"cfg.json": 0o666 & ~umask, "sae_weights.safetensors": 0o666 & ~umask}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask


def _leave_a_killed_swap(tmp_path: Path) -> Path:
    """What a save killed between its two renames (rename-aside strategy) leaves: no target,
    the old checkpoint aside, the complete new one still staged."""
    target = tmp_path / "run"
    write_weights(_record(7), target)
    os.rename(target, tmp_path / f".run.old-{DEAD_PID}-0a1b2c3d")
    write_weights(_record(9), tmp_path / "staged")
    os.rename(tmp_path / "staged", tmp_path / f".run.saving-{DEAD_PID}-4e5f6a7b")
    return target


def test_a_swap_killed_between_its_renames_still_loads_the_old_checkpoint(tmp_path: Path) -> None:
    target = _leave_a_killed_swap(tmp_path)
    assert read_weights(target).n_units == 7
    assert sw.SAE.load(target).n_units == 7
    # the next save restores the folder first, then replaces it; nothing is left over
    write_weights(_record(5), target)
    assert read_weights(target).n_units == 5
    assert _names(tmp_path) == ["run"]


def test_stale_staging_folders_are_removed_by_the_next_save(tmp_path: Path) -> None:
    target = write_weights(_record(7), tmp_path / "run")
    for name in (f".run.saving-{DEAD_PID}-deadbeef", ".run.saving-k2j4h5g6", ".run.old-ab12cd34"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sae_weights.safetensors").write_bytes(b"\0" * 1000)
    live = tmp_path / f".run.saving-{os.getppid()}-cafecafe"  # a running writer's: kept
    live.mkdir()
    (tmp_path / ".runner.saving-1-abcdabcd").mkdir()  # another folder's: not ours to touch
    write_weights(_record(9), target)
    assert _names(tmp_path) == [live.name, ".runner.saving-1-abcdabcd", "run"]


@pytest.mark.parametrize("n_readers", [1])
def test_a_reader_racing_a_writer_sees_the_old_or_the_new_checkpoint(
    tmp_path: Path, strategy: bool, n_readers: int
) -> None:
    target = write_weights(_record(7), tmp_path / "run")
    records = [_record(9, seed=1), _record(7, seed=0)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                write_weights(records[i % 2], target)
                i += 1
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(150):
            assert read_weights(target).n_units in (7, 9)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert _names(tmp_path) == ["run"]
