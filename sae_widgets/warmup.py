"""Compile the numba kernels ahead of their first use: `python -m sae_widgets.warmup`.

numba compiles a kernel on its first call (seconds each; all of ours took ~20 s on a loaded
2-core machine) and caches the machine code on disk (`cache=True`), so without this the
first TopK fit, encode or lasso after an install would pay it in the notebook. `make` runs
this once after installing. It runs the public paths that reach the kernels on tiny data,
so it compiles exactly the signatures real use needs; an error here is printed, never
raised (the kernels then compile on first use, as without this step).
"""

from __future__ import annotations

import sys
import time


def compile_kernels() -> float:
    """Run each kernel-backed path once on tiny data; returns the seconds it took."""
    import numpy as np

    from sae_widgets.analysis.selection import samples_in_polygon, samples_in_rect
    from sae_widgets.sae.estimator import SAE

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 32)).astype(np.float32)
    for activation in ("topk", "batchtopk", "matryoshka_batchtopk"):
        sae = SAE(n_units=64, activation=activation, k=4, epochs=1, seed=0)
        sae.fit(X, progress=False)
        sae.transform(X)
        sae.encode_sparse(X)
    triangle = [[-1.0, -1.0], [1.0, -1.0], [0.0, 1.0]]
    for dtype in (np.float32, np.float64):
        points = rng.normal(size=(256, 2)).astype(dtype)
        samples_in_rect(points, (-1, 1), (-1, 1))
        samples_in_polygon(points, triangle)
    return time.perf_counter() - start


def main() -> int:
    try:
        seconds = compile_kernels()
    except Exception as error:  # a warm-up must never fail an install
        print(f"sae_widgets.warmup: skipped ({type(error).__name__}: {error})", file=sys.stderr)
        return 0
    print(f"sae_widgets.warmup: numba kernels compiled and cached in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
