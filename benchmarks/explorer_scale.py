"""The Explorer over an on-disk ActivationStore of 10^6 samples, against the budgets of issue 12.

    .venv/bin/python benchmarks/explorer_scale.py                  # n=1,000,000, d=512, 4096 units
    .venv/bin/python benchmarks/explorer_scale.py --n 100000       # a smaller run

Setting: superposition-like rows (d=512) written chunk by chunk to a store in a temporary
folder (2 GB at 10^6 rows), a TopK SAE with 4096 units and k=32 after a few partial_fit steps
(this measures the explorer, not training). Figures, each beside its budget with PASS/FAIL
(exit status 1 if any fails):

- build: the Explorer's codes (streamed from the store in chunks, TopK, sparse CSR + CSC)
  within 3x one bare encode pass (the same chunks read from the store, X @ W_enc, measured in
  the same process); the PCA (fitted on 1e5 sampled codes, applied to all) and the decimated
  display subset are timed beside it;
- memory: the growth of anonymous resident memory (RssAnon: memory-mapped store pages do not
  count) during the build, <= 2 GiB;
- unit focus: kernel time of `Explorer.unit_summary` (median over random units) <= 50 ms, and
  the bytes a view sends for it: the summary's arrays plus one float32 colour per displayed
  point of the decimated scatter, <= 1 MB;
- selection: a rectangle holding ~100k samples -> indices over all 10^6 points, enrichment and
  heatmap rows (the Explorer alone, informational);
- the dashboard (every view, linked, with recording comms: benchmarks/widget_latency.py): a
  unit focus change typed into the inspector, kernel time <= 50 ms and bytes sent <= 1 MB; a
  rectangle and a lasso release holding ~100k samples, delivered as jupyter-scatter sends them
  (the drawn points, then the outline), through the Selection to every view, kernel time
  <= 100 ms (bytes sent printed beside it).

Every timed action is printed twice against its budget: wall clock ("kernel") and the process
CPU time of the same calls ("kernel CPU"). On this shared 2-core machine the wall time also
counts waiting for a core; the CPU time is the work the kernel does. The load average is
printed at the start and the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sae_widgets as sw
from sae_widgets.data.store import StoreWriter

sys.path.insert(0, str(Path(__file__).parent))
from explorer_latency import rect_around
from stream_throughput import PeakMemory
from widget_latency import Clock, widget_figures

# issue 12's budgets for the dashboard figures of benchmarks/widget_latency.py
DASHBOARD_BUDGETS = {
    "unit focus change (PCA coloured by label), kernel": 50.0,
    "unit focus change (PCA coloured by activation), kernel": 50.0,
    "brush release": 100.0,  # kernel, by prefix (the name carries the selection size)
    "lasso release": 100.0,
}


def rebudget(name: str, budget: float | None) -> float | None:
    """Issue 12's budget for a widget_latency figure (issue 6's where 12 sets none)."""
    for prefix, value in DASHBOARD_BUDGETS.items():
        if name.startswith(prefix) and name.endswith(("kernel", "kernel CPU")):
            return value
    return budget


def load_average() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)"


def write_rows(path: Path, n: int, dim: int, n_features: int, seed: int = 0) -> None:
    """Sparse combinations of `n_features` random unit directions, written 50k rows at a time."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_features, dim)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    labels_of = rng.integers(0, 10, size=n_features)
    with StoreWriter(path, dim, shard_size=65_536) as writer:
        for lo in range(0, n, 50_000):
            m = min(50_000, n - lo)
            active = rng.integers(0, n_features, size=(m, 6))
            coef = rng.exponential(1.0, size=(m, 6)).astype(np.float32)
            rows = np.einsum("mk,mkd->md", coef, features[active])
            rows += 0.05 * rng.normal(size=rows.shape).astype(np.float32)
            writer.append(rows, {"labels": labels_of[active[:, 0]]})


def bare_encode(sae: sw.SAE, store: sw.ActivationStore, chunk: int) -> None:
    """Read every chunk from the store and compute X @ W_enc (the budget's unit)."""
    W_enc = sae.model_.W_enc.detach()
    with torch.no_grad():
        for block in store.X.chunks(chunk):
            torch.from_numpy(block) @ W_enc


def timed(fn, n: int) -> Clock:
    """fn(0) ... fn(n - 1), each timed (wall and process CPU)."""
    clock = Clock()
    for i in range(n):
        with clock:
            fn(i)
    return clock


