"""How a terminal user names a torch model for `sae-widgets train/eval --model ...`.

- a built-in: ``digits-mlp`` (`sw.datasets.digits_mlp()`, trained on the spot, deterministic;
  its default layer is ``net.1``);
- ``package.module:function``: a function (no arguments) that returns an ``nn.Module``,
  imported like Python imports anything (the current directory is searched first). A
  class also works when it needs no arguments.

Both return the model in eval mode. Mistakes raise `ValueError` naming --model or --layer.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

BUILTIN_MODELS = {"digits-mlp": "net.1"}  # name -> default layer


def load_model(spec: str, layer: str | None) -> tuple[Any, str]:
    """(model, layer) for --model and --layer (a built-in model has a default layer)."""
    from torch import nn

    if spec in BUILTIN_MODELS:
        from sae_widgets.data.datasets import digits_mlp

        return digits_mlp(), layer or BUILTIN_MODELS[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"--model must be one of {', '.join(BUILTIN_MODELS)} or 'module:function' (a "
            f"function returning a torch.nn.Module); got {spec!r}"
        )
    if layer is None:
        raise ValueError(f"--layer is required with --model {spec!r} (a submodule name)")
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module's own error while it loads
        raise ValueError(
            f"--model {spec!r}: cannot import {module_name!r} ({type(err).__name__}: {err})"
        ) from err
    finally:
        if added:
            sys.path.remove(cwd)
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ValueError(f"--model {spec!r}: {module_name} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as err:  # the user's function failed: one line, not a traceback
        raise ValueError(f"--model {spec!r}: {attr}() raised {type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"--model {spec!r}: {attr}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model.eval(), layer
