"""Encoding throughput of a TopK SAE against the matmul roofline and a dense PyTorch
reference, measured in one process.

For each shape (small: d=256, n_units=2,048, k=16; large: d=512, n_units=8,192, k=32; gpu:
d=2,048, n_units=32,768, k=64, for `--device cuda`) and N samples, each repetition times,
right after one roofline matmul of the same N rows:
  reference  chunked (x - b_dec) @ W_enc + b_enc, torch.topk, the (values, units) kept
  encode_sparse  SAE.encode_sparse (CSR codes; the Explorer's input)
  code store     CodeStore.from_sae (CSR + CSC + per-unit statistics: the Explorer's build)
  transform      SAE.transform (dense (N, n_units) output)
Activations: topk, and the threshold gates batchtopk and jumprelu at inference (thresholds
set so each unit fires on k / n_units of the samples, as after training); relu on request.
Printed: samples/s, fraction of the encoder-forward roofline (median of per-repetition
ratios) with the target (>= 0.80) PASS/FAIL, and the peak resident memory added by
encode_sparse + the code store (run first, in a fresh process) against one dense N x n_units
matrix: the encoders hold one chunk of pre-activations at a time.

transform's output is fresh memory, and touching fresh memory costs what the machine makes it
cost: a virtual machine with free page reporting (the project's) hands memory freed a second
or more ago back to its host, and faults it in from the host again, 6-8x slower. On a CPU,
each shape also times transform right after touching and freeing as much memory ("output
memory warm": the same call where freed memory stays backed), and prints the cost of touching
a fresh output-sized mapping after 3 s idle and right after a free.

Timings on a shared machine are noisy: compare the ratios printed by one run.
`--lane-rows-ab R` adds encode_sparse with R-row lane pieces (the A/B of sae/encoding.py's
LANE_ROWS), its codes checked equal to the default's; `--fp32-lanes-ab` encode_sparse with
float32 lane products where the default multiplies in bfloat16 (sae/bf16_preacts.py).
Run: .venv/bin/python benchmarks/encode_throughput.py [--n 65536] [--shapes small large]
     [--activations topk batchtopk jumprelu relu] [--device cuda] [--precision bf16]
     [--lane-rows-ab 2048] [--fp32-lanes-ab]
"""

from __future__ import annotations

import argparse
import mmap
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch
from roofline import Paired, under, verdict

import sae_widgets as sw
from sae_widgets.analysis import CodeStore
from sae_widgets.sae import bf16_preacts, cpu_gemm, encoding
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_width

ENCODE_TARGET = 0.80
FP32_LANES = "encode_sparse, float32 lanes"
WARM = "transform, output memory warm"
SHAPES = {"small": (256, 2048, 16), "large": (512, 8192, 32), "gpu": (2048, 32768, 64)}


def reference(
    model: SparseAutoencoder, X: torch.Tensor, k: int, chunk: int, mixed: bool = False
) -> None:
    """Plain PyTorch: dense pre-activations of a chunk, then torch.topk (a threshold gate:
    the values above their unit's cut, with their positions); mixed: the matmul under
    torch.autocast(bfloat16)."""
    device = model.W_enc.device
    cut = model.inference_cut()
    with torch.no_grad():
        for x in X.split(chunk):
            x = x.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
                pre = torch.addmm(model.b_enc, x - model.b_dec, model.W_enc)
            if cut is None:
                values, _units = pre.topk(k, dim=1, sorted=False)
                torch.relu(values)
            else:
                keep = pre > cut
                pre[keep], keep.nonzero()


def trained_like(model: SparseAutoencoder, X: torch.Tensor, k: int) -> None:
    """Thresholds of a gated model set so that each unit fires on k / n_units of the samples
    (L0 ~ k, as after training; a fresh model's zero thresholds keep half the units)."""
    if model.threshold is None:
        return
    with torch.no_grad():
        pre = model.preacts(X[:4096])
        cut = torch.quantile(pre, 1 - k / model.cfg.n_units, dim=0)
        model.set_threshold_(cut.clamp_min(1e-6))


