"""Feeding a model image batches from flat rows: shared by data/ (collecting activations),
sae/ (spliced-model figures) and explore/ (steering), which never import each other."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

__all__ = ["image_batch", "image_layout"]


def image_layout(data: Any, width: int) -> tuple[int, ...] | None:
    """`data`'s image shape, (h, w) or (h, w, 3), when its images hold the `width` values of
    each X row (so rows can be fed to a model as images); else None."""
    shape = getattr(data, "image_shape", None)
    if not isinstance(shape, tuple) or len(shape) not in (2, 3):
        return None
    dims = tuple(int(s) for s in shape)
    return dims if math.prod(dims) == width else None


def image_batch(image_shape: tuple[int, ...], x: Tensor) -> Tensor:
    """Flat rows (b, d) as channels-first image batches: (b, 1, h, w) for (h, w) images,
    (b, 3, h, w) for (h, w, 3)."""
    if len(image_shape) == 2:
        return x.reshape(x.shape[0], 1, *image_shape)
    return x.reshape(x.shape[0], *image_shape).permute(0, 3, 1, 2).contiguous()
