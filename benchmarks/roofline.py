"""Shared measuring tools of the throughput benchmarks: the matmul roofline, paired timings,
PASS/FAIL lines and a torch.profiler breakdown of where a step's time goes.

The roofline of a sparse autoencoder is its one unavoidable dense GEMM, the encoder forward:
2 * d * n_units FLOP per sample. Its rate is measured in the same process, right beside each
timed call (GEMM, then the call), so that on a shared machine both see the same load; what is
reported is the median over repetitions of the per-repetition ratio.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile

from sae_widgets.sae import cpu_gemm, lanes, sparse_kernels

# op name -> category of the breakdown (self CPU time); anything else is "elementwise / other"
CATEGORIES: dict[str, str] = {
    "aten::mm": "dense matmul",
    "sae::lanes": "dense matmul (+ top-k: lanes)",
    "aten::addmm": "dense matmul",
    "aten::mv": "dense matmul",
    "aten::bmm": "dense matmul",
    "aten::topk": "top-k selection",
    "sae::row_topk": "top-k selection",
    "sae::batch_topk": "top-k selection",
    "aten::amax": "top-k selection",
    "aten::kthvalue": "top-k selection",
    "aten::gather": "top-k selection",
    "aten::_embedding_bag": "sparse gather / scatter",
    "aten::_embedding_bag_forward_only": "sparse gather / scatter",
    "aten::_embedding_bag_backward": "sparse gather / scatter",
    "aten::_embedding_bag_dense_backward": "sparse gather / scatter",
    "aten::_embedding_bag_per_sample_weights_backward": "sparse gather / scatter",
    "aten::embedding_dense_backward": "sparse gather / scatter",
    "aten::index_add_": "sparse gather / scatter",
    "sae::unit_sums": "sparse gather / scatter",
    "sae::entry_dots": "sparse gather / scatter",
    "sae::transpose": "sparse gather / scatter",
    "aten::sort": "sparse gather / scatter",
    "aten::bincount": "sparse gather / scatter",
    "aten::repeat_interleave": "sparse gather / scatter",
    "aten::index": "sparse gather / scatter",
    "aten::index_put_": "sparse gather / scatter",
    "aten::_index_put_impl_": "sparse gather / scatter",
    "aten::scatter": "sparse gather / scatter",
    "aten::scatter_": "sparse gather / scatter",
    "aten::nonzero": "sparse gather / scatter",
    "aten::_fused_adam_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_lerp_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_mul_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_addcmul_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_addcdiv_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_sqrt": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_div_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_add_": "optimizer (Adam, clip, renorm)",
    "aten::_foreach_norm": "optimizer (Adam, clip, renorm)",
    "aten::linalg_vector_norm": "optimizer (Adam, clip, renorm)",
    "aten::norm": "optimizer (Adam, clip, renorm)",
    "aten::lerp_": "optimizer (Adam, clip, renorm)",
    "aten::addcmul_": "optimizer (Adam, clip, renorm)",
    "aten::addcdiv_": "optimizer (Adam, clip, renorm)",
    "aten::sqrt": "optimizer (Adam, clip, renorm)",
}


def synchronize(device: torch.device | str = "cpu") -> None:
    """Wait for the device's queued work (a GPU runs asynchronously; a CPU has none)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_seconds(
    batch: int, d: int, n_units: int, device: torch.device | str = "cpu"
) -> Callable[[], float]:
    """A timer of one fp32 (batch x d) @ (d x n_units) torch matmul on `device`: call it to
    get its seconds."""
    a, b = torch.randn(batch, d, device=device), torch.randn(d, n_units, device=device)
    out = torch.empty(batch, n_units, device=device)

    def timed() -> float:
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        return time.perf_counter() - start

    timed()  # warm-up
    return timed


