"""The one canonical weights record every checkpoint layout is read into and written from.

Convention (ours, also SAELens' with ``apply_b_dec_to_input=True``)::

    codes_BU = activation((x_BD - b_dec_D) @ W_enc_DU + b_enc_U)
    x_hat_BD = codes_BU @ W_dec_UD + b_dec_D

Readers of other layouts convert to this convention exactly (folding biases and scales into
the weights), so every reader can be checked against the library's own formula.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sae_widgets.sae import registry
from sae_widgets.tensor_checks import densified


@dataclass
class CheckpointWeights:
    """An SAE's weights in our convention, whatever layout they came from.

    Tensors are converted to contiguous float32 on the CPU and validated on construction.
    """

    W_enc: Tensor
    """(d_in, n_units) encoder matrix."""
    b_enc: Tensor
    """(n_units,) encoder bias."""
    W_dec: Tensor
    """(n_units, d_in) decoder matrix; row u is unit u's direction."""
    b_dec: Tensor
    """(d_in,) decoder bias, also subtracted from the input before encoding."""
    activation: str
    """A name in `sae_widgets.sae.registry.ACTIVATIONS`."""
    k: int | None = None
    """Active units per sample for topk; the training-time batch average for batchtopk;
    jumprelu: the L0 its thresholds started at (optional); None where k is unused."""
    threshold: Tensor | None = None
    """(n_units,) per-unit threshold for activations that keep one (>= 0 for foreign
    layouts)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-safe facts from the file: our metadata block, or the foreign config."""
    layout: str = "unknown"
    """Which layout the weights were read from (or will be written as)."""
    prefix_sizes: tuple[int, ...] | None = None
    """Nested-prefix activations (Matryoshka): increasing prefix sizes, the last n_units."""
    training_state: dict[str, Tensor] = field(default_factory=dict)
    """Ours only: the trainer's tensors (Adam's moments...) that let training resume
    (`sae_widgets.sae.trainer_state`); empty when the checkpoint has none."""

    def __post_init__(self) -> None:
        self.W_enc = _float_tensor("W_enc", self.W_enc, ndim=2)
        d_in, n_units = self.W_enc.shape
        self.b_enc = _float_tensor("b_enc", self.b_enc, shape=(n_units,))
        self.W_dec = _float_tensor("W_dec", self.W_dec, shape=(n_units, d_in))
        self.b_dec = _float_tensor("b_dec", self.b_dec, shape=(d_in,))
        spec = registry.get(self.activation)
        if spec.k == "architecture" or (spec.k == "init" and self.k is not None):
            if isinstance(self.k, bool) or not isinstance(self.k, int):
                raise ValueError(f"k must be an int for {self.activation}; got {self.k!r}")
            if not 1 <= self.k <= (n_units if spec.k == "architecture" else self.k):
                raise ValueError(f"k must be in [1, n_units={n_units}]; got {self.k}")
        elif spec.k == "unused":
            self.k = None
        if spec.threshold != "none":
            if self.threshold is None:
                raise ValueError(f"threshold is required for {self.activation}")
            self.threshold = _float_tensor("threshold", self.threshold, shape=(n_units,))
        elif self.threshold is not None:
            raise ValueError(f"{self.activation} keeps no threshold; got one")
        self.prefix_sizes = _prefix_sizes(spec, self.prefix_sizes, n_units)

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.W_enc.shape[1])

    def tensors(self) -> dict[str, Tensor]:
        """The weights by our (and SAELens') key names."""
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


def _prefix_sizes(
    spec: registry.ActivationSpec, sizes: Any, n_units: int
) -> tuple[int, ...] | None:
    if not spec.prefixes:
        if sizes is not None:
            raise ValueError(f"prefix_sizes applies to nested-prefix activations, not {spec.name}")
        return None
    if sizes is None:
        return registry.default_prefix_sizes(n_units)
    if isinstance(sizes, str | bytes) or not isinstance(sizes, list | tuple):
        raise ValueError(f"prefix_sizes must be a list of integers; got {sizes!r}")
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in sizes)
    if not ok or not sizes or sizes[-1] != n_units or sizes[0] < 1:
        ok = False
    if not ok or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ValueError(
            f"prefix_sizes must be increasing integers ending at n_units={n_units}; got {sizes!r}"
        )
    return tuple(int(v) for v in sizes)


def _float_tensor(
    name: str, value: Any, ndim: int | None = None, shape: tuple[int, ...] | None = None
) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if not (value.is_floating_point()):
        raise ValueError(f"{name} must hold floating-point numbers; got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {tuple(value.shape)}")
    if shape is not None and tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}; got {tuple(value.shape)}")
    tensor = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} holds NaN or infinite values (corrupt checkpoint?)")
    return tensor


