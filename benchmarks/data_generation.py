"""How long the built-in datasets take to generate, against baselines run in this process.

    .venv/bin/python benchmarks/data_generation.py [--quick]

Targets (issue 2): shapes(20_000, 32x32) under 5 s; superposition with 1e6 samples in 256
dimensions in seconds with bounded memory. Baselines: rendering one sample per call (what the
vectorised renderer replaces) and the dense (n, n_features) Bernoulli draw the sparse sampler
avoids, both timed on a slice and scaled up; plus the bare cost of writing X's bytes.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import sae_widgets as sw
from sae_widgets.data.datasets import render_shapes


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def bench_shapes(n: int) -> None:
    seconds, ds = timed(lambda: sw.datasets.shapes(n=n, size=32, seed=0))
    f = ds.factors
    m = 500  # baseline: one render call per sample, on a slice, scaled to n
    one_by_one, _ = timed(
        lambda: [
            render_shapes(f["shape"][i : i + 1], f["scale"][i : i + 1], f["rotation"][i : i + 1],
                          f["x"][i : i + 1], f["y"][i : i + 1], 32)
            for i in range(m)
        ]
    )  # fmt: skip
    baseline = one_by_one * n / m
    print(f"shapes n={n} 32x32: {seconds:.2f} s (target < 5 s); per-sample loop would take "
          f"~{baseline:.1f} s: {baseline / seconds:.0f}x faster")  # fmt: skip
    rows = np.arange(64)
    sweep_s, _ = timed(lambda: ds.attributes["rotation"].sweep(rows, np.linspace(0, 360, 21)))
    print(f"  shapes rotation sweep, 21 values x 64 samples: {sweep_s * 1e3:.1f} ms")


def bench_superposition(n: int, n_features: int, dim: int, active: float) -> None:
    rss_before = peak_rss_gb()
    seconds, ds = timed(
        lambda: sw.datasets.superposition(n, n_features, dim, active, seed=0)
    )  # fmt: skip
    peak_gb = peak_rss_gb()  # before the baselines allocate their own arrays
    x_gb = ds.X.nbytes / 1e9
    codes_gb = (ds.true_codes.data.nbytes + ds.true_codes.indices.nbytes) / 1e9
    fill_s, _ = timed(lambda: np.ones((n, dim), dtype=np.float32))  # writing X's bytes once
    m = min(n, 50_000)  # baseline: a dense Bernoulli draw of (n, n_features), on a slice
    rng = np.random.default_rng(0)
    dense_s, _ = timed(lambda: rng.random((m, n_features), dtype=np.float32) < active / n_features)
    dense_s *= n / m
    print(f"superposition n={n:.0e} n_features={n_features} dim={dim} active={active}: "
          f"{seconds:.2f} s; X {x_gb:.2f} GB, codes {codes_gb:.2f} GB, "
          f"peak RSS {peak_gb:.2f} GB (was {rss_before:.2f})")  # fmt: skip
    print(f"  vs writing X once {fill_s:.2f} s ({seconds / fill_s:.1f}x); the dense "
          f"(n, n_features) draw alone would take ~{dense_s:.1f} s and "
          f"{n * n_features * 4 / 1e9:.1f} GB")  # fmt: skip
    rows = np.arange(64)
    sweep_s, _ = timed(lambda: ds.attributes["feature_3"].sweep(rows, np.linspace(0, 1.5, 21)))
    print(f"  feature sweep, 21 values x 64 samples: {sweep_s * 1e3:.2f} ms")
    # the copula draws n * n_features Gaussians: much slower than the independent sampler
    correlated_n = n // 10
    corr_s, _ = timed(
        lambda: sw.datasets.superposition(correlated_n, n_features, dim, active, correlated=True)
    )
    print(f"  correlated=True, n={correlated_n:.0e}: {corr_s:.2f} s")


def bench_digits() -> None:
    seconds, ds = timed(sw.datasets.digits)
    rows = np.arange(64)
    sweep_s, _ = timed(lambda: ds.attributes["rotation"].sweep(rows, np.linspace(-45, 45, 21)))
    print(f"digits: load {seconds:.2f} s; rotation sweep, 21 values x 64 samples: "
          f"{sweep_s * 1e3:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    bench_digits()
    bench_shapes(2_000 if args.quick else 20_000)
    for n_features in (256, 1024):
        bench_superposition(100_000 if args.quick else 1_000_000, n_features, 256, 5.0)


if __name__ == "__main__":
    main()
