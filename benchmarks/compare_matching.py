"""Memory and time of matching two SAEs' units (sw.analysis.compare_saes), 4k x 16k units.

    .venv/bin/python benchmarks/compare_matching.py            # 4096 x 16384 units, d=512
    .venv/bin/python benchmarks/compare_matching.py --quick    # 1024 x 4096

Baseline, measured in the same process: one dense (n_a, n_b) float32 cosine matrix (A @ B.T),
the least any method that builds the whole matrix must allocate. Peak memory is numpy's,
traced with tracemalloc. The blockwise nearest matching and the comparison (nearest plus the
sparse-candidate Hungarian matching at this size) must peak well under the dense matrix.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from sae_widgets.analysis import compare_saes, nearest_matches


def measure(step: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak MB traced) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024 x 4096 units")
    args = parser.parse_args()
    n_a, n_b, d = (1024, 4096, 256) if args.quick else (4096, 16384, 512)
    rng = np.random.default_rng(0)
    b = rng.standard_normal((n_b, d)).astype(np.float32)
    # A: a quarter of B's directions, slightly perturbed, and the rest random
    a = rng.standard_normal((n_a, d)).astype(np.float32)
    a[: n_a // 2] = b[: n_a // 2] + 0.3 * rng.standard_normal((n_a // 2, d)).astype(np.float32)

    dense_s, dense_mb = measure(lambda: a @ b.T)
    near_s, near_mb = measure(lambda: nearest_matches(a, b, 5))
    result: list[Any] = []
    full_s, full_mb = measure(lambda: result.append(compare_saes(a, b, threshold=0.7)))
    comparison = result[0]
    print(f"{n_a} x {n_b} units, d={d} (shared machine: ratios count, not seconds)")
    print(f"  baseline dense cosine matrix : {dense_s:7.2f} s  peak {dense_mb:8.1f} MB")
    print(
        f"  nearest_matches (n=5)        : {near_s:7.2f} s  peak {near_mb:8.1f} MB"
        f"  ({near_mb / dense_mb:.2f}x the dense matrix)"
    )
    print(
        f"  compare_saes (exact={comparison.assignment.exact!s:5}) : {full_s:7.2f} s  "
        f"peak {full_mb:8.1f} MB  ({full_mb / dense_mb:.2f}x the dense matrix)"
    )
    recovered = np.mean(comparison.assignment.b_of_a[: n_a // 2] == np.arange(n_a // 2))
    print(f"  perturbed copies matched to their original: {100 * recovered:.1f}%")
    print(f"  {comparison.summary()}")


if __name__ == "__main__":
    main()