def orient(name: str, matrix: Tensor, rows: int, cols: int, documented_transposed: bool) -> Tensor:
    """Return `matrix` as (rows, cols), deciding its orientation from its shape.

    A square matrix cannot tell, so it follows the layout's documented orientation:
    `documented_transposed` says the layout stores it as (cols, rows).
    """
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {tuple(matrix.shape)}")
    shape = tuple(matrix.shape)
    if rows == cols and shape == (rows, cols):
        return matrix.T if documented_transposed else matrix
    if shape == (rows, cols):
        return matrix
    if shape == (cols, rows):
        return matrix.T
    raise ValueError(f"{name} must have shape ({rows}, {cols}) or ({cols}, {rows}); got {shape}")


def fold_input_bias(W_enc_DU: Tensor, b_enc_U: Tensor, b_dec_D: Tensor) -> Tensor:
    """Encoder bias that gives the same codes once b_dec is subtracted from the input.

    A layout that encodes `x @ W_enc + b_enc` without subtracting b_dec equals ours with
    `b_enc' = b_enc + b_dec @ W_enc`; computed in float64 to add as little rounding as possible.
    """
    folded = b_enc_U.double() + b_dec_D.double() @ W_enc_DU.double()
    return folded.to(torch.float32)


def fold_decoder_norm(
    W_enc_DU: Tensor, b_enc_U: Tensor, W_dec_UD: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Scale unit u's encoder by |W_dec[u]| and its decoder by 1/|W_dec[u]|.

    For layouts whose codes are `pre_acts * |W_dec[u]|` and whose decoder divides them back
    (SAELens topk with rescale_acts_by_decoder_norm): the same codes and reconstructions with
    plain weights. The norm is clamped at 1e-8 as SAELens does.
    """
    norm_U = W_dec_UD.norm(dim=-1).clamp(min=1e-8)
    return W_enc_DU * norm_U, b_enc_U * norm_U, W_dec_UD / norm_U[:, None]


def fold_input_scaling(record: CheckpointWeights, scale: float) -> CheckpointWeights:
    """Weights that take raw inputs x where `record` was trained on `x * scale`.

    codes = act((x*s - b_dec) @ W_enc + b_enc) = act((x - b_dec/s) @ (s W_enc) + b_enc) and the
    reconstruction of x is (codes @ W_dec + b_dec) / s, as SAELens'
    fold_activation_norm_scaling_factor does.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number; got {scale!r}")
    return CheckpointWeights(
        W_enc=record.W_enc * scale,
        b_enc=record.b_enc,
        W_dec=record.W_dec / scale,
        b_dec=record.b_dec / scale,
        activation=record.activation,
        k=record.k,
        threshold=record.threshold,
        metadata=record.metadata,
        layout=record.layout,
        prefix_sizes=record.prefix_sizes,
    )


# ---- safe file reading: never executes code, turns any corruption into a ValueError ----


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; any unreadable or invalid content is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a readable JSON config (not UTF-8 text: {err})") from err
    except OSError as err:
        raise unreadable(path, err) from err
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"{path}: not a usable JSON config (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, NaN/Infinity, a 5000-digit integer
        raise ValueError(f"{path}: not a readable JSON config ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object; got {type(data).__name__}")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write null or a finite number)")


def unreadable(path: Path, err: OSError) -> OSError:
    """The OSError to raise for a checkpoint file we may not or cannot read: names the file."""
    reason = err.strerror or str(err)
    return type(err)(err.errno, f"{path}: the file cannot be read ({reason})")


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """All tensors of a .safetensors file (the format holds data only, no code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(path, "rb"):  # a permission problem is not a corrupt file
            pass
    except OSError as err:
        raise unreadable(path, err) from err
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: truncated or corrupt safetensors file ({err})") from err
    return real_tensors(tensors, path)


def real_tensors(tensors: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """`tensors`, or a ValueError naming one that holds complex numbers: the readers convert
    with .float(), which kept only the real part (a torch warning, no error)."""
    for name, tensor in tensors.items():
        if tensor.is_complex():
            raise ValueError(
                f"{path}: tensor {name!r} holds complex numbers ({tensor.dtype}); an SAE's "
                "weights are real"
            )
    return tensors


def read_torch_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a torch.save'd state dict, unpickled with weights_only=True (no code runs)."""
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and storage errors all mean "not a valid file"
        raise ValueError(
            f"{path}: truncated, corrupt or unsafe torch file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a state dict; got {type(loaded).__name__}")
    # Some trainers store small non-tensor entries (e.g. hub configs) beside the weights; a
    # sparse tensor (torch.save keeps its layout) is read densely like any weight.
    tensors = {
        str(key): densified(value) for key, value in loaded.items() if isinstance(value, Tensor)
    }
    return real_tensors(tensors, path)


def require(tensors: dict[str, Tensor], path: Path, *names: str) -> list[Tensor]:
    """The named tensors, or a ValueError naming what is missing."""
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ValueError(
            f"{path}: missing tensor(s) {', '.join(missing)}; found {', '.join(sorted(tensors))}"
        )
    return [tensors[name] for name in names]


def config_int(cfg: dict[str, Any], key: str, path: Path) -> int:
    value = cfg.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ValueError(f"{path}: config field {key!r} must be an integer; got {value!r}")
    return int(value)
