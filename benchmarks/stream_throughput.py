"""Training throughput streamed from an on-disk ActivationStore vs the same rows in memory.

    .venv/bin/python benchmarks/stream_throughput.py              # n=131,072, d=256
    .venv/bin/python benchmarks/stream_throughput.py --quick      # a smaller smoke run

Both fits use the same SAE, seed and `shuffle_buffer`, hence the same batches (the models are
checked equal). The store is written first and streamed by `SAE.fit(store)` (a shuffle buffer
of --buffer rows, the next window read in a background thread); then the rows are loaded
into memory and `SAE.fit(X)` runs on them. Each is timed `--repeats` times, alternating, and
the best is kept (after one untimed warm-up fit of each). Target: streamed >= 90% of
in-memory samples/s. Memory: the growth of the process's anonymous resident memory (RssAnon:
memory-mapped shard pages do not count) during each fit; the streamed fit may hold at most
about 4 windows of rows more than the in-memory fit (whose data was loaded beforehand).

The store's pages are in the OS page cache after writing (a warm disk); a cold disk adds its
read time, which the prefetch thread overlaps with the training step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import sae_widgets as sw
from sae_widgets.data.store import StoreWriter


def rss_anon_mib() -> float:
    """Anonymous resident memory of this process (heap, not file-backed maps), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Samples RssAnon every 20 ms while in the block; `.growth` is the peak minus the start."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = rss_anon_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_anon_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_mib())
        self.growth = self.peak - self.start


def write_store(path: Path, n: int, dim: int, shard_size: int) -> None:
    """Superposition rows generated and written chunk by chunk (never all in memory)."""
    with StoreWriter(path, dim, shard_size=shard_size) as writer:
        for i, lo in enumerate(range(0, n, 32_768)):
            m = min(32_768, n - lo)
            ds = sw.datasets.superposition(n=m, n_features=512, dim=dim, seed=i)
            writer.append(ds.X)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=131_072)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--n-units", type=int, default=2048)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--buffer", type=int, default=32_768, help="shuffle buffer rows")
    parser.add_argument("--shard-size", type=int, default=16_384)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="n=32,768, 1,024 units")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.buffer, args.n_units = 32_768, 8192, 1024

    print(f"torch threads: {torch.get_num_threads()}; machine shared: figures are noisy")
    params = dict(n_units=args.n_units, k=args.k, epochs=1, batch_size=args.batch_size,
                  shuffle_buffer=args.buffer, min_steps_per_epoch=1, seed=0)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_store(Path(tmp) / "acts", args.n, args.dim, args.shard_size)
        store = sw.ActivationStore(Path(tmp) / "acts")
        print(f"store: {store!r} written in {time.perf_counter() - start:.1f} s")
        data_mib = args.n * args.dim * 4 / 2**20

        X = np.asarray(store.X)  # the in-memory copy (loaded before any memory is measured)
        sw.SAE(**{**params, "epochs": 1}).fit(X[:8192], progress=False)  # warm-up: allocator
        sw.SAE(**{**params, "epochs": 1}).fit(store.X, progress=False)  # threads, page cache
        streamed, in_memory, growth = [], [], {"stream": np.inf, "memory": np.inf}
        models = {}
        for i in range(args.repeats):
            for kind in ("memory", "stream") if i % 2 == 0 else ("stream", "memory"):
                with PeakMemory() as memory:
                    start = time.perf_counter()
                    models[kind] = sw.SAE(**params).fit(
                        store if kind == "stream" else X, progress=False
                    )
                    rate = args.n / (time.perf_counter() - start)
                growth[kind] = min(growth[kind], memory.growth)
                (streamed if kind == "stream" else in_memory).append(rate)
        same = all(
            torch.equal(a, b)
            for a, b in zip(
                models["stream"].model_.state_dict().values(),
                models["memory"].model_.state_dict().values(),
            )
        )

    best_stream, best_memory = max(streamed), max(in_memory)
    ratio = best_stream / best_memory
    buffer_mib = args.buffer * args.dim * 4 / 2**20
    print(f"\n{'figure':<60} {'value':>12}  target   verdict")
    print(f"{'in-memory fit(X), samples/s (best of ' + str(args.repeats) + ')':<60} "
          f"{best_memory:>12,.0f}")  # fmt: skip
    print(f"{'streamed fit(store), samples/s':<60} {best_stream:>12,.0f}")
    print(f"{'streamed / in-memory':<60} {ratio:>12.3f}  >= 0.90   "
          f"{'PASS' if ratio >= 0.9 else 'FAIL'}")  # fmt: skip
    print(f"{'same model from both (bitwise)':<60} {same!s:>12}  True     "
          f"{'PASS' if same else 'FAIL'}")  # fmt: skip
    print(f"{'anonymous memory growth during fit(X) (X already loaded), MiB':<60} "
          f"{growth['memory']:>12.1f}")  # fmt: skip
    print(f"{'anonymous memory growth during fit(store), MiB':<60} {growth['stream']:>12.1f}  "
          f"(data {data_mib:.0f} MiB, buffer {buffer_mib:.0f} MiB)")  # fmt: skip
    extra = growth["stream"] - growth["memory"]
    bounded = bool(extra < 4 * buffer_mib + 32)
    print(f"{'  streaming extra over fit(X) < 4 buffers + 32 MiB':<60} {extra:>12.1f}  True     "
          f"{'PASS' if bounded else 'FAIL'}")  # fmt: skip
    return 0 if ratio >= 0.9 and same and bounded else 1


if __name__ == "__main__":
    sys.exit(main())
