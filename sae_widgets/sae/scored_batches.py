"""A model's evaluation data as batches to score (for `spliced_metrics`).

Each `ScoredBatch` runs the model on one batch and says which positions of the model's
logits are scored against which targets:

- a classifier (`classifier_batches`): its inputs against `labels`, one class per sample for
  logits (batch, n_classes), or one per position, labels (n, T), for logits (batch, T, C);
  -1 means not scored;
- a language model (`language_model_batches`): texts or token ids, each next token scored.

`pick_task` decides which of the two the data are; `check_targets` names a target beyond
the model's logits before torch's IndexError.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sae_widgets.image_inputs import image_batch, image_layout
from sae_widgets.label_codes import encode_labels, label_array
from sae_widgets.language_inputs import check_max_length, check_token_ids
from sae_widgets.sae.token_batches import token_batches
from sae_widgets.tensor_checks import check_cast

__all__ = [
    "TASKS",
    "ScoredBatch",
    "check_targets",
    "class_scores",
    "classifier_batches",
    "device_dtype",
    "language_model_batches",
    "pick_task",
]

TASKS = ("auto", "classify", "next_token")
RunFn = Callable[[], Any]


@dataclass
class ScoredBatch:
    """One batch of the evaluation data: how to run the model on it, and what is scored."""

    run: RunFn  # calls the model on this batch
    targets: Tensor  # (N,) class or next-token ids of the scored positions
    flatten: Callable[[Tensor], Tensor]  # model logits -> (N, C) logits of those positions
    row_mask: Tensor | None  # which layer rows are real (not padding) and spliced, flattened
    fixed: Tensor | None = None  # rows every pass leaves as they are (skip_first), flattened


def _unchanged(x: Tensor) -> Tensor:
    return x


class _FlatOrImages:
    """A classifier's output on X rows, as `collect_activations` feeds them: flat rows, or,
    if the model rejects those on the first batch, the Dataset's image batches (from then
    on). The flat rows' error is the one raised when images fail too."""

    def __init__(self, model: nn.Module, image_shape: tuple[int, ...]) -> None:
        self.model, self.image_shape = model, image_shape
        self.as_images: bool | None = None  # decided on the first batch

    def __call__(self, x: Tensor) -> Any:
        if self.as_images is not None:
            return self.model(image_batch(self.image_shape, x) if self.as_images else x)
        try:
            output = self.model(x.clone())  # the image try gets x unwritten
        except Exception as flat_error:
            try:
                output = self.model(image_batch(self.image_shape, x))
            except Exception:
                raise flat_error from None
            self.as_images = True
            return output
        self.as_images = False
        return output


@dataclass
class _Prepared:
    """model(prepare(x))."""

    model: nn.Module
    prepare: Callable[[Tensor], Any]

    def __call__(self, x: Tensor) -> Any:
        return self.model(self.prepare(x))


def device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's first floating-point parameter or buffer."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def takes_mask(model: nn.Module) -> bool:
    """Whether the model's forward takes an `attention_mask` (Hugging Face models do)."""
    try:
        return "attention_mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def classifier_batches(
    model: nn.Module,
    data: Any,
    labels: Any,
    input_fn: Callable[[Tensor], Any] | None,
    batch_size: int,
) -> list[ScoredBatch]:
    """A classifier's inputs (`data`, or its X) in batches, scored against `labels` (the
    Dataset's by default): (n,) one class per sample, or (n, T) one per position."""
    X = getattr(data, "X", data) if not isinstance(data, (np.ndarray, Tensor)) else data
    try:
        X_np = np.asarray(X.detach().cpu() if isinstance(X, Tensor) else X, dtype=np.float32)
    except (TypeError, ValueError) as err:  # strings, objects, ragged lists
        raise TypeError(
            f"data must hold numeric model inputs; got {type(X).__name__} ({err})"
        ) from err
    if X_np.ndim < 2 or X_np.shape[0] == 0:
        raise ValueError(f"data must hold model inputs (n_samples, ...); got shape {X_np.shape}")
    if labels is None:
        labels = getattr(data, "labels", None)
    if labels is None:
        raise ValueError(
            "labels: a classifier is scored against labels; pass labels= or a Dataset with labels"
        )
    y = label_array(labels)
    n = X_np.shape[0]
    if y.ndim in (1, 2) and y.shape[0] == n and y.dtype.kind not in "iu":
        # class names (strings, bools): numbered as the Dataset numbers them, against its
        # label_names when data has them (logit i is class label_names[i])
        codes, _ = encode_labels(y.reshape(-1), y.size, getattr(data, "label_names", None))
        y = codes.reshape(y.shape)
    if y.ndim not in (1, 2) or y.shape[0] != n or y.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be integers, one per sample ({n}), or one per position of each "
            f"sample (shape ({n}, n_positions)) for a model with per-position outputs; got "
            f"shape {y.shape} and dtype {y.dtype}"
        )
    device, dtype = device_dtype(model)
    prepare: Callable[[Tensor], Any] = input_fn if input_fn is not None else _unchanged
    forward: Callable[[Tensor], Any] = _Prepared(model, prepare)
    images = image_layout(data, X_np.shape[1]) if input_fn is None and X_np.ndim == 2 else None
    if images is not None:  # flat rows, or image batches if the model rejects them
        forward = _FlatOrImages(model, images)
    batches = []
    for start in range(0, n, batch_size):
        x = torch.from_numpy(X_np[start : start + batch_size]).to(device=device, dtype=dtype)
        check_cast(X_np[start : start + batch_size], x, start)
        targets = torch.from_numpy(y[start : start + batch_size].astype(np.int64)).to(device)
        keep = (targets >= 0).reshape(-1)  # -1: no label

        def run(x: Tensor = x) -> Any:
            # a copy: a model writing into its input (a first nn.ReLU(inplace=True)) wrote
            # into the caller's data, and into the next pass's input
            return forward(x.clone())

        def flatten(
            logits: Tensor, shape: torch.Size = targets.shape, keep: Tensor = keep
        ) -> Tensor:
            return class_scores(logits, shape)[keep]

        batches.append(
            ScoredBatch(run=run, targets=targets.reshape(-1)[keep], flatten=flatten, row_mask=None)
        )
    return batches


