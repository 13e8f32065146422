"""Splice an SAE into a PyTorch model: replace one layer's output through a forward hook.

    with sw.Intervention(model, "net.1", sae):                  # the SAE reconstruction
        logits = model(x)
    with sw.Intervention(model, "net.1", sae, set={12: 0.0}):   # unit 12 off, error kept
        ...
    with sw.Intervention(model, "net.1", sae, steer={12: 4.0}): # + 4 * W_dec[12]
        ...
    with sw.Intervention(model, "net.1", ablate="zero"):        # the layer's output zeroed
        ...

The layer's output is the tensor it returns, or the hidden states of a tuple/list output (a
transformer block's `(hidden, attention, ...)`: only the first element is replaced). Its rows
for the SAE are the last axis when that has the SAE's width (token rows of a (batch, tokens,
d) output), else each sample's output flattened (a conv layer's (batch, c, h, w)).

Every hook is removed when the block ends, however it ends (an exception inside the model,
KeyboardInterrupt): `__exit__` removes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sae_widgets.sae.inputs import MAX_ABS_INPUT
from sae_widgets.sae.layer_hooks import (
    capture_output,
    output_hook,
    replace_output,
    resolve_layer,
    sae_module,
)
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.tensor_checks import check_has_values
from sae_widgets.wording import counted

__all__ = [
    "Intervention",
    "Reconstruction",
    "capture_output",
    "reconstruct",
    "replace_output",
    "resolve_layer",
    "sae_module",
]

_ABLATIONS = ("zero", "mean")


def reconstruct(sae: SparseAutoencoder, x: Tensor) -> Tensor:
    """decode(encode(x)); for TopK the decoder gathers the k active rows (embedding_bag)
    instead of multiplying a (rows, n_units) matrix that is mostly zeros."""
    return Reconstruction(sae)(x)


class Reconstruction:
    """decode(encode(x)) of one SAE in as few tensor operations as possible: splicing into a
    small model pays per operation as much as per flop. For TopK: the encoder exactly as
    `SparseAutoencoder.preacts` (folding b_dec into the bias would save a subtraction but
    moves results by ~1e-5), the k active rows of each sample gathered by one embedding_bag
    (no dense (rows, n_units) codes), in chunks of rows whose pre-activations stay in cache
    (a language model's 8,192 token rows x 3,072 units would be a 100 MB matrix read twice),
    and the weights used detached (ops on parameters that require grad cost more, even under
    no_grad); the cached weights are refreshed whenever a parameter is replaced or changed in
    place. Other activations: decode(encode(x)).
    """

    CHUNK_ROWS = 1024  # MiniLM shapes, 1 thread: 1,024-row chunks take ~0.76x the one-shot time

    def __init__(self, sae: SparseAutoencoder) -> None:
        self.sae = sae
        self._key: tuple[int, ...] = ()
        self._weights: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(W_enc, b_enc, W_dec, b_dec), detached, as of now."""
        sae = self.sae
        params = (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
        key = (*map(id, params), *(p._version for p in params))
        if self._weights is None or key != self._key:
            W_enc, b_enc, W_dec, b_dec = (p.detach() for p in params)
            self._weights = (W_enc, b_enc, W_dec, b_dec)
            self._key = key
        return self._weights

    def __call__(self, x: Tensor) -> Tensor:
        sae = self.sae
        if sae.cfg.activation != "topk":
            return sae.decode(sae.encode(x))
        W_enc, b_enc, W_dec, b_dec = self.weights()
        k = sae.cfg.k or 1  # k is set for topk
        n_rows, chunk = x.shape[0], self.CHUNK_ROWS
        if n_rows <= chunk + chunk // 2:
            values, units = torch.addmm(b_enc, x - b_dec, W_enc).topk(k, dim=1, sorted=False)
            out = F.embedding_bag(units, W_dec, mode="sum", per_sample_weights=values.relu_())
            return out.add_(b_dec)
        out = x.new_empty(n_rows, W_dec.shape[1])
        for start in range(0, n_rows, chunk):
            stop = min(n_rows, start + chunk)
            pre = torch.addmm(b_enc, x[start:stop] - b_dec, W_enc)
            values, units = pre.topk(k, dim=1, sorted=False)
            rows = F.embedding_bag(units, W_dec, mode="sum", per_sample_weights=values.relu_())
            torch.add(rows, b_dec, out=out[start:stop])
        return out


def _unit_values(spec: Any, name: str, n_units: int, pairs: bool = False) -> dict[int, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise TypeError(f"{name} must be a dict {{unit: value}}; got {type(spec).__name__}")
    out: dict[int, Any] = {}
    for unit, value in spec.items():
        if isinstance(unit, bool) or not hasattr(unit, "__index__"):
            raise TypeError(f"{name}: unit keys must be ints; got {unit!r}")
        u = int(unit)
        if not 0 <= u < n_units:
            raise ValueError(
                f"{name}: unit {u} out of range for an SAE with {counted(n_units, 'unit')}"
            )
        if pairs:
            if not (isinstance(value, (tuple, list)) and len(value) == 2):
                raise TypeError(f"{name}[{u}] must be a (low, high) pair; got {value!r}")
            low, high = (None if v is None else _number(v, f"{name}[{u}]") for v in value)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name}[{u}]: low {low} is above high {high}")
            out[u] = (low, high)
        else:
            out[u] = _number(value, f"{name}[{u}]")
    return out


def _number(value: Any, name: str) -> float:
    if isinstance(value, str | bytes):  # float("1") would take the text
        raise TypeError(f"{name} must be a number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):  # a meta tensor too
        raise TypeError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if abs(number) > MAX_ABS_INPUT:  # float32 (the SAE's arithmetic) would overflow to inf
        raise ValueError(f"{name} must be at most {MAX_ABS_INPUT:.0e} in magnitude; got {value!r}")
    return number


def _mean_vector(mean: Any) -> Tensor:
    """`ablate="mean"`'s mean as a flat float32 tensor, or an error naming mean."""
    if torch.is_tensor(mean):
        check_has_values(mean, "mean")
    try:
        vector = torch.as_tensor(mean).detach().reshape(-1)
    except (TypeError, ValueError, RuntimeError):  # torch's "new(): invalid data type"
        raise TypeError(
            f"mean must be the layer's (width,) mean output, numbers; got {mean!r:.80}"
        ) from None
    if vector.is_complex():  # .float() dropped the imaginary part
        raise TypeError(f"mean must hold real numbers; got dtype {vector.dtype}")
    if vector.numel() == 0:
        raise ValueError("mean must hold the layer's (width,) mean output, at least one value")
    vector = vector.float()
    if not bool(torch.isfinite(vector).all()):
        raise ValueError("mean contains NaN or infinite values")
    return vector


class Intervention:
    """Replace or edit one layer's output while the model runs (a context manager).

    Parameters
    ----------
    model, layer:
        The torch model and the layer (dotted name or module) whose output is edited (every
        call of it, where the model calls it more than once per pass; `collect_activations`
        takes the first call's output).
    sae:
        A fitted `SAE` (or SparseAutoencoder) trained on that layer's output. Needed for
        every edit except `ablate`.
    set, add, clamp:
        Edits of unit activations in SAE space, dicts {unit: value}: `set` replaces the
        activation, `add` adds to it, `clamp` keeps it in a range {unit: (low, high)} (None:
        unbounded). Applied in that order.
    steer:
        {unit: alpha}: add alpha * W_dec[unit] to the layer's output (no encoding).
    ablate:
        "zero" (the output becomes 0) or "mean" (it becomes `mean`, the layer's mean output:
        a (width,) vector). Needs no SAE and excludes the other edits.
    keep_error:
        Keep the SAE's reconstruction error, so the output is x + (edited codes - codes) @
        W_dec and "no change" is exactly the original model. Default: True when a unit is
        edited (set/add/clamp/steer); False for a bare `Intervention(model, layer, sae)`,
        which splices in the SAE reconstruction itself.

    Use `with Intervention(...):` around calls to the model. `edit_rows(x)` is the edit as
    a function of the layer's (rows, width) output, for checks and custom loops. Under
    `torch.no_grad()` / `torch.inference_mode()` the edit takes its fast path; with autograd
    on it is differentiable: gradients flow through it to the model's inputs and parameters
    upstream of the layer and to the SAE's parameters (attribution, end-to-end training).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module,
        sae: Any = None,
        *,
        set: Mapping[int, float] | None = None,
        add: Mapping[int, float] | None = None,
        clamp: Mapping[int, tuple[float | None, float | None]] | None = None,
        steer: Mapping[int, float] | None = None,
        ablate: str | None = None,
        mean: Any = None,
        keep_error: bool | None = None,
    ) -> None:
        self.layer_name, self.module = resolve_layer(model, layer)
        self.model = model
        self.sae = None if sae is None else sae_module(sae)
        if ablate is not None and ablate not in _ABLATIONS:
            raise ValueError(f"ablate must be one of {_ABLATIONS} or None; got {ablate!r}")
        edits = {"set": set, "add": add, "clamp": clamp, "steer": steer}
        # `is not None`, not truthiness: an array given by mistake must reach the type check
        given = [
            name
            for name, spec in edits.items()
            if spec is not None and not (isinstance(spec, Mapping) and not spec)
        ]
        if ablate is not None and given:
            raise ValueError(f"ablate={ablate!r} replaces the whole output; drop {given}")
        if ablate is None and self.sae is None:
            raise ValueError("sae is required unless ablate='zero' or 'mean'")
        n_units = 0 if self.sae is None else self.sae.cfg.n_units
        self.set = _unit_values(set, "set", n_units)
        self.add = _unit_values(add, "add", n_units)
        self.clamp = _unit_values(clamp, "clamp", n_units, pairs=True)
        self.steer = _unit_values(steer, "steer", n_units)
        self.ablate = ablate
        self.width: int | None = None if self.sae is None else self.sae.cfg.d_in
        self.mean: Tensor | None = None
        if ablate == "mean":
            if mean is None:
                raise ValueError("ablate='mean' needs mean=, the layer's (width,) mean output")
            self.mean = _mean_vector(mean)
            self.width = self.mean.numel()
        elif mean is not None:
            raise ValueError("mean= is only used with ablate='mean'")
        edited = bool(self.set or self.add or self.clamp or self.steer)
        if keep_error is not None and not isinstance(keep_error, bool | np.bool_):
            # "no" or 0.5 was taken by its truth value
            raise TypeError(f"keep_error must be True, False or None; got {keep_error!r}")
        self.keep_error = edited if keep_error is None else bool(keep_error)
        bare = self.sae is not None and not edited and not self.keep_error
        self._splice = Reconstruction(self.sae) if bare and self.sae is not None else None
        self._fitting_dtypes: list[torch.dtype] = []  # layer dtypes the edits fit in
        self._hook = output_hook(self.layer_name, self._hooked_edit, self.width)
        self._handle: Any = None

    # ----------------------------------------------------------------- the edit
    @torch.no_grad()
    def edit_rows(self, x: Any) -> Any:
        """The edited output for (rows, width) layer outputs `x` (same shape; x's dtype, float32
        for integers): a tensor, or a numpy array (answered in numpy; it was an
        AttributeError on `.to`)."""
        if torch.is_tensor(x):
            check_has_values(x, "x")
            if x.dtype == torch.bool or x.is_complex():  # edited as 0/1 or as the real part
                raise TypeError(
                    f"x must be (rows, width) layer outputs of real numbers; got dtype {x.dtype}"
                )
            # integers as numpy's are: edited in float32 (a cast back truncated the edit)
            return self._edit(x if x.is_floating_point() else x.float())
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
            raise TypeError(
                f"x must be a torch tensor or numpy array of (rows, width) layer outputs; got "
                f"{type(x).__name__}{f' of dtype {x.dtype}' if isinstance(x, np.ndarray) else ''}"
            )
        floats = x if x.dtype.kind == "f" else x.astype(np.float32)
        return self._edit(torch.from_numpy(np.ascontiguousarray(floats))).numpy()

    def _edit(self, x: Tensor, fast: bool = True) -> Tensor:
        """The edit of rows `x`; `fast=False` (autograd on) takes only differentiable ops on
        the SAE's own parameters, so gradients reach x, the model upstream and the SAE."""
        if self._splice is not None and fast:  # the bare splice: the reconstruction itself
            W_dec = self._splice.sae.W_dec
            if x.dtype == W_dec.dtype and x.device == W_dec.device:
                return self._splice(x)
            x_f = x.to(device=W_dec.device, dtype=W_dec.dtype)
            return self._splice(x_f).to(device=x.device, dtype=x.dtype)
        if self.ablate == "zero":
            return torch.zeros_like(x)
        if self.ablate == "mean":
            assert self.mean is not None
            return self.mean.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
        sae = self.sae
        assert sae is not None
        self._check_fits(x.dtype)
        W_dec = sae.W_dec
        x_f = x.to(device=W_dec.device, dtype=W_dec.dtype)
        if self.set or self.add or self.clamp:
            codes = sae.encode(x_f)
            new = codes.clone()
            for unit, value in self.set.items():
                new[:, unit] = value
            for unit, value in self.add.items():
                new[:, unit] += value
            for unit, (low, high) in self.clamp.items():
                if low is not None or high is not None:  # (None, None): unbounded, no edit
                    # clamp of a copy: autograd keeps clamp's input, which this write changes
                    new[:, unit] = new[:, unit].clone().clamp(low, high)
            if self.keep_error:
                units = sorted({*self.set, *self.add, *self.clamp})
                delta = (new[:, units] - codes[:, units]) @ W_dec[units]
                out = x + delta.to(device=x.device, dtype=x.dtype)
            else:
                out = sae.decode(new).to(device=x.device, dtype=x.dtype)
        elif not self.keep_error:
            rebuilt = reconstruct(sae, x_f) if fast else sae.decode(sae.encode(x_f))
            out = rebuilt.to(device=x.device, dtype=x.dtype)
        else:
            out = x
        if self.steer:
            units = list(self.steer)
            alphas = torch.tensor([self.steer[u] for u in units], dtype=W_dec.dtype)
            direction = alphas.to(W_dec.device) @ W_dec[units]
            out = out + direction.to(device=x.device, dtype=x.dtype)
        return out

    def _check_fits(self, dtype: torch.dtype) -> None:
        """ValueError naming the edit whose push alone overflows the layer's `dtype` (float16's
        largest value is 65504): the edited output would hold inf, and the model NaN. Checked
        once per dtype, from the decoder rows of the edited units."""
        if dtype in self._fitting_dtypes or not dtype.is_floating_point or self.sae is None:
            return
        limit = float(torch.finfo(dtype).max)
        W_dec = self.sae.W_dec.detach()
        pushes = [(f"steer[{u}]", a, u) for u, a in self.steer.items()]
        for name in ("set", "add", "clamp"):
            for unit, value in getattr(self, name).items():
                values = value if name == "clamp" else (value,)
                pushes += [(f"{name}[{unit}]", v, unit) for v in values if v is not None]
        for name, value, unit in pushes:
            size = float(W_dec[unit].abs().max())  # the unit's largest decoder weight
            if abs(value) * size > limit:
                raise ValueError(
                    f"{name}={value:g} overflows the layer's {dtype} output: it moves an "
                    f"output value by up to {abs(value) * size:.3g}, beyond {dtype}'s largest "
                    f"{limit:g}; expected |{name}| at most {limit / size:.3g} for this layer "
                    "(or run the layer in float32)"
                )
        if self.steer:  # the units' pushes together
            units = list(self.steer)
            alphas = torch.tensor([self.steer[u] for u in units], dtype=W_dec.dtype)
            peak = float((alphas.to(W_dec.device) @ W_dec[units]).abs().max())
            if peak > limit:
                raise ValueError(
                    f"steer={self.steer} overflows the layer's {dtype} output: together the "
                    f"units move an output value by {peak:.3g}, beyond {dtype}'s largest "
                    f"{limit:g}; expected smaller alphas for this layer"
                )
        self._fitting_dtypes.append(dtype)

    def _hooked_edit(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            # With autograd on, the edit is part of the graph when anything in it needs a
            # gradient: under no_grad it cut every path through the layer (the model's
            # parameters upstream got no gradient and the inputs none, without a word).
            if x.requires_grad or any(p.requires_grad for p in self._parameters()):
                return self._edit(x, fast=False)
            with torch.no_grad():
                return self._edit(x)
        return self._edit(x)

    def _parameters(self) -> list[Tensor]:
        return [] if self.sae is None else list(self.sae.parameters())

    # ----------------------------------------------------------------- context manager
    def __enter__(self) -> Intervention:
        if self._handle is not None:
            raise RuntimeError("this Intervention is already active; it cannot be nested")
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()

    @property
    def active(self) -> bool:
        """Whether the hook is installed (inside the `with` block)."""
        return self._handle is not None

    def __repr__(self) -> str:
        parts = [f"layer={self.layer_name!r}"]
        if self.ablate is not None:
            parts.append(f"ablate={self.ablate!r}")
        for name in ("set", "add", "clamp", "steer"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        if self.ablate is None:
            parts.append(f"keep_error={self.keep_error}")
        return f"Intervention({', '.join(parts)})"
