"""Declarative constraints of the `SAE` estimator's parameters (scikit-learn's
`_parameter_constraints` idea, as a small table of our own).

`SAE_PARAMETERS` maps every constructor parameter to one `Constraint`; `check_param` checks
one value (used by `SAE.set_params`), `check_params` checks a whole set, the cross-parameter
rules included (used by `SAE.fit` / `partial_fit`). A wrong type raises TypeError, a value out
of range ValueError; both messages name the argument, the value and what was expected, e.g.
"lr must be None or a finite float in (0, 1]; got 1000000.0". Property-based tests can draw
valid and invalid values from the same table (`Constraint.low`, `high`, `kind`, ...).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from sae_widgets.sae import registry

Kind = Literal["int", "float", "bool", "str", "device", "int_sequence"]

SEED_LIMIT = 2**63
"""Seeds are integers in [0, SEED_LIMIT)."""
MAX_LR = 1.0
"""Adam rates above this only diverge on an SAE (lr=1e6 gave an FVU of 1e28): refused."""


@dataclass(frozen=True)
class Constraint:
    """What one parameter accepts."""

    kind: Kind
    low: float | None = None
    """Smallest accepted value (ints, floats), or None for no bound."""
    high: float | None = None
    """Largest accepted value, or None for no bound."""
    low_open: bool = False
    """`low` itself is refused (an open interval at that end)."""
    high_open: bool = False
    none: bool = False
    """None is accepted (its meaning is in the estimator's docstring)."""
    options: tuple[str, ...] = ()
    """kind "str": the accepted values."""
    integral_float: bool = False
    """kind "int": 16.0 is accepted as 16 (values from a float parameter search)."""

    def describe(self) -> str:
        """What is expected, in words: "None or an integer in [1, inf)"."""
        if self.kind == "bool":
            text = "a bool (True or False)"
        elif self.kind == "str":
            text = "one of " + ", ".join(repr(o) for o in self.options)
        elif self.kind == "device":
            text = "a torch device available on this machine ('cpu', 'cuda', 'cuda:1', ...)"
        elif self.kind == "int_sequence":
            text = "a sequence of increasing positive integers"
        elif self.kind == "int" and self.high is None and self.low in (0, 1):
            text = "a positive integer" if self.low == 1 else "a non-negative integer"
        else:
            noun = "an integer" if self.kind == "int" else "a finite number"
            text = f"{noun} in {self._interval()}"
        return f"None or {text}" if self.none else text

    def _interval(self) -> str:
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"

    def check(self, name: str, value: Any) -> None:
        """TypeError / ValueError naming `name`, `value` and `describe()` unless accepted."""
        if value is None:
            if self.none:
                return
            raise TypeError(f"{name} must be {self.describe()}; got None")
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{name} must be {self.describe()}; got {value!r}")
        elif self.kind == "str":
            if value not in self.options:
                error = TypeError if not isinstance(value, str) else ValueError
                raise error(f"{name} must be {self.describe()}; got {value!r}")
        elif self.kind == "device":
            check_device(name, value)
        elif self.kind == "int_sequence":
            # a 0-d array or tensor has __iter__, but iterating it raises
            if (
                isinstance(value, str | bytes)
                or not hasattr(value, "__iter__")
                or getattr(value, "ndim", 1) == 0
            ):
                raise TypeError(f"{name} must be {self.describe()}; got {value!r}")
            if isinstance(value, Iterator):  # one pass: a refit, clone or pickle would fail
                raise TypeError(
                    f"{name} must be {self.describe()} that can be read more than once (a "
                    f"tuple or list); got {type(value).__name__} {value!r}: pass tuple(...)"
                )
            # elements of a container; their range is the model's check, which knows n_units
            items = value if isinstance(value, list | tuple | np.ndarray) else ()
            if any(
                isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real) for v in items
            ):
                raise TypeError(f"{name} must be {self.describe()}; got {value!r}")
        else:
            self._check_number(name, value)

    def _check_number(self, name: str, value: Any) -> None:
        expected = f"{name} must be {self.describe()}; got {value!r}"
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(expected)
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            if not (self.integral_float and float(value).is_integer()):
                raise TypeError(expected)
        # ints compare exactly (2**63 - 1 is no float)
        number = (
            float(value)
            if self.kind == "float"
            else operator.index(value)
            if isinstance(value, numbers.Integral)
            else int(float(value))
        )
        if self.kind == "float" and not math.isfinite(number):
            raise ValueError(expected)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise ValueError(expected)
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            raise ValueError(expected)


