"""Read one layer's output and stop the forward pass there: the hook both collectors share
(rows of a model, token rows of a transformer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class StopForward(Exception):
    """Raised by the hook once the layer has run: the rest of the model is not needed."""


class LayerOutputError(TypeError):
    """The hooked layer's output holds no tensor to read (a dict, None, ...): raised by the
    hook from inside the forward pass, and passed on as it is (not as the model's error)."""


def _describe(output: Any) -> str:
    if isinstance(output, dict):
        keys = ", ".join(repr(k) for k in list(output)[:8])
        return f"a {type(output).__name__} (keys {keys})"
    return type(output).__name__


@contextmanager
def capture_layer(
    model: nn.Module, module: nn.Module, layer_name: str, captured: list[torch.Tensor]
) -> Iterator[None]:
    """Within the block, each forward pass appends `module`'s output to `captured` and raises
    StopForward; the model runs in eval mode without gradients, and its hook and per-module
    train/eval modes are restored on exit (also on error)."""

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)) and output:
            output = output[0]  # a decoder block's (hidden, ...) tuple: keep the main output
        if not isinstance(output, torch.Tensor):
            raise LayerOutputError(
                f"layer {layer_name!r} returned {_describe(output)}, not a tensor (or a tuple "
                "whose first item is one); hook a submodule that outputs the activations"
            )
        captured.append(output.detach())
        raise StopForward

    modes = {m: m.training for m in model.modules()}
    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        handle.remove()
        for m, training in modes.items():
            m.training = training
