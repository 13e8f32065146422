"""How fast the Explorer answers the views, against the budgets of issue 5.

    .venv/bin/python benchmarks/explorer_latency.py            # the issue's sizes
    .venv/bin/python benchmarks/explorer_latency.py --quick    # a smaller smoke run

Setting: superposition data (N=100,000, dim 256), a TopK SAE with 2048 units and k=32,
trained only briefly (this measures the explorer, not training quality). Each figure is
printed beside its budget with PASS/FAIL; the exit status is 1 if any figure fails.

The build budget is relative to the machine: the time to build the sparse code store must be
within 3x one bare dense encode matmul (X @ W_enc over all the data, same chunks) measured in
the same process; the PCA is timed separately and reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import sae_widgets as sw
from sae_widgets.analysis import CodeStore, unit_summary


@dataclass
class Row:
    """One printed figure: what, how much, and its budget (None: informational)."""

    name: str
    value: float
    unit: str
    budget: float | None = None

    @property
    def passed(self) -> bool:
        return self.budget is None or self.value <= self.budget


def median_ms(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    """Median and maximum over `n` calls of fn(i), in milliseconds."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), max(times)


def bare_encode(sae: sw.SAE, X: np.ndarray, chunk_size: int) -> None:
    """One dense X @ W_enc over all the data, in the encoder's chunks (the budget's unit)."""
    W_enc = sae.model_.W_enc.detach()
    with torch.no_grad():
        for chunk in torch.from_numpy(X).split(chunk_size):
            chunk @ W_enc  # the result is dropped: only the matmul is timed


def bare_encode_into_buffer(sae: sw.SAE, X: np.ndarray, chunk_size: int) -> None:
    """The same matmul writing into one reused output buffer (no allocation, no page faults):
    the strictest possible baseline, printed for reference."""
    W_enc = sae.model_.W_enc.detach()
    out = torch.empty(min(chunk_size, len(X)), W_enc.shape[1])
    with torch.no_grad():
        for chunk in torch.from_numpy(X).split(chunk_size):
            torch.matmul(chunk, W_enc, out=out[: len(chunk)])