def _number(x: float) -> str:
    if isinstance(x, int):
        return "2**63" if x == SEED_LIMIT else str(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _positive_int(none: bool = False) -> Constraint:
    return Constraint("int", low=1, none=none)


def _nonnegative_float(none: bool = False) -> Constraint:
    return Constraint("float", low=0, none=none)


SAE_PARAMETERS: dict[str, Constraint] = {
    "n_units": _positive_int(),
    "activation": Constraint("str", options=registry.ACTIVATIONS),
    "k": Constraint("int", low=1, none=True, integral_float=True),
    "prefix_sizes": Constraint("int_sequence", none=True),
    "l1_coeff": _nonnegative_float(),
    "l0_coeff": _nonnegative_float(),
    "epochs": _positive_int(),
    "batch_size": _positive_int(),
    "lr": Constraint("float", low=0, low_open=True, high=MAX_LR, none=True),
    "seed": Constraint("int", low=0, high=SEED_LIMIT, high_open=True, none=True),
    "device": Constraint("device"),
    "warmup_steps": Constraint("int", low=0, none=True),
    "decay_fraction": Constraint("float", low=0, high=1),
    "grad_clip": _nonnegative_float(none=True),
    "aux_coeff": _nonnegative_float(),
    "k_aux": _positive_int(none=True),
    "dead_window": _positive_int(),
    "min_steps_per_epoch": _positive_int(),
    "shuffle": Constraint("bool"),
    "log_every": _positive_int(none=True),
    "shuffle_buffer": _positive_int(none=True),
    "precision": Constraint("str", options=("fp32", "bf16")),
}
"""Every `SAE` constructor parameter and what it accepts."""

FIT_ARGUMENTS: dict[str, Constraint] = {"progress": Constraint("bool")}
"""Arguments of `fit` / `partial_fit` checked the same way."""


def check_param(name: str, value: Any) -> None:
    """Check one parameter on its own (no cross-parameter rule); unknown names pass."""
    constraint = SAE_PARAMETERS.get(name) or FIT_ARGUMENTS.get(name)
    if constraint is not None:
        constraint.check(name, value)


def check_params(params: Mapping[str, Any]) -> None:
    """Check every parameter, then the rules that tie them together: k for the activation
    (required and at most n_units where the architecture uses it) and prefix_sizes."""
    for name, value in params.items():
        check_param(name, value)
    spec = registry.get(params.get("activation", "topk"))
    n_units, k = params.get("n_units", 1), params.get("k")
    if spec.k == "architecture" and k is None:
        raise ValueError(f"k is required for activation={spec.name!r} (active units); got None")
    if spec.k == "architecture" and k > n_units:  # a k hint ("init") is capped, not refused
        raise ValueError(
            f"k must be at most n_units={n_units} for activation={spec.name!r}; got {k!r}"
        )
    if params.get("prefix_sizes") is not None and not spec.prefixes:
        nested = [row.name for row in registry.REGISTRY.values() if row.prefixes]
        raise ValueError(
            f"prefix_sizes applies to {', '.join(nested)}, not activation={spec.name!r}; "
            f"got {params['prefix_sizes']!r}"
        )


def module_params(cfg: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` plus the architecture of an existing module's config (an `SAEConfig`);
    a given architecture parameter that disagrees with the module is a ValueError."""
    arch: dict[str, Any] = {
        "n_units": cfg.n_units,
        "activation": cfg.activation,
        "k": cfg.k,
        "prefix_sizes": cfg.prefix_sizes,
    }
    given = {name: params[name] for name in arch if name in params}
    try:  # the given values must describe the module's architecture (None: its default)
        same = not given or dataclasses.replace(cfg, **given) == cfg
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"{', '.join(f'{n}={v!r}' for n, v in given.items())} disagrees with the "
            f"module's architecture ({', '.join(f'{n}={v!r}' for n, v in arch.items())})"
        )
    return {**{name: v for name, v in arch.items() if v is not None}, **params}


def check_same_architecture(cfg: Any, params: Mapping[str, Any]) -> None:
    """ValueError where the estimator's n_units, activation, k or prefix_sizes (changed by
    set_params) describe another model than the fitted one (`cfg`), which partial_fit would
    train on regardless."""
    names = ["n_units", "activation", "prefix_sizes"]
    names += ["k"] if cfg.spec.k == "architecture" else []  # else a hint or unused
    try:
        module_params(cfg, {name: params[name] for name in names})
    except ValueError as err:
        raise ValueError(
            f"partial_fit trains the fitted model on: {err}; fit() starts a model with these "
            "parameters (or set them back)"
        ) from None


def check_device(name: str, value: Any) -> torch.device:
    """`value` as a torch device that exists here; 'meta' (no data) is refused."""
    expected = f"{name} must be {SAE_PARAMETERS['device'].describe()}; got {value!r}"
    if not isinstance(value, str | torch.device):
        raise TypeError(expected)
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{expected} (not a torch device name)") from None
    if device.type == "meta":
        raise ValueError(f"{expected} (the meta device holds no data)")
    if device.type != "cpu":
        try:
            torch.empty(0, device=device)
        except Exception as err:  # torch raises AssertionError/RuntimeError by backend
            raise ValueError(
                f"{expected} (not available on this machine: {type(err).__name__}: {err})"
            ) from None
    return device


__all__ = ["FIT_ARGUMENTS", "SAE_PARAMETERS", "Constraint", "check_device", "check_params"]
