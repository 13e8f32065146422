"""Data-parallel training on torch.distributed: what must be global, made global.

`Trainer` wraps the module in DistributedDataParallel (gloo on CPU, nccl on CUDA) when a
process group with more than one rank is running (`torchrun`, or `sae-widgets train --nproc`).
Each rank trains on its slice of every global batch; DDP averages the gradients. For the
result to equal one process training on the whole batch, every batch statistic is global
while `global_batch()` is active:

- the loss denominators (each batch's total variance, used by FVU, the sparsity terms and
  AuxK) are all-reduced, and each rank's loss is its share of the global loss times `world`,
  so DDP's mean of the gradients is the gradient of the global loss;
- BatchTopK keeps the top k x (global batch) pre-activations over all ranks (candidates are
  all-gathered), so its threshold is the global one;
- dead-unit counters see every rank's firing (an all-reduce of the fired mask);
- the input scale, b_dec and JumpReLU thresholds come from the first global batch, which every
  rank reads whole (see `sae.batches`).

Outside `global_batch()` (one process, or inference) these functions are the plain batch ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["global_batch", "is_global", "rank_and_world", "setup_from_env"]

_GLOBAL: ContextVar[bool] = ContextVar("sae_widgets_global_batch", default=False)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the running process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_from_env(device: str | torch.device = "cpu") -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT env vars),
    with gloo on CPU and nccl on CUDA; (0, 1) when not launched by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        kind = torch.device(device).type
        backend = "nccl" if kind == "cuda" else "gloo"
        if kind == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return rank_and_world()


@contextmanager
def global_batch() -> Iterator[None]:
    """Make batch statistics global across ranks for the duration (training steps only)."""
    token = _GLOBAL.set(rank_and_world()[1] > 1)
    try:
        yield
    finally:
        _GLOBAL.reset(token)


def is_global() -> bool:
    """Whether batch statistics are being all-reduced right now."""
    return _GLOBAL.get()


def _sum(t: Tensor) -> Tensor:
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def global_fvu(x_BD: Tensor, x_hat_BD: Tensor) -> tuple[Tensor, Tensor]:
    """This rank's share of the global batch's FVU (times world), and the matching variance.

    The variance is around the global batch mean, guarded like the one-process version; it
    needs no gradient (it depends on the inputs only)."""
    world = dist.get_world_size()
    n = _sum(x_BD.new_tensor([x_BD.shape[0]]))
    mean_D = _sum(x_BD.sum(0)) / n
    stats = _sum(torch.stack([(x_BD - mean_D).pow(2).sum(), x_BD.pow(2).sum()]))
    total_var = torch.clamp(stats[0], min=1e-8 * stats[1] + 1e-30) / world
    return (x_hat_BD - x_BD).pow(2).sum() / total_var, total_var


def global_batch_topk(pre_BU: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """BatchTopK over the global batch: (units, offsets, cutoff) of this rank's rows, keeping
    the top k x (global rows) pre-activations of all ranks."""
    n_rows, n_units = pre_BU.shape
    total = int(_sum(pre_BU.new_tensor([n_rows])).item())
    n_keep = min(k * total, total * n_units)
    local = pre_BU.reshape(-1)
    candidates = local.topk(min(n_keep, local.numel()), sorted=False).values
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long, device=pre_BU.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([candidates.numel()], device=pre_BU.device))
    width = int(max(int(s.item()) for s in sizes))
    padded = candidates.new_full((width,), float("-inf"))
    padded[: candidates.numel()] = candidates
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    cutoff = torch.cat(gathered).topk(n_keep, sorted=False).values.min()
    rows, units = (pre_BU >= cutoff).nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return units, offsets, cutoff


def global_fired(fired_U: Tensor, n_rows: int) -> tuple[Tensor, int]:
    """(units that fired on any rank, rows of the global batch)."""
    rows = torch.tensor([float(n_rows)], device=fired_U.device)
    counts = _sum(torch.cat([fired_U.to(torch.float32), rows]))
    return counts[:-1] > 0, int(counts[-1].item())


def global_metrics(values: dict[str, float], n_rows: int, device: torch.device) -> dict[str, float]:
    """Logged metrics of the global batch: the loss terms are each rank's share times world
    (their mean is the global value); l0 is a per-row mean (weighted by rows)."""
    names = sorted(values)
    weights = [float(n_rows) if name == "l0" else 1.0 for name in names]
    t = torch.tensor(
        [values[k] * w for k, w in zip(names, weights)] + [float(n_rows)],
        dtype=torch.float64,
        device=device,
    )
    t = _sum(t)
    world = dist.get_world_size()
    return {k: float(t[i] / (t[-1] if k == "l0" else world)) for i, k in enumerate(names)}
