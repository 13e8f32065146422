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
            raise TypeError(f"layer {layer_name!r} returned {type(output).__name__}, not a tensor")
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