def wall_and_cpu(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest wall time of `repeats` runs, and the process CPU time of that run."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def train_briefly(ds: sw.Dataset, n_units: int, k: int, steps: int, batch: int) -> sw.SAE:
    sae = sw.SAE(n_units=n_units, activation="topk", k=k, batch_size=batch, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        sae.partial_fit(ds.X[rng.choice(len(ds), size=batch, replace=False)])
    return sae


def rect_around(coords: np.ndarray, center: np.ndarray, size: int) -> tuple[tuple, tuple]:
    """A square brush around `center` holding about `size` points."""
    reach = np.abs(coords - center).max(axis=1)
    half = float(np.partition(reach, size - 1)[size - 1])
    return (center[0] - half, center[0] + half), (center[1] + half, center[1] - half)


# ==== WIDGET RESPONSIVENESS: owned by the widgets engineer =================================
def widget_responsiveness(explorer: sw.Explorer, selection_rect: tuple[tuple, tuple]) -> list[Row]:
    """Kernel time and bytes sent to the browser for (1) a unit focus change and (2) a brush
    release over `selection_rect`, measured on the real widgets built on `explorer`.

    The measurement lives in benchmarks/widget_latency.py (also runnable on its own).
    """
    from widget_latency import widget_figures

    return [Row(*figure) for figure in widget_figures(explorer, selection_rect)]


# ===========================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--n-units", type=int, default=2048)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--selection", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30, help="calls per latency median")
    parser.add_argument("--quick", action="store_true", help="N=20,000, fewer repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.selection, args.train_steps, args.repeats = 20_000, 2_000, 5, 10

    print(f"torch threads: {torch.get_num_threads()}, numpy {np.__version__}")
    start = time.perf_counter()
    ds = sw.datasets.superposition(n=args.n, n_features=512, dim=args.dim, seed=0)
    print(f"data: {ds.X.shape} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    sae = train_briefly(ds, args.n_units, args.k, args.train_steps, batch=4096)
    print(f"SAE: {args.train_steps} partial_fit steps in {time.perf_counter() - start:.1f} s")

    rows: list[Row] = []
    chunk = 8192
    bare, bare_cpu = wall_and_cpu(lambda: bare_encode(sae, ds.X, chunk), repeats=3)
    rows.append(Row("bare dense encode matmul X @ W_enc (best of 3)", bare, "s"))
    strict, _ = wall_and_cpu(lambda: bare_encode_into_buffer(sae, ds.X, chunk), repeats=3)
    rows.append(Row("  same matmul into a reused buffer (reference only)", strict, "s"))
    parts: dict[str, float] = {}

    def build_codes() -> None:
        start = time.perf_counter()
        encoded = sae.encode_sparse(ds.X, chunk_size=chunk)
        middle = time.perf_counter()
        store = CodeStore(encoded, copy=False)
        parts.update(encode=middle - start, store=time.perf_counter() - middle, nnz=store.nnz)

    build, build_cpu = wall_and_cpu(build_codes, repeats=3)
    rows.append(Row("  of which sae.encode_sparse (last run)", parts["encode"], "s"))
    rows.append(Row("  of which CodeStore: canonical CSR + CSC + unit stats", parts["store"], "s"))
    rows.append(Row("build code store, best of 3 (budget 3x bare)", build, "s", 3 * bare))
    rows.append(Row("build / bare in process CPU time (informational)", build_cpu / bare_cpu, "x"))
    ex = sw.Explorer(sae, ds, chunk_size=chunk)
    codes = ex.codes
    start = time.perf_counter()
    projection = ex.projection()
    rows.append(Row("PCA of the codes (2-D, ARPACK on sparse), added to the budget",
                    time.perf_counter() - start, "s"))  # fmt: skip
    rows.append(Row("code store size", codes.nbytes / 2**20, "MiB", budget=64.0))

    rng = np.random.default_rng(1)
    units = rng.choice(np.flatnonzero(codes.counts), size=args.repeats, replace=False)
    directions = ex.decoder_directions
    labels, names = ds.labels, ds.label_names

    def summarise_unit(unit: int) -> None:
        unit_summary(codes, unit, directions, labels=labels, label_names=names,
                     decoder_normalized=True)  # fmt: skip

    med, _ = median_ms(lambda i: summarise_unit(int(units[i])), args.repeats)
    rows.append(Row("unit_summary, median over random units", med, "ms", budget=20.0))
    busiest = int(np.argmax(codes.counts))
    busy, _ = median_ms(lambda i: summarise_unit(busiest), 3)
    rows.append(Row(f"unit_summary of the busiest unit ({codes.counts[busiest]} samples)", busy,
                    "ms"))  # fmt: skip

    coords = projection.coords
    centers = coords[rng.choice(len(coords), size=args.repeats)]
    rects = [rect_around(coords, c, args.selection) for c in centers]
    sizes: list[int] = []

    def brush(i: int) -> None:
        # What a brush release costs: rectangle -> Selection -> enrichment list + heatmap.
        picked = ex.samples_in_rect(*rects[i])
        ex.selection.samples = picked
        ex.enrichment(top=20)
        ex.heatmap()
        sizes.append(len(picked))

    med, _ = median_ms(brush, args.repeats)
    rows.append(Row(f"selection of ~{int(np.median(sizes))} samples: rect + enrichment + heatmap",
                    med, "ms", budget=50.0))  # fmt: skip

    attribute = next(iter(ds.attributes))
    grid = np.linspace(0.0, 1.5, 21)
    samples = rng.choice(len(ds), size=args.repeats)
    med, _ = median_ms(lambda i: ex.probe(int(samples[i]), attribute, grid), args.repeats)
    rows.append(Row("probe: 21-value sweep of one sample", med, "ms", budget=30.0))

    rows.extend(widget_responsiveness(ex, rects[0]))

    print(f"\n{'figure':<68} {'value':>10} {'budget':>10}  verdict")
    for row in rows:
        budget = "" if row.budget is None else f"{row.budget:.3g} {row.unit}"
        verdict = "" if row.budget is None else ("PASS" if row.passed else "FAIL")
        print(f"{row.name:<68} {row.value:>7.3g} {row.unit:<3} {budget:>10}  {verdict}")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