def lane_matmul_seconds(batch: int, d: int, n_units: int, blas: str) -> Callable[[], float]:
    """A timer of the same matmul as our lanes run it (sae/lanes.py): the rows split between
    one thread per core, each multiplying with `blas` on one thread (a BLAS's own pool is
    held at one thread: it would spin after each call and slow what is timed next)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(batch, d, generator=g), torch.randn(d, n_units, generator=g)
    out = torch.empty(batch, n_units)
    workers = sparse_kernels.pool()[1]
    bounds = [batch * i // workers for i in range(workers + 1)]
    parts = [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]

    def part(_: int, i: int) -> bool:
        cpu_gemm.matmul_into(a[parts[i]], b, out[parts[i]], blas)
        return True

    def timed() -> float:
        start = time.perf_counter()
        lanes.run(workers, workers, part)
        return time.perf_counter() - start

    timed()  # warm-up
    return timed


def under(fn: Callable[[], Any], *settings: tuple[object, str, Any]) -> Any:
    """fn() with each (module, attribute, value) of `settings` in place, restored after (the
    benchmarks' in-process A/Bs of one choice against another)."""
    with contextlib.ExitStack() as stack:
        for owner, name, value in settings:
            stack.enter_context(mock.patch.object(owner, name, value))
        return fn()


class Paired:
    """Timings of several calls, each taken right after a timing of each roofline matmul:
    torch's on all threads, and on a CPU also one lane per core with each BLAS our lanes can
    use (`lane_matmul_seconds`). The roofline is the fastest of them, so that our own
    choice of lanes and BLAS (sae/lanes.py, sae/cpu_gemm.py) is not counted as nearness to
    the machine's limit."""

    def __init__(
        self, batch: int, d: int, n_units: int, device: torch.device | str = "cpu"
    ) -> None:
        self.gemms = {"torch": matmul_seconds(batch, d, n_units, device)}
        if torch.device(device).type == "cpu":
            for blas in cpu_gemm.candidates(torch.float32):
                self.gemms[f"{blas} lanes"] = lane_matmul_seconds(batch, d, n_units, blas)
        self.device = device
        self.flop_per_sample = 2 * d * n_units
        self.batch = batch
        self.times: dict[str, list[float]] = {}
        self.ratios: dict[str, list[float]] = {}
        self.torch_ratios: dict[str, list[float]] = {}
        self.gemm_times: dict[str, list[float]] = {name: [] for name in self.gemms}

    def time(self, name: str, fn: Callable[[], Any], n_samples: int) -> Any:
        """Run fn once, timed, beside the roofline matmuls; returns what fn returned."""
        gemm = {blas: timer() for blas, timer in self.gemms.items()}
        for blas, seconds in gemm.items():
            self.gemm_times[blas].append(seconds)
        synchronize(self.device)
        start = time.perf_counter()
        result = fn()
        synchronize(self.device)
        seconds = time.perf_counter() - start
        scale = n_samples / self.batch  # the matmul's time for n_samples
        self.times.setdefault(name, []).append(seconds / n_samples)
        self.ratios.setdefault(name, []).append(min(gemm.values()) * scale / seconds)
        self.torch_ratios.setdefault(name, []).append(gemm["torch"] * scale / seconds)
        return result

    def samples_per_s(self, name: str) -> float:
        return 1.0 / statistics.median(self.times[name])

    def fraction(self, name: str) -> float:
        """Median over repetitions of (roofline time / measured time), the roofline at the
        faster BLAS of each repetition."""
        return statistics.median(self.ratios[name])

    def torch_fraction(self, name: str) -> float:
        """The same against torch's matmul alone (the roofline of earlier reports)."""
        return statistics.median(self.torch_ratios[name])

    def gflops(self, blas: str | None = None) -> float:
        """GFLOP/s of the roofline matmul (median): the fastest one's, or `blas`'s."""
        flop = self.batch * self.flop_per_sample
        return flop / self._median_gemm(blas) / 1e9

    def roofline(self) -> float:
        """Samples/s the encoder matmul alone allows (median time of the fastest one)."""
        return self.batch / self._median_gemm(None)

    def _median_gemm(self, blas: str | None) -> float:
        if blas is not None:
            return statistics.median(self.gemm_times[blas])
        return min(statistics.median(times) for times in self.gemm_times.values())

    def blas_rates(self) -> str:
        """'torch 94.7, torch lanes 120.3, numpy lanes 121.0 GFLOP/s': the median rate of
        each roofline matmul."""
        rates = ", ".join(f"{blas} {self.gflops(blas):.1f}" for blas in self.gemm_times)
        return f"{rates} GFLOP/s"


def verdict(name: str, value: float, target: float) -> str:
    """One PASS/FAIL line for a fraction of the roofline."""
    status = "PASS" if value >= target else "FAIL"
    return f"  target {name}: {value:.2f} of the roofline (>= {target:.2f}) {status}"


def breakdown(
    fn: Callable[[], Any], repeats: int = 2, top: int = 8, device: torch.device | str = "cpu"
) -> list[str]:
    """Lines of a torch.profiler breakdown of `repeats` calls of fn: share of the total self
    time per category (CPU time; on a GPU its kernels' device time), then the top ops."""
    on_gpu = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            fn()
        synchronize(device)

    def own(event: Any) -> float:
        return float(event.self_device_time_total if on_gpu else event.self_cpu_time_total)

    events = [e for e in prof.key_averages() if own(e) > 0]
    total = sum(own(e) for e in events) or 1.0
    by_category: dict[str, float] = {}
    for event in events:
        category = CATEGORIES.get(event.key, "elementwise / loss / other")
        by_category[category] = by_category.get(category, 0.0) + own(event)
    what = "GPU kernel time" if on_gpu else "self CPU time"
    lines = [f"  profile of {repeats} steps (torch.profiler, share of {what}):"]
    for category, value in sorted(by_category.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {category:<32} {100 * value / total:5.1f}%")
    lines.append("    top ops:")
    for event in sorted(events, key=own, reverse=True)[:top]:
        share = 100 * own(event) / total
        per_call = own(event) / max(1, event.count) / 1e3
        lines.append(
            f"      {event.key:<50} {share:5.1f}%  {event.count:4d} calls  {per_call:8.2f} ms/call"
        )
    return lines
