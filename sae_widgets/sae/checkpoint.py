"""Checkpoint folders: detect the layout, read it into an estimator, write ours atomically.

We write SAELens' layout (cfg.json + sae_weights.safetensors) and read SAELens (v6 and the
older flat cfg), EleutherAI sparsify and saprmarks/dictionary_learning folders. Reading never
executes code from a file: safetensors holds data only, and ae.pt is unpickled with
torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from sae_widgets.paths import WRITER_SPARE, as_path, check_name_lengths, check_not_working_folder
from sae_widgets.sae import folder_swap
from sae_widgets.sae.formats import (
    CheckpointWeights,
    read_dictionary_learning,
    read_saelens,
    read_sparsify,
    saelens_files,
)
from sae_widgets.sae.formats import dictionary_learning as _dl
from sae_widgets.sae.formats import saelens as _saelens
from sae_widgets.sae.formats import sparsify as _sparsify


@dataclass(frozen=True)
class Layout:
    """A checkpoint layout we can read: the files that identify it and its reader."""

    name: str
    files: tuple[str, ...]
    optional: tuple[str, ...]
    read: Callable[[Path], CheckpointWeights]


# Order matters: the first layout whose files are all present wins.
LAYOUTS = (
    Layout("SAELens / sae_widgets", (_saelens.CFG_FILE, _saelens.WEIGHTS_FILE), (), read_saelens),
    Layout("sparsify", (_sparsify.CFG_FILE, _sparsify.WEIGHTS_FILE), (), read_sparsify),
    Layout(
        "dictionary_learning", (_dl.WEIGHTS_FILE,), (_dl.CONFIG_FILE,), read_dictionary_learning
    ),
)


def _as_path(folder: Any, name: str = "folder") -> Path:
    return as_path(folder, name)


def __getattr__(name: str) -> Any:
    """`save_sae` and `load_sae`, which live in `sae_widgets.sae.checkpoint_sae`, by their
    old address too."""
    if name in ("save_sae", "load_sae"):
        from sae_widgets.sae import checkpoint_sae

        return getattr(checkpoint_sae, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def expected_files() -> str:
    """The files each known layout expects, on one line."""
    described = []
    for layout in LAYOUTS:
        files = " + ".join(layout.files)
        if layout.optional:
            files += ", optionally " + ", ".join(layout.optional)
        described.append(f"{layout.name} ({files})")
    return "; ".join(described)


def detect_layout(folder: str | os.PathLike[str]) -> Layout:
    """The layout of `folder`, or a ValueError listing the files each layout expects."""
    path = _as_path(folder)
    if not path.exists():
        raise ValueError(f"folder {str(path)!r} does not exist; expected an SAE checkpoint folder")
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; expected an SAE checkpoint folder")
    for layout in LAYOUTS:
        if all((path / name).is_file() for name in layout.files):
            return layout
    present = sorted(p.name for p in path.iterdir())
    # sparsify and dictionary_learning runs keep one checkpoint per hookpoint/trainer subfolder
    inside = [name for name in present if _looks_like_checkpoint(path / name)]
    hint = f"; these subfolders are checkpoints: {', '.join(inside[:10])}" if inside else ""
    raise ValueError(
        f"folder {str(path)!r} is not an SAE checkpoint (it holds: "
        f"{', '.join(present[:10]) if present else 'nothing'}); expected one of: "
        f"{expected_files()}{hint}"
    )


def _looks_like_checkpoint(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any(all((path / name).is_file() for name in layout.files) for layout in LAYOUTS)


def read_weights(folder: str | os.PathLike[str]) -> CheckpointWeights:
    """The weights of any known checkpoint layout, in our convention.

    A save that replaces the folder while we read it (we see its identity change) makes us
    read again, so the result is wholly the old or wholly the new checkpoint; a folder missing
    because a save was killed mid-swap is read from the copy that save left aside.
    """
    path = _as_path(folder)
    for attempt in range(_READ_ATTEMPTS):
        source = _readable(path)
        before = _identity(source)
        try:
            record = detect_layout(source).read(source)
        except (ValueError, OSError):  # a vanished file reads as FileNotFoundError
            # Compare the name we read, not a fresh resolution: a folder renamed aside keeps
            # its inode, so `_readable(path)` can name the very folder that just moved away.
            moved = _identity(source) != before or _readable(path) != source
            if attempt + 1 < _READ_ATTEMPTS and moved:
                time.sleep(_RETRY_PAUSE_S * attempt)  # let a save that is mid-swap finish
                continue  # replaced while we read it: read the new one
            raise
        if _identity(source) == before:
            return record
    return record


_READ_ATTEMPTS = 20
_RETRY_PAUSE_S = 0.001


def _readable(path: Path) -> Path:
    """`path`, or the newest complete copy an interrupted save left beside it."""
    if path.exists():
        return path
    real = Path(os.path.realpath(path))
    copies = folder_swap.aside_copies(real, _looks_like_checkpoint)
    return copies[0] if copies else path


def _identity(path: Path) -> tuple[int, int, int] | None:
    """The folder's device, inode and change time: a save's swap changes the time even where
    the new folder reuses the inode of one just deleted (a reader racing a writer that saves
    in a loop saw its inode come back, and read one checkpoint's config with the other's
    weights, in 1 of 4 runs of tests/test_checkpoint_swap.py)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_ctime_ns)


