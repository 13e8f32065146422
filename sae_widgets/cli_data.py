"""What `sae-widgets --data/--model` name, read into vectors: a built-in dataset, a
.npy/.npz/.safetensors file, an activation store folder, or a model layer's activations.
Mistakes raise `UsageError` (one line, exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.cli_parser import UsageError
from sae_widgets.paths import check_name_lengths

BUILTIN_DATA = ("digits", "shapes", "superposition")


VECTOR_FILES = (".npy", ".npz", ".safetensors")


def load_vectors(spec: str, n_samples: int | None, seed: int, key: str | None) -> Any:
    """(n, d) float32 vectors: a built-in dataset's X, the array in a .npy/.npz/.safetensors,
    or an activation store folder (opened memory-mapped, streamed by training)."""
    if not spec.strip():  # Path("") is the current folder: never what an empty --data meant
        raise UsageError(
            f"--data is empty; expected {', '.join(BUILTIN_DATA)}, a vector file or a store"
        )
    check_name_lengths(Path(spec), "--data")  # not the OS's bare ENAMETOOLONG
    if key is not None and (
        Path(spec).is_dir() or Path(spec).suffix not in (".npz", ".safetensors")
    ):
        raise UsageError(f"--key picks an array in a .npz/.safetensors file; --data is {spec!r}")
    if Path(spec).is_dir():
        from sae_widgets.data.store import ActivationStore
        from sae_widgets.data.store_files import MANIFEST

        if not (Path(spec) / MANIFEST).is_file():
            raise UsageError(
                f"--data {spec!r} is a folder but not an activation store (no {MANIFEST}; a "
                "write that was interrupted never gets one)"
            )

        store = ActivationStore(spec)
        if n_samples is None:
            return store
        _check_count(n_samples, len(store), spec)
        return store[:n_samples].X
    if spec in BUILTIN_DATA:
        from sae_widgets.data import datasets

        if spec == "digits":  # fixed data: --n-samples takes the first n
            return _first(datasets.digits().X, n_samples, spec)
        maker = datasets.shapes if spec == "shapes" else datasets.superposition
        kwargs: dict[str, Any] = {} if n_samples is None else {"n": n_samples}
        return maker(seed=seed, **kwargs).X
    path = Path(spec)
    if path.suffix not in VECTOR_FILES:
        raise UsageError(
            f"--data must be one of {', '.join(BUILTIN_DATA)} or a {'/'.join(VECTOR_FILES)} "
            f"file of vectors; got {spec!r}"
        )
    if not path.is_file():
        raise UsageError(f"data file {spec!r} does not exist")
    array = _read_array(path, key)
    if array.dtype.kind not in "fiub":
        raise UsageError(f"{spec}: expected numbers; got an array of dtype {array.dtype}")
    if array.ndim != 2:
        raise UsageError(
            f"{spec}: expected a 2-D array (samples, features); got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UsageError(f"{spec}: the array is empty (shape {array.shape})")
    vectors = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise UsageError(f"{spec}: the vectors hold NaN or infinite values")
    return _first(vectors, n_samples, spec)


def _first(vectors: np.ndarray, n_samples: int | None, spec: str) -> np.ndarray:
    """The first n_samples rows."""
    if n_samples is None:
        return vectors
    _check_count(n_samples, vectors.shape[0], spec)
    return vectors[:n_samples]


def _check_count(n_samples: int, n: int, spec: str) -> None:
    """Asking for more rows than there are is a mistake, not a quiet cap."""
    if n_samples > n:
        raise UsageError(
            f"--n-samples {n_samples}: {spec} has only {n} samples "
            "(leave --n-samples out to use them all)"
        )


def load_labels(spec: str, n_samples: int | None, seed: int) -> np.ndarray | None:
    """The labels of a built-in dataset, the `labels` field of an activation store, or the
    `labels` array of an .npz file (the first n_samples, as `load_vectors` reads), or None."""
    if spec in BUILTIN_DATA:
        from sae_widgets.data import datasets

        if spec == "digits":
            labels = datasets.digits().labels
            return None if labels is None else labels[:n_samples]
        maker = datasets.shapes if spec == "shapes" else datasets.superposition
        kwargs: dict[str, Any] = {} if n_samples is None else {"n": n_samples}
        return maker(seed=seed, **kwargs).labels
    path = Path(spec)
    if path.is_dir():
        from sae_widgets.data.store import ActivationStore
        from sae_widgets.data.store_files import MANIFEST

        if not (path / MANIFEST).is_file():
            return None
        labels = ActivationStore(path).labels
        return None if labels is None else labels[:n_samples]
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "labels" not in archive:
                return None
            try:
                labels = np.asarray(archive["labels"])
            except ValueError as err:  # e.g. an object array (not loaded without pickle)
                raise UsageError(f"{spec}: its 'labels' cannot be read ({err})") from err
        if labels.ndim == 0:  # slicing it was a raw IndexError
            raise UsageError(f"{spec}: 'labels' must hold one label per sample; got a single value")
        return labels[:n_samples]
    return None


def model_vectors(args: argparse.Namespace, X: np.ndarray) -> tuple[Any, str, np.ndarray]:
    """(model, layer, the layer's activations over X) for --model/--layer."""
    from sae_widgets.cli_models import load_model
    from sae_widgets.data.activations import collect_activations

    model, layer = load_model(args.model, args.layer)
    return model, layer, collect_activations(model, layer, X).X


def _read_array(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                # by name: loading every array failed on an object array beside the vectors
                named = dict.fromkeys(archive.files, None)
                return np.asarray(archive[_pick_name(named, key, path)])
        import torch
        from safetensors.torch import load_file  # bfloat16 too (numpy has no such dtype)

        tensor = _pick(load_file(str(path)), key, path).detach()
        numpy_floats = (torch.float16, torch.float32, torch.float64)
        if tensor.is_floating_point() and tensor.dtype not in numpy_floats:
            tensor = tensor.float()
        array: np.ndarray = tensor.numpy()
        return array
    except UsageError:
        raise
    except Exception as err:  # any reader failure means the file is not what we need
        raise UsageError(f"{path}: cannot read vectors ({type(err).__name__}: {err})") from err


def _pick(arrays: dict[str, Any], key: str | None, path: Path) -> Any:
    """The array named `key`, else the only array, else the one named X."""
    return arrays[_pick_name(arrays, key, path)]


def _pick_name(arrays: dict[str, Any], key: str | None, path: Path) -> str:
    """The name `_pick` chooses among `arrays`' names."""
    if key is not None:
        if key not in arrays:
            raise UsageError(f"{path}: no array named {key!r}; it holds {', '.join(arrays)}")
        return key
    if len(arrays) == 1:
        return next(iter(arrays))
    if "X" in arrays:
        return "X"
    raise UsageError(f"{path}: holds {', '.join(arrays) or 'no arrays'}; choose one with --key")
