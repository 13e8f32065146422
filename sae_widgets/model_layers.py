"""Naming a layer of any torch model, and finding the hidden states in what it returns:
shared by data/ (reading a layer's output) and sae/ (splicing an SAE into it), which never
import each other (DESIGN.md layering)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

# Layer names listed in the error for a name that is not in the model.
MAX_LISTED_NAMES = 40


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of `layer`, a dotted name as in `model.named_modules()` or the module."""
    name, module = _find_layer(model, layer)
    if isinstance(module, torch.jit.ScriptModule):  # a scripted part of an eager model
        raise TypeError(
            f"layer {name!r} is a TorchScript module ({type(module).__name__}): torch cannot "
            "hook it (register_forward_hook is not supported); hook an eager layer, or keep "
            "this part of the model unscripted"
        )
    return name, module


def _find_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        raise ValueError(
            "model has weights on the 'meta' device, which hold no values; materialise and "
            "load them first (model.to_empty(device='cpu'), then load_state_dict)"
        )
    if isinstance(model, torch.jit.ScriptModule):  # scripted or traced
        raise TypeError(
            f"model is a TorchScript module ({type(model).__name__}): torch cannot hook its "
            "layers (register_forward_hook is not supported, and a traced graph calls no "
            "submodule); pass the eager nn.Module it was scripted or traced from"
        )
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return name or type(model).__name__, module
        raise ValueError("layer is a module that is not part of model")
    if not isinstance(layer, str):
        raise TypeError(
            f"layer must be a submodule name (str) or an nn.Module; got {type(layer).__name__}"
        )
    if layer not in named:
        # named_modules() lists a module registered under two names (a shared layer, an
        # alias such as `self.alias = self.lin`) once, under its first name: the other
        # attribute path names it as well
        try:
            return layer, model.get_submodule(layer)
        except AttributeError:
            pass
        names = [n for n in named if n]
        listed = ", ".join(names[:MAX_LISTED_NAMES])
        if len(names) > MAX_LISTED_NAMES:
            listed += f", ... ({len(names)} in all)"
        raise ValueError(f"layer {layer!r} not found in model; available layers: {listed}")
    return layer or type(model).__name__, named[layer]  # "": the model itself, as layer=model


def is_model_output(output: Any) -> bool:
    """Whether a layer's output is a Hugging Face `ModelOutput` (an ordered mapping of its
    fields that are set, the main one first: `last_hidden_state`, `logits`...)."""
    return isinstance(output, Mapping) and callable(getattr(output, "to_tuple", None))


def main_output(output: Any) -> Any:
    """The hidden states in a layer's output: the tensor itself, a tuple's or list's first
    item (a decoder block's `(hidden, attention, ...)`) or a ModelOutput's first field;
    anything else as it is (the caller names it)."""
    if is_model_output(output):
        return next(iter(output.values()), None)
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return output


def with_main_output(output: Any, hidden: Any) -> Any:
    """`output` with its main output (see `main_output`) replaced by `hidden`."""
    if is_model_output(output):
        replaced = copy.copy(output)
        replaced[next(iter(output.keys()))] = hidden
        return replaced
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a NamedTuple
        named: Any = output
        return named._replace(**{named._fields[0]: hidden})
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    if isinstance(output, list):
        return [hidden, *output[1:]]
    return hidden
