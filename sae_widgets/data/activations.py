"""`collect_activations`: run a PyTorch model over a Dataset and keep one layer's outputs."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from sae_widgets.data.checks import check_bool, is_int
from sae_widgets.data.dataset import Dataset
from sae_widgets.data.layer_capture import (
    ModelError,
    as_float32,
    capture_layer,
    model_batch,
    run_to_layer,
)
from sae_widgets.model_layers import resolve_layer

InputFn = Callable[[torch.Tensor], Any]


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _image_reshaper(image_shape: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Flat rows -> channels-first image batches: (b, 1, h, w) or (b, 3, h, w). (Partials of
    module-level functions, not lambdas: a Dataset whose attributes run the model pickles.)"""
    if len(image_shape) == 2:
        return partial(_reshape_rows, (1, *image_shape))
    return partial(_channels_first, tuple(image_shape))


def _reshape_rows(shape: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], *shape)


def _channels_first(image_shape: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], *image_shape).permute(0, 3, 1, 2).contiguous()


class _LayerRunner:
    """Maps float32 rows (m, d) to the layer's flattened outputs (m, d_out), batched, in eval
    mode under no_grad, restoring each submodule's mode and removing the hook afterwards."""

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        layer_name: str,
        batch_size: int,
        device: torch.device,
        dtype: torch.dtype,
        prepare: Callable[[torch.Tensor], Any] | None,
    ) -> None:
        self.model, self.module, self.layer_name = model, module, layer_name
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        self.prepare = prepare  # None: not decided yet (flat, or images if flat is rejected)
        self.image_fallback: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._captured: list[torch.Tensor] = []  # filled by the hook during one forward
        self.width: int | None = None  # values per sample, fixed by the first output

    @contextmanager
    def _hooked(self) -> Iterator[None]:
        self._captured.clear()
        with capture_layer(self.model, self.module, self.layer_name, self._captured):
            yield

    def _forward(self, batch: torch.Tensor, prepare: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        self._captured.clear()
        inputs = prepare(batch)  # the user's input_fn: its errors are its own
        out = run_to_layer(
            lambda: self.model(inputs),
            self._captured,
            self.layer_name,
            f"a batch of shape {tuple(batch.shape)}",
        )
        if out.ndim == 0 or out.shape[0] != batch.shape[0]:
            raise ValueError(
                f"layer {self.layer_name!r} output has shape {tuple(out.shape)}; expected the "
                f"batch ({batch.shape[0]}) first"
            )
        shape = tuple(out.shape)
        out = as_float32(out, self.layer_name).reshape(out.shape[0], -1)
        width = self.width if self.width is not None else out.shape[1]
        if out.shape[1] == 0 or out.shape[1] != width:
            first = "" if self.width is None else f"; it gave {width} for the first batch"
            raise ValueError(
                f"layer {self.layer_name!r} output has shape {shape}: {out.shape[1]} values "
                f"per sample{first}; collect_activations needs the same number (at least 1) "
                "for every sample"
            )
        self.width = width
        return out

    def _first_forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Decide the input layout on the first batch: flat rows, or images if the model
        rejects flat rows and the dataset has images."""
        try:
            out = self._forward(batch.clone(), _identity)  # the image try gets it unwritten
            self.prepare = _identity
            return out
        except ModelError as flat_error:
            if self.image_fallback is None:
                raise ModelError(
                    f"{flat_error} (if it expects another input shape, pass "
                    "input_shape=(...) or input_fn)"
                ) from flat_error.__cause__
            try:
                out = self._forward(batch, self.image_fallback)
            except ModelError as image_error:
                raise ModelError(
                    f"{flat_error}; as image batches: {image_error} (pass input_shape=(...) "
                    "or input_fn to shape its inputs)"
                ) from image_error.__cause__
            self.prepare = self.image_fallback
            return out

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        result: np.ndarray | None = None
        with self._hooked():
            for start in range(0, rows.shape[0], self.batch_size):
                chunk = rows[start : start + self.batch_size]
                batch = model_batch(chunk, self.device, self.dtype, start)
                if self.prepare is None:
                    out = self._first_forward(batch)
                else:
                    out = self._forward(batch, self.prepare)
                if not bool(torch.isfinite(out).all()):
                    bad = start + int((~torch.isfinite(out)).any(dim=1).nonzero()[0, 0])
                    raise ValueError(
                        f"layer {self.layer_name!r} produced NaN or infinite activations "
                        f"(first for input row {bad}); check the model and its inputs"
                    )
                if result is None:
                    result = np.empty((rows.shape[0], out.shape[1]), dtype=np.float32)
                result[start : start + out.shape[0]] = out.cpu().numpy()
        assert result is not None  # rows is never empty: Dataset forbids it
        return result


def _is_default(value: Any, default: Any) -> bool:
    """Whether an option equals its default (an array compares as not equal)."""
    if value is default:
        return True
    try:
        return default is not None and bool(value == default)
    except (TypeError, ValueError, RuntimeError):
        return False


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _collect_tokens(
    model: nn.Module,
    layer_name: str,
    module: nn.Module,
    data: Any,
    batch_size: int | None,
    device: str | torch.device | None,
    tokenizer: Any,
    **options: Any,
) -> Dataset:
    from sae_widgets.data.token_activations import collect_token_activations

    model_device, _ = _model_device_dtype(model)
    try:
        wanted = model_device if device is None else torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device (e.g. 'cpu'); got {device!r}") from err
    if wanted.type != model_device.type:
        raise ValueError(
            f"device: the model's parameters are on {model_device}, not {device}; move the "
            "model first or leave device=None"
        )
    return collect_token_activations(
        model,
        layer_name,
        module,
        data,
        tokenizer,
        model_device,
        batch_size=16 if batch_size is None else batch_size,
        **options,
    )


def collect_activations(
    model: nn.Module,
    layer: str | nn.Module,
    data: Dataset | Any,
    batch_size: int | None = None,
    input_shape: str | tuple[int, ...] | None = None,
    input_fn: InputFn | None = None,
    device: str | torch.device | None = None,
    *,
    tokenizer: Any = None,
    max_tokens: int | None = None,
    max_length: int | None = None,
    drop_special: bool = True,
    drop_first: int = 0,
    out: str | os.PathLike[str] | None = None,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Run `model` over `data.X` and return a Dataset of one layer's activations.

    With a `tokenizer`, `data` is a list of texts (or a `sw.datasets` TextCorpus) and
    `model` a Hugging Face transformer: the result has one row per kept token, and its
    ``tokens`` field (`TokenRows`) keeps each row's document, position and token id
    (see `sae_widgets.data.token_activations`). Padding is always dropped, special tokens
    (BOS, [CLS], [SEP], also typed in a text) when `drop_special`, and each document's
    first `drop_first` token positions (1 for a causal LM without a BOS token: its first
    token is an attention sink whose residual norm can be 100x the others' and would
    dominate an SAE's loss); at most `max_tokens` rows (None: all), each document cut at
    `max_length` tokens (default: 512, or the model's limit if lower).
    `batch_size` then counts documents (default 16).

    layer: a dotted submodule name as in `model.named_modules()` ("net.2") or the module.
    data: a Dataset (or an (n, d) array). Its labels, label_names, images, factors and
        true_codes are carried over; each attribute is composed with the model (the input
        is varied, then run to the layer), so it keeps working on the activations.
    input_shape: how batches of X rows are shaped for the model. None: flat rows, or, if the
        model rejects them and `data` has images, (b, 1, h, w) / (b, 3, h, w) image batches.
        "flat": always flat rows. "images": always image batches. A tuple: (b, *input_shape).
    input_fn: instead of input_shape, a function from a float32 (b, d) tensor on `device` to
        whatever `model(...)` takes.
    device: where to run; default (and it must match) the device of the model's parameters.

    The model runs in eval mode under torch.no_grad; each submodule's train/eval mode is
    restored afterwards and the forward hook is removed, even on error. The forward pass
    stops at the hooked layer, so a layer the model calls more than once per pass (shared
    weights) gives its first call's output; an `Intervention` on it edits every call.
    Returns float32 activations flattened per sample.

    out: a folder: stream the activations to an on-disk `ActivationStore` there (fixed-size
        shards of `shard_size` rows, written atomically; `overwrite` replaces an existing
        store) and return it opened. Memory stays at one chunk and one shard.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    layer_name, module = resolve_layer(model, layer)
    check_bool(overwrite, "overwrite")
    if tokenizer is not None:
        # Texts are tokenized, not reshaped: an input layout would be silently ignored.
        for name, value in (("input_shape", input_shape), ("input_fn", input_fn)):
            if value is not None:
                raise ValueError(
                    f"{name} shapes rows of numbers; with tokenizer= the data are texts "
                    f"(tokenized by it): leave {name} out; got {name}={value!r:.60}"
                )
        return _collect_tokens(
            model,
            layer_name,
            module,
            data,
            batch_size,
            device,
            tokenizer,
            max_tokens=max_tokens,
            max_length=max_length,
            drop_special=drop_special,
            drop_first=drop_first,
            out=out,
            shard_size=shard_size,
            overwrite=overwrite,
        )
    # Token options mean nothing for rows of numbers: ignoring them would return other rows
    # than asked for (max_tokens=3 gave every row).
    token_options: tuple[tuple[str, Any, Any], ...] = (
        ("max_tokens", max_tokens, None),
        ("max_length", max_length, None),
        ("drop_special", drop_special, True),
        ("drop_first", drop_first, 0),
    )
    for option, given, default in token_options:
        if not _is_default(given, default):
            raise ValueError(
                f"{option} applies to texts tokenized with tokenizer=; without a tokenizer the "
                f"data are rows of numbers: leave {option} out; got {option}={given!r:.60}"
            )
    if batch_size is None:
        batch_size = 256
    if not isinstance(data, Dataset):
        try:
            data = Dataset(data)
        except (TypeError, ValueError) as err:  # Dataset names its own field, X
            shape = getattr(data, "shape", None)
            hint = ""
            if isinstance(shape, tuple) and len(shape) in (3, 4):  # images as they come
                per_sample = tuple(shape[1:]) if len(shape) == 4 else (1, *shape[1:])
                hint = (
                    f"; for a batch of images pass sw.Dataset(X.reshape({shape[0]}, -1), "
                    "images=X) (the model is given image batches), or X.reshape(n, -1) with "
                    f"input_shape={per_sample!r}"
                )
            raise type(err)(
                f"data must be a Dataset or an (n_samples, n_features) array of model inputs "
                f"(or texts with tokenizer=): {err}{hint}"
            ) from err
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int; got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if input_fn is not None and input_shape is not None:
        raise ValueError("pass either input_shape or input_fn, not both")
    if input_fn is not None and not callable(input_fn):
        raise TypeError(f"input_fn must be callable; got {type(input_fn).__name__}")
    model_device, dtype = _model_device_dtype(model)
    try:
        run_device = model_device if device is None else torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device (e.g. 'cpu'); got {device!r}") from err
    if run_device.type != model_device.type:
        # Moving the user's model behind their back would surprise them more than an error.
        raise ValueError(
            f"device: the model's parameters are on {model_device}, not {run_device}; "
            f"move the model first (model.to({str(run_device)!r})) or leave device=None"
        )

    prepare: Callable[[torch.Tensor], Any] | None
    image_fallback = None
    d = data.n_features
    if input_fn is not None:
        prepare = input_fn
    elif input_shape is None:
        prepare = None
        image_shape = data.image_shape
        if image_shape is not None and math.prod(image_shape) == d:
            image_fallback = _image_reshaper(image_shape)
    elif isinstance(input_shape, str) and input_shape == "flat":
        prepare = _identity
    elif isinstance(input_shape, str) and input_shape == "images":
        image_shape = data.image_shape
        if image_shape is None:
            raise ValueError("input_shape='images' needs a dataset with images; data has none")
        if math.prod(image_shape) != d:
            raise ValueError(
                f"input_shape='images': images of shape {image_shape} do not hold the "
                f"{d} values of each X row"
            )
        prepare = _image_reshaper(image_shape)
    elif isinstance(input_shape, tuple) and all(is_int(s) for s in input_shape):
        input_shape = tuple(int(s) for s in input_shape)  # numpy integers too (e.g. x.shape)
        if any(s < 1 for s in input_shape):  # (-2, -3) holds 6 by its product
            raise ValueError(
                "input_shape must hold positive sizes (each X row is reshaped to "
                f"(batch, *input_shape)); got {input_shape}"
            )
        if math.prod(input_shape) != d:
            raise ValueError(
                f"input_shape {input_shape} holds {math.prod(input_shape)} values; each X row "
                f"has {d}"
            )
        prepare = partial(_reshape_rows, input_shape)
    else:
        raise ValueError(
            f"input_shape must be None, 'flat', 'images' or a tuple of ints; got {input_shape!r}"
        )

    runner = _LayerRunner(model, module, layer_name, int(batch_size), run_device, dtype, prepare)
    runner.image_fallback = image_fallback
    if out is not None:
        from sae_widgets.data.store import write_store

        info = {"model": type(model).__name__, "layer": layer_name}
        return write_store(
            runner,
            data,
            out,
            info=info,
            shard_size=shard_size,
            overwrite=overwrite,
            chunk_size=max(int(batch_size), 8192),
        )
    activations = runner(data.X)
    return Dataset(
        activations,
        labels=data.labels,
        label_names=data.label_names,
        images=data.images,
        factors=data.factors,
        true_codes=data.true_codes,
        attributes={name: attr.map(runner) for name, attr in data.attributes.items()},
        name=f"{data.name or 'data'} -> {layer_name}",
    )