def _support_difference(ours: sp.csr_matrix, theirs: sp.csr_matrix) -> tuple[int, float]:
    """(entries non-zero in one only, the largest difference of the shared ones)."""
    both = (ours != 0).multiply(theirs != 0)
    moved = (ours != 0).nnz + (theirs != 0).nnz - 2 * both.nnz
    gap = abs(ours.multiply(both) - theirs.multiply(both)).max() if both.nnz else 0.0
    assert moved <= 1e-4 * max(1, both.nnz), f"{moved} entries differ: more than rounding"
    return moved, float(gap)


def touch_fresh(n_bytes: int) -> float:
    """Seconds to map and write a fresh n_bytes (in huge pages where given, as transform's
    output), one byte per 4 KiB page; unmapped after."""
    start = time.perf_counter()
    memory = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        memory.madvise(advice)
    pages = np.frombuffer(memory, dtype=np.uint8)
    pages[::4096] = 1
    seconds = time.perf_counter() - start
    del pages
    memory.close()
    return seconds


def fresh_memory_costs(n_bytes: int) -> tuple[float, float]:
    """(after 3 s idle, right after a free): seconds to touch a fresh n_bytes mapping."""
    time.sleep(3)
    idle = touch_fresh(n_bytes)
    return idle, touch_fresh(n_bytes)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    shape: str,
    activation: str,
    n: int,
    reps: int,
    chunk: int,
    device: torch.device,
    precision: str = "fp32",
    lane_rows_ab: int | None = None,
    fp32_lanes_ab: bool = False,
) -> list[tuple[str, float]]:
    """One shape and activation; lane_rows_ab: encode_sparse again with that many rows per
    lane piece (sae/encoding.py LANE_ROWS), interleaved, its codes checked equal;
    fp32_lanes_ab: encode_sparse again with float32 lane products (no bfloat16,
    sae/bf16_preacts.py), the codes compared (values differ by float32 rounding, the BLAS's
    or the recomputation's; a winner within that rounding of the next may differ)."""
    d, n_units, k = SHAPES[shape]
    X_np = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    X = torch.from_numpy(X_np)
    cfg = SAEConfig(d_in=d, n_units=n_units, activation=activation, k=k)
    model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        model.b_enc.normal_(0, 0.1)
        model.b_dec.copy_(X[:1024].mean(0))
    trained_like(model, X, k)
    model = model.to(device)
    sae = sw.SAE.from_module(model, precision=precision)
    mixed = precision == "bf16"
    before = peak_rss_mb()
    store = CodeStore.from_sae(sae, X_np, chunk_size=chunk)
    added = peak_rss_mb() - before
    dense_mb = n * n_units * 4 / 2**20
    paired = Paired(4096, d, n_units, device)
    rounding_differences: list[tuple[int, float]] = []
    for _ in range(reps):
        plain = lambda: reference(model, X, k, chunk, mixed)  # noqa: E731
        paired.time("reference (addmm + torch.topk)", plain, n)
        paired.time("encode_sparse", lambda: sae.encode_sparse(X_np, chunk_size=chunk), n)
        paired.time("code store (Explorer build)", lambda: CodeStore.from_sae(sae, X_np), n)
        paired.time("transform (dense output)", lambda: sae.transform(X_np, chunk_size=chunk), n)
        if device.type == "cpu":  # the same, its output's memory just freed (still backed)
            touch_fresh(n * n_units * 4)
            paired.time(WARM, lambda: sae.transform(X_np, chunk_size=chunk), n)
        if lane_rows_ab is not None:
            ours = sae.encode_sparse(X_np, chunk_size=chunk)
            theirs = paired.time(
                f"encode_sparse, {lane_rows_ab}-row pieces",
                lambda: under(
                    lambda: sae.encode_sparse(X_np, chunk), (encoding, "LANE_ROWS", lane_rows_ab)
                ),
                n,
            )
            assert (ours != theirs).nnz == 0, "codes differ with another piece size"
        if fp32_lanes_ab:
            ours = sae.encode_sparse(X_np, chunk_size=chunk)
            theirs = paired.time(
                FP32_LANES,
                lambda: under(
                    lambda: sae.encode_sparse(X_np, chunk), (bf16_preacts, "FORCED", False)
                ),
                n,
            )
            rounding_differences.append(_support_difference(ours, theirs))
    print(
        f"\n{shape} {activation} on {device}: d={d}, n_units={n_units}, k={k}, N={n:,}, "
        f"{precision}, chunk {chunk}, L0 {store.nnz / n:.1f}; "
        f"fp32 matmul {paired.blas_rates()} -> roofline {paired.roofline():,.0f} samples/s "
        f"(the faster BLAS; our BLAS: {cpu_gemm.choices() or 'torch'}; bfloat16 lane "
        f"product: {bf16_preacts.pays(affine_width(d))})"
    )
    for name in paired.times:
        print(
            f"  {name:<32} {paired.samples_per_s(name):>10,.0f} samples/s   "
            f"{paired.fraction(name):.2f} of the roofline ({paired.torch_fraction(name):.2f} "
            "of torch's matmul)"
        )
    if device.type == "cpu":
        idle, warm = fresh_memory_costs(n * n_units * 4)
        print(
            f"  touching a fresh {dense_mb:,.0f} MB output: {idle * 1e3:,.0f} ms after 3 s idle, "
            f"{warm * 1e3:,.0f} ms right after a free (one thread)"
        )
    if added > 0:
        print(
            f"  peak memory added by encode_sparse + code store: {added:,.0f} MB (codes "
            f"{store.nbytes / 2**20:,.0f} MB; one dense N x n_units matrix would be "
            f"{dense_mb:,.0f} MB)"
        )
    else:  # ru_maxrss is the process's high-water mark: an earlier case already set it
        print("  peak memory: not measurable after an earlier case (see the first case's line)")

    if rounding_differences:
        moved, gap = rounding_differences[-1]
        print(
            f"  {FP32_LANES} against ours: {moved} of {store.nnz:,} entries in or out "
            f"(winners within float32 rounding of the next), largest value difference {gap:.1e}"
        )
    results = []
    for name in ("encode_sparse", "code store (Explorer build)", "transform (dense output)"):
        results.append((f"encoding {name} {shape} {activation}", paired.fraction(name)))
        print(verdict(f"encoding {name}", paired.fraction(name), ENCODE_TARGET))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["small", "large"])
    parser.add_argument("--n", type=int, default=65_536)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=8192)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--activations", nargs="+", default=["topk", "batchtopk", "jumprelu"],
                        choices=["topk", "batchtopk", "jumprelu", "relu"])  # fmt: skip
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: mixed precision (GPUs; slow on CPUs)")  # fmt: skip
    parser.add_argument("--lane-rows-ab", type=int, default=None,
                        help="also encode_sparse with this many rows per lane piece")  # fmt: skip
    parser.add_argument("--fp32-lanes-ab", action="store_true",
                        help="also encode_sparse with float32 lane products")  # fmt: skip
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; the machine may be "
        "shared: each ratio pairs a call with a matmul of the same rows timed just before it",
        flush=True,
    )
    start = time.perf_counter()
    device = torch.device(args.device)
    results = [
        result
        for shape in args.shapes
        for activation in args.activations
        for result in run(
            shape,
            activation,
            args.n,
            args.reps,
            args.chunk,
            device,
            args.precision,
            args.lane_rows_ab,
            args.fp32_lanes_ab,
        )
    ]
    elapsed = time.perf_counter() - start
    print(f"\nsummary (target >= {ENCODE_TARGET:.2f} of the roofline), {elapsed:.0f} s:")
    for name, fraction in results:
        print(verdict(name, fraction, ENCODE_TARGET))
    if not all(fraction >= ENCODE_TARGET for _, fraction in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
