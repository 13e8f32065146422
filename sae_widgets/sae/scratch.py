"""Buffers a training step reuses across steps for its large temporaries (CPU).

A sparse step's one batch x n_units temporary, the pre-activations, is 32-128 MiB: above
glibc's largest mmap threshold (32 MiB), so a fresh one is fresh pages from the kernel,
faulted in and zeroed on every step. Measured on the 2-core project machine (thread CPU
time, 4096 x 256 @ 256 x 2048): the matmul into a fresh output cost 1.44x the same matmul
into a reused one. Inside `reuse(store)` (the Trainer wraps each CPU step in it) `buffer`
hands out the store's tensor of that name; anywhere else a fresh one. Nothing may keep a
buffer past the step: it is overwritten by the next one. The pre-activations are read by
the selection and AuxK only; the residual of sae/sparse_residual.py is saved by autograd,
for the backward of the same step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

_state = threading.local()


@contextmanager
def reuse(store: dict[str, Tensor]) -> Iterator[None]:
    """Within the block, `buffer` reuses (and keeps) the tensors of `store`."""
    previous = getattr(_state, "store", None)
    _state.store = store
    try:
        yield
    finally:
        _state.store = previous


def buffer(
    name: str,
    shape: tuple[int, ...],
    like: Tensor,
    setup: Callable[[Tensor], object] | None = None,
) -> Tensor:
    """A tensor of `shape` with `like`'s dtype and device: the active store's `name` buffer
    when one is active (replaced when the shape or dtype changes), else a fresh one.
    Uninitialised, except that `setup` runs on each new buffer: parts that the caller never
    writes (padding, constant columns) keep what it set across steps."""
    store: dict[str, Tensor] | None = getattr(_state, "store", None)
    kept = None if store is None else store.get(name)
    if kept is None or kept.shape != torch.Size(shape) or kept.dtype != like.dtype:
        kept = like.new_empty(shape)
        if setup is not None:
            setup(kept)
        if store is not None:
            store[name] = kept
    return kept
