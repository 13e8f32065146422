"""Read one layer's output and stop the forward pass there: the hook both collectors share
(rows of a model, token rows of a transformer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from sae_widgets.model_layers import main_output
from sae_widgets.tensor_checks import check_cast, densified


class StopForward(Exception):
    """Raised by the hook once the layer has run: the rest of the model is not needed."""


class ModelError(ValueError):
    """The model's forward pass raised; the model's own exception is the __cause__."""


class LayerOutputError(TypeError):
    """The hooked layer's output holds no tensor to read (a dict, None, ...): raised by the
    hook from inside the forward pass, and passed on as it is (not as the model's error)."""


def _describe(output: Any) -> str:
    if isinstance(output, dict):
        keys = ", ".join(repr(k) for k in list(output)[:8])
        return f"a {type(output).__name__} (keys {keys})"
    return type(output).__name__


def as_float32(output: torch.Tensor, layer_name: str) -> torch.Tensor:
    """The captured output as a dense float32 tensor (still on its device), or an error naming
    the layer: complex values (their imaginary part would be dropped with only a warning) are
    a LayerOutputError, finite values beyond float32's range (they would become inf) a
    ValueError. Sparse outputs are densified (torch cannot reshape them). NaN and inf pass:
    the caller names the first row holding one."""
    output = densified(output)
    if output.is_complex():
        raise LayerOutputError(
            f"layer {layer_name!r} output holds complex numbers (dtype {output.dtype}); hook a "
            "layer with real outputs, or take .real or .abs() of it in a small wrapper module"
        )
    converted = output.to(torch.float32)
    if output.dtype == torch.float64 and not bool(torch.isfinite(converted).all()):
        if bool(torch.isfinite(output).all()):
            raise ValueError(
                f"layer {layer_name!r} produced float64 activations beyond float32's range "
                f"(|x| up to {float(output.abs().max()):.3g} > 3.4e38); rescale the model's "
                "outputs (e.g. in a small wrapper module)"
            )
    return converted


@contextmanager
def capture_layer(
    model: nn.Module, module: nn.Module, layer_name: str, captured: list[torch.Tensor]
) -> Iterator[None]:
    """Within the block, each forward pass appends `module`'s output to `captured` and raises
    StopForward; the model runs in eval mode without gradients, and its hook and per-module
    train/eval modes are restored on exit (also on error)."""

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        whole = output
        # a decoder block's (hidden, ...) tuple, a ModelOutput: keep the main output
        output = main_output(output)
        if not isinstance(output, torch.Tensor):
            raise LayerOutputError(
                f"layer {layer_name!r} returned {_describe(whole)}, not a tensor (or a tuple "
                "whose first item is one, or a ModelOutput whose first field is); hook a "
                "submodule that outputs the activations"
            )
        if output.is_meta:  # a shape without values: every read of it is torch's own error
            raise LayerOutputError(
                f"layer {layer_name!r} returned a tensor on the 'meta' device, which holds no "
                "values; materialise the model's weights (or hook a layer that computes)"
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


def run_to_layer(
    forward: Callable[[], object], captured: list[torch.Tensor], layer_name: str, batch: str
) -> torch.Tensor:
    """The hooked layer's output from `forward()` (run inside `capture_layer` into
    `captured`): the model's own errors become a ModelError naming the `batch` it ran on
    (chained); the hook's pass as they are; a layer the pass never reached is named."""
    captured.clear()
    try:
        forward()
    except StopForward:
        pass
    except LayerOutputError:  # the hook's, not the model's: no input-shape hint applies
        raise
    except Exception as err:  # the model's own error, reported as such (and chained)
        raise ModelError(f"model raised {type(err).__name__} on {batch}: {err}") from err
    if not captured:
        raise ValueError(f"layer {layer_name!r} was not called by model's forward pass")
    return captured[0]


def model_batch(
    rows: np.ndarray, device: torch.device, dtype: torch.dtype, start: int
) -> torch.Tensor:
    """float32 rows (the caller's `start`..) as the model's input: a copy (a model writing
    into its input, a first nn.ReLU(inplace=True), wrote into the caller's data; torch warns
    on read-only memory), on `device` in the model's `dtype` (`check_cast`)."""
    batch = torch.from_numpy(rows.copy()).to(device=device, dtype=dtype)
    check_cast(rows, batch, start)
    return batch
