"""Which implementation a step takes: the CPU-measured kernels, or the plain torch ops.

On CPU the sparse step runs compiled (numba) kernels, numpy sorts and reused buffers, each
measured faster there (benchmarks/train_throughput.py). Every other device (a GPU) runs the
plain torch ops, as those kernels are CPU code and the torch ops are what a GPU does well.
`torch_paths()` sends CPU tensors down the other devices' path too, so that the tests check
that path's results on a machine without a GPU, and a benchmark can A/B the two.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from torch import Tensor

_FORCED: ContextVar[bool] = ContextVar("sae_widgets_torch_paths", default=False)


def cpu_kernels(tensor: Tensor) -> bool:
    """Whether `tensor`'s ops take the CPU kernels (a CPU tensor, outside `torch_paths`)."""
    return tensor.device.type == "cpu" and not _FORCED.get()


@contextmanager
def torch_paths() -> Iterator[None]:
    """Within: every tensor takes the path of a device without the CPU kernels (a GPU's)."""
    token = _FORCED.set(True)
    try:
        yield
    finally:
        _FORCED.reset(token)


def warn_unused_precision(model: Any, precision: str) -> None:
    """A RuntimeWarning where a mixed precision was asked for (`model.matmul_dtype`) but the
    CPU kernels, which run float32, will train and encode `model`."""
    if model.matmul_dtype is not None and cpu_kernels(model.W_dec):
        warnings.warn(
            f"precision={precision!r} applies on GPUs; on CPU the compiled kernels train and "
            "encode in float32",
            RuntimeWarning,
            stacklevel=4,
        )
