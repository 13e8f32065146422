"""Forward hooks on one layer of a PyTorch model: find the layer, read or replace its output.

The layer's output is the tensor it returns, or the hidden states of a tuple/list output (a
transformer block's `(hidden, attention, ...)`: only the first element is replaced). Its rows
are the last axis when that has the expected width (token rows of a (batch, tokens, d)
output), else each sample's output flattened (a conv layer's (batch, c, h, w)). Hooks are
removed when their block ends, however it ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from sae_widgets.model_layers import main_output, resolve_layer, with_main_output
from sae_widgets.sae.model import SparseAutoencoder

__all__ = [
    "RowFn",
    "capture_output",
    "output_hook",
    "replace_output",
    "resolve_layer",
    "sae_module",
]

RowFn = Callable[[Tensor], Tensor]


def sae_module(sae: Any) -> SparseAutoencoder:
    """The fitted SparseAutoencoder inside `sae` (an `SAE` estimator or the module itself)."""
    if isinstance(sae, SparseAutoencoder):
        return sae
    module = getattr(sae, "model_", None)
    if isinstance(module, SparseAutoencoder):
        return module
    if hasattr(sae, "model_") or type(sae).__name__ == "SAE":
        raise ValueError("sae is not fitted yet; call fit first")
    raise TypeError(f"sae must be a fitted SAE or SparseAutoencoder; got {type(sae).__name__}")


def _hidden(output: Any, layer: str) -> Tensor:
    hidden = main_output(output)
    if isinstance(hidden, Tensor):
        return hidden
    raise TypeError(
        f"layer {layer!r} returned {type(output).__name__}; expected a tensor, a tuple whose "
        "first element is the hidden-state tensor, or a ModelOutput whose first field is"
    )


def _with_hidden(output: Any, hidden: Tensor) -> Any:
    return hidden if isinstance(output, Tensor) else with_main_output(output, hidden)


def _as_rows(hidden: Tensor, width: int | None, layer: str) -> Tensor:
    """(rows, width) view of a layer output: token rows, or one flattened row per sample."""
    if hidden.ndim == 0:  # one number for the whole batch: no rows to edit
        raise ValueError(
            f"layer {layer!r} output has shape (); the SAE reads vectors (the last axis, or "
            "each sample's output flattened): hook a layer with an output per sample"
        )
    if width is None or hidden.shape[-1] == width:
        return hidden.reshape(-1, hidden.shape[-1])
    if hidden.ndim >= 1 and math.prod(hidden.shape[1:]) == width:
        return hidden.reshape(hidden.shape[0], width)
    raise ValueError(
        f"layer {layer!r} output has shape {tuple(hidden.shape)}; the SAE reads vectors of "
        f"width {width} (the last axis, or each sample's output flattened)"
    )


def output_hook(name: str, fn: RowFn, width: int | None) -> Callable[..., Any]:
    """A forward hook replacing `name`'s output rows x (module docstring) by fn(x). A plain
    tensor output whose last axis is the SAE's width takes the short path (no tuple or
    shape handling): the hook runs once per forward pass, often on small models."""

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if type(output) is Tensor and output.ndim == 2 and output.shape[-1] == width:
            new = fn(output)
            if new is output:
                return None
            if new.shape != output.shape:
                raise ValueError(
                    f"replacement of {name!r} changed shape {output.shape} -> {new.shape}"
                )
            return new if new.dtype == output.dtype else new.to(output.dtype)
        hidden = _hidden(output, name)
        rows = _as_rows(hidden, width, name)
        new = fn(rows)
        if new is rows:  # unchanged: leave the output alone
            return None
        if new.shape != rows.shape:
            raise ValueError(f"replacement of {name!r} changed shape {rows.shape} -> {new.shape}")
        return _with_hidden(output, new.to(hidden.dtype).reshape(hidden.shape))

    return hook


@contextmanager
def replace_output(
    model: nn.Module, layer: str | nn.Module, fn: RowFn, width: int | None = None
) -> Iterator[str]:
    """Within the block, `layer`'s output rows x (see the module docstring) become fn(x).

    fn maps a (rows, width) tensor to one of the same shape. Yields the layer's name; the
    hook is removed when the block ends, whatever ends it.
    """
    name, module = resolve_layer(model, layer)
    handle = module.register_forward_hook(output_hook(name, fn, width))
    try:
        yield name
    finally:
        handle.remove()


@contextmanager
def capture_output(
    model: nn.Module, layer: str | nn.Module, width: int | None = None
) -> Iterator[list[Tensor]]:
    """Within the block, each output of `layer` (as rows, detached) is appended to the
    yielded list. A capture entered after an Intervention on the same layer sees the edit.
    The rows are copies: the layer's output tensor itself may be changed in place later in
    the same pass (a following `nn.ReLU(inplace=True)`, as in torchvision's ResNets)."""
    name, module = resolve_layer(model, layer)
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(_as_rows(_hidden(output, name), width, name).detach().clone())

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()