def class_scores(logits: Tensor, labels_shape: torch.Size) -> Tensor:
    """A classifier's logits as (N, n_classes) rows, one per label of `labels_shape`: per
    sample (b,) from (b, C) (or (b, 1, C)), per position (b, T) from (b, T, C).

    Logits of another shape (a language model's (b, T, vocab) against one label per sample)
    are refused: read as flat rows they scored T x vocab "classes", a meaningless figure."""
    shape = tuple(logits.shape)
    if len(labels_shape) == 2:  # a label per position
        if len(shape) == 3 and tuple(shape[:2]) == tuple(labels_shape):
            return logits.reshape(-1, shape[-1])
        raise ValueError(
            f"labels of shape (n_samples, {labels_shape[1]}) give a class per position, so the "
            f"model must return logits of shape (batch, {labels_shape[1]}, n_classes); it "
            f"returned logits of shape {shape} for a batch of {labels_shape[0]}"
        )
    per_sample = len(shape) >= 2 and shape[0] == labels_shape[0]
    if per_sample and all(size == 1 for size in shape[1:-1]):
        return logits.reshape(shape[0], shape[-1])
    if len(shape) == 3 and shape[0] == labels_shape[0]:
        raise ValueError(
            f"model returned logits of shape {shape} (batch, tokens, vocab): a score per "
            f"token, but labels give one class per sample, shape (n_samples,). For a "
            "language model pass its token ids, an integer array (n_sequences, n_tokens), "
            "or texts with tokenizer= (each next token is scored; task='next_token'); for a "
            f"per-token classifier pass labels of shape (n_samples, {shape[1]}), -1 where "
            "a position is not scored"
        )
    raise ValueError(
        f"model returned logits of shape {shape} for a batch of {labels_shape[0]}; a "
        "classifier must return (batch, n_classes)"
    )


def language_model_batches(
    model: nn.Module, data: Any, tokenizer: Any, batch_size: int, max_length: int, skip_first: int
) -> list[ScoredBatch]:
    """Texts or token ids in batches, each next token scored (padding left out); the first
    `skip_first` positions are marked to keep the layer's own output in every pass."""
    ids_np, mask_np = token_batches(data, tokenizer, max_length)
    # An id past the embedding is a tokenizer of another model: say so, not IndexError.
    check_token_ids(ids_np, model, "data" if tokenizer is None else "tokenizer")
    check_max_length(ids_np.shape[1], model, "data: tokens per sequence")
    device, _ = device_dtype(model)
    with_mask = takes_mask(model)
    batches = []
    for start in range(0, ids_np.shape[0], batch_size):
        ids = torch.from_numpy(ids_np[start : start + batch_size]).to(device)
        mask = torch.from_numpy(mask_np[start : start + batch_size]).to(device)
        scored = (mask[:, 1:] * mask[:, :-1]).bool().reshape(-1)
        fixed = torch.zeros(mask.shape, dtype=torch.bool, device=device)
        fixed[:, :skip_first] = True

        def run(ids: Tensor = ids, mask: Tensor = mask) -> Any:
            return model(input_ids=ids, attention_mask=mask) if with_mask else model(ids)

        def flatten(logits: Tensor, scored: Tensor = scored) -> Tensor:
            return logits[:, :-1].reshape(scored.shape[0], -1)[scored]

        batches.append(
            ScoredBatch(
                run=run,
                targets=ids[:, 1:].reshape(-1)[scored],
                flatten=flatten,
                row_mask=(mask.bool() & ~fixed).reshape(-1),
                fixed=fixed.reshape(-1) if skip_first else None,
            )
        )
    return batches


def check_targets(batch: ScoredBatch, n_logits: int) -> None:
    """A label (or next-token id) beyond the model's logits, named before torch's IndexError."""
    if batch.targets.numel() == 0:
        return
    largest = int(batch.targets.max())
    if largest < n_logits:
        return
    if batch.row_mask is None:  # a classifier's labels
        raise ValueError(
            f"labels must be class indices in [0, {n_logits}) for a model with {n_logits} "
            f"outputs (-1: unlabelled); got {largest}"
        )
    raise ValueError(
        f"data holds token id {largest}, beyond the model's {n_logits} logits: the tokenizer "
        "does not match the model"
    )


def pick_task(task: str, data: Any) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    if task != "auto":
        return task
    if isinstance(data, str) or (
        isinstance(data, Sequence) and data and all(isinstance(t, str) for t in data)
    ):
        return "next_token"
    if isinstance(data, (np.ndarray, Tensor)) and data.ndim == 2:
        kind = data.dtype.kind if isinstance(data, np.ndarray) else "f"
        if isinstance(data, Tensor) and not data.is_floating_point():
            kind = "i"
        if kind in "iu":
            return "next_token"
    return "classify"
