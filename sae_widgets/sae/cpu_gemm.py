"""The CPU matmul of the pre-activations: torch's BLAS or numpy's, whichever measured faster
for the shape on this machine.

torch's CPU wheels multiply with MKL; numpy's wheels bundle OpenBLAS. On the 2-core project
machine (AMD EPYC, Zen 3, AVX2), in a training step's lanes (sae/lanes.py, each lane a
thread multiplying on one thread), OpenBLAS trained the larger shape 1.39x faster than MKL
(d=512, 8,192 units, k=32: 9,694 against 6,972 samples/s) and the small one at par (d=256,
2,048 units: 52,476 against 51,783), measured in one process by
`python benchmarks/train_throughput.py --shapes small large --blas-ab`; on other CPUs MKL
may win. So the first lanes of a shape time both (sae/lanes.py `blas_for`) and later ones
take the faster. numpy's must win by `MARGIN`: near a tie the choice stays with torch, so
that noise does not decide which BLAS's rounding a run gets. The choice holds for the
process.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

MARGIN = 1.1
"""numpy's BLAS is chosen where its best time beats torch's by this factor."""
FORCED: str | None = None
"""'torch' or 'numpy' forces that BLAS (tests, benchmarks' A/B); None: measured."""

Key = tuple[int, int, torch.dtype, int]
"""(inner size, output columns, dtype, lanes): what a choice holds for."""
_choices: dict[Key, str] = {}


@cache
def numpy_blas() -> Any | None:
    """threadpoolctl's handle on numpy's BLAS (to hold it at one thread), or None where it
    cannot be found, and numpy's matmul is then not used (its threads could not be held)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn brings it; without it, torch's BLAS only
        return None
    controller = ThreadpoolController().select(user_api="blas")
    return controller if controller.lib_controllers else None


def candidates(dtype: torch.dtype) -> list[str]:
    """The BLASes that can multiply `dtype` here, torch's first."""
    if numpy_blas() is None or dtype not in (torch.float32, torch.float64):
        return ["torch"]
    return ["torch", "numpy"]


def matmul_into(a: Tensor, b: Tensor, out: Tensor, blas: str) -> Tensor:
    """out = a @ b (2-D, C-contiguous CPU tensors, `out` not aliasing the inputs) with
    `blas`, on the caller's thread (sae/lanes.py holds both BLASes at one thread)."""
    if blas == "numpy":
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return torch.mm(a, b, out=out)


def known(key: Key) -> str | None:
    """The BLAS forced or already chosen for `key`; None: not measured yet."""
    return FORCED or _choices.get(key)


def choose(key: Key, best_seconds: dict[str, float]) -> str:
    """Record and return the choice for `key` from each BLAS's best time."""
    faster = best_seconds.get("numpy", float("inf")) * MARGIN < best_seconds["torch"]
    _choices[key] = "numpy" if faster else "torch"
    return _choices[key]


def choices() -> dict[Key, str]:
    """The BLAS chosen per key so far (benchmarks print it)."""
    return dict(_choices)