def describe_checkpoint(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """What `sae-widgets info` shows: layout, architecture, shapes, training and metrics."""
    record = read_weights(folder)
    ours = record.layout == "sae_widgets"
    training = _section(record, "training")
    history = training.pop("history", None)
    logged = len(history) if isinstance(history, list) else 0
    return {
        "checkpoint": str(_as_path(folder)),
        "layout": record.layout,
        "activation": record.activation,
        "k": record.k,
        "d_in": record.d_in,
        "n_units": record.n_units,
        "shapes": {name: list(t.shape) for name, t in record.tensors().items()},
        "sae_widgets_version": record.metadata.get("sae_widgets_version"),
        "params": _section(record, "params") if ours else None,
        "training": {**training, "logged_steps": logged} if ours else None,
        "metrics": _section(record, "metrics") if ours else None,
    }


def _section(record: CheckpointWeights, key: str) -> dict[str, Any]:
    """A copy of one block of our metadata; empty for foreign layouts or a hand-edited file."""
    value = record.metadata.get(key) if record.layout == "sae_widgets" else None
    return dict(value) if isinstance(value, dict) else {}


def write_weights(record: CheckpointWeights, folder: str | os.PathLike[str]) -> Path:
    """Write `record` in SAELens' layout to `folder`, atomically.

    Files go to a staging folder beside the target, which replaces it once complete, so the
    target always holds the old or the new checkpoint, even if the process is killed (see
    `sae_widgets.sae.folder_swap`). A folder that holds anything but a checkpoint is never
    replaced. A symlink is written through (its target folder is replaced; the link stays).
    Files get the mode a plain file write gives under the umask. Staging folders left by
    killed saves are removed first.
    """
    if not isinstance(record, CheckpointWeights):
        raise TypeError(f"record must be a CheckpointWeights; got {type(record).__name__}")
    target = _real_target(folder)
    check_replaceable(target)
    cfg, tensors = saelens_files(record)
    cfg_text = json.dumps(_json_safe(cfg), indent=2, allow_nan=False)  # fails before any write
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a parent that is a file, or a read-only place
        raise type(error)(
            error.errno,
            f"cannot save to {str(folder)!r}: its parent folder cannot be created "
            f"({error.strerror})",
            str(target.parent),
        ) from error
    folder_swap.clean_leftovers(target, _looks_like_checkpoint)
    staging = folder_swap.staging_name(target, "saving")
    os.mkdir(staging)  # 0o777 less the umask, like any new folder
    try:
        mode = folder_swap.default_file_mode()
        save_file(dict(tensors), str(staging / _saelens.WEIGHTS_FILE))
        (staging / _saelens.CFG_FILE).write_text(cfg_text + "\n", encoding="utf-8")
        names = [_saelens.WEIGHTS_FILE, _saelens.CFG_FILE]
        if record.training_state:  # what resumes training (sae_widgets.sae.trainer_state)
            save_file(dict(record.training_state), str(staging / _saelens.TRAINING_FILE))
            names.append(_saelens.TRAINING_FILE)
        for name in names:
            os.chmod(staging / name, mode)  # safetensors writes 0600; cfg.json gets the umask's
            _fsync(staging / name)
        folder_swap.fsync_folder(staging)
        folder_swap.swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    folder_swap.fsync_folder(target.parent)
    return target


def _real_target(folder: str | os.PathLike[str]) -> Path:
    """The folder a save really replaces: symlinks (of the folder or its parents) resolved;
    its name leaves room for the staging folder's (a ValueError naming folder if not)."""
    check_name_lengths(_as_path(folder), "folder", WRITER_SPARE)
    target = Path(os.path.realpath(_as_path(folder)))
    check_name_lengths(target, "folder", WRITER_SPARE)  # a link's target, too
    return target


def check_replaceable(folder: str | os.PathLike[str]) -> None:
    """ValueError unless a checkpoint may be written to `folder`: new, empty or a checkpoint."""
    target = _real_target(folder)
    # a swap renames the old folder away: the process would be left in a deleted folder
    check_not_working_folder(target, "folder")
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_dir():
        raise ValueError(f"folder {str(target)!r} exists and is not a folder; not replacing it")
    if any(target.iterdir()):
        try:
            detect_layout(target)
        except ValueError:
            raise ValueError(
                f"folder {str(target)!r} exists and is not an SAE checkpoint; refusing to "
                "replace it (choose a new or empty folder)"
            ) from None


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _json_safe(value: Any) -> Any:
    """JSON-ready copy: numpy/torch scalars become numbers, NaN/inf become null."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    for convert in ("item", "tolist"):  # numpy/torch scalars, then arrays
        method = getattr(value, convert, None)
        if callable(method):
            try:
                return _json_safe(method())
            except (TypeError, ValueError, RuntimeError):
                continue
    return str(value)