def payload_bytes(value: object) -> int:
    """Bytes of the numpy arrays (and numbers) inside a result a view would send."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(payload_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(payload_bytes(v) for v in value.values())
    return 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--n-units", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=16_384)
    parser.add_argument("--selection", type=int, default=100_000)
    parser.add_argument("--display", type=int, default=20_000, help="points drawn")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dir", default=None, help="where to write the store (default: /tmp)")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, str, float | None]] = []

    print(f"torch threads: {torch.get_num_threads()}; machine shared: figures are noisy")
    print(f"start: {load_average()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        start = time.perf_counter()
        write_rows(Path(tmp) / "acts", args.n, args.dim, n_features=2 * args.n_units)
        store = sw.ActivationStore(Path(tmp) / "acts", verify="never")
        print(f"store: {store!r} written in {time.perf_counter() - start:.0f} s")
        sae = sw.SAE(n_units=args.n_units, k=args.k, batch_size=4096, seed=0)
        for lo in range(0, 5 * 4096, 4096):
            sae.partial_fit(store.X[lo : lo + 4096])

        bare = min(
            (lambda t: (bare_encode(sae, store, args.chunk), time.perf_counter() - t)[1])(
                time.perf_counter()
            )
            for _ in range(2)
        )
        rows.append(("bare encode pass: read chunks + X @ W_enc (best of 2)", bare, "s", None))
        ex = sw.Explorer(sae, store, chunk_size=args.chunk)
        with PeakMemory() as memory:
            start = time.perf_counter()
            codes = ex.codes
            build = time.perf_counter() - start
            start = time.perf_counter()
            projection = ex.projection()
            pca = time.perf_counter() - start
            start = time.perf_counter()
            shown = ex.display_samples(args.display)
            display = time.perf_counter() - start
        rows.append(("Explorer build: codes (CSR + CSC + unit stats)", build, "s", 3 * bare))
        rows.append(("  PCA fitted on 1e5 sampled codes, applied to all", pca, "s", None))
        rows.append(("  decimated display subset of the scatter", display, "s", None))
        rows.append(("  build + PCA + display, against 3x bare", build + pca + display, "s",
                     None))  # fmt: skip
        rows.append(("code store size", codes.nbytes / 2**20, "MiB", None))
        rows.append(("anonymous memory growth during build (RssAnon)", memory.growth / 1024,
                     "GiB", 2.0))  # fmt: skip

        rng = np.random.default_rng(1)
        units = rng.choice(np.flatnonzero(codes.counts), size=args.repeats, replace=False)
        focus = timed(lambda i: ex.unit_summary(int(units[i])), args.repeats)
        for name, value, unit, _ in focus.figures(
            "unit focus: Explorer.unit_summary, median", None
        ):
            rows.append((name, value, unit, 50.0))
        summary = ex.unit_summary(int(units[0]))
        sent = payload_bytes(summary) + 4 * len(shown)  # + one colour per displayed point
        rows.append(("unit focus: bytes sent (summary + colours of shown points)", sent / 1e6,
                     "MB", 1.0))  # fmt: skip

        coords = projection.coords
        centers = coords[rng.choice(len(coords), size=args.repeats)]
        sizes: list[int] = []

        def brush(i: int) -> None:
            reach = np.abs(coords - centers[i]).max(axis=1)
            half = float(np.partition(reach, args.selection - 1)[args.selection - 1])
            c = centers[i]
            with timings:
                picked = ex.samples_in_rect((c[0] - half, c[0] + half), (c[1] - half, c[1] + half))
                ex.selection.samples = picked
                ex.enrichment(top=20)
                ex.heatmap()
            sizes.append(len(picked))

        timings = Clock()
        for i in range(args.repeats):
            brush(i)
        name = f"selection of ~{int(np.median(sizes))} samples: rect + enrichment + heatmap"
        rows.extend(timings.figures(f"{name} (Explorer only)", None))
        ex.selection.samples = []
        rect = rect_around(coords, coords[0], args.selection)
        print(f"before the dashboard: {load_average()}")
        for name, value, unit, budget in widget_figures(ex, rect, args.repeats):
            rows.append((f"dashboard: {name}", value, unit, rebudget(name, budget)))

    print(f"\n{'figure':<78} {'value':>10} {'budget':>11}  verdict")
    ok = True
    for name, value, unit, budget in rows:
        passed = budget is None or value <= budget
        ok &= passed
        shown_budget = "" if budget is None else f"{budget:.3g} {unit}"
        verdict = "" if budget is None else ("PASS" if passed else "FAIL")
        print(f"{name:<78} {value:>7.3g} {unit:<4} {shown_budget:>10}  {verdict}")
    print(f"ratio build / bare encode: {build / bare:.2f}x (budget 3x)")
    print(f"end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
