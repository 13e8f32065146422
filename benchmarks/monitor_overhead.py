"""What a live TrainingMonitor costs a fit, headless: SAE.fit with and without the monitor as
its callback (real ipywidgets/bqplot widgets, no browser attached), interleaved repetitions
in one process; the target is <= 10% more time. `log_every=1` makes every step a callback
(the worst case: the throttle decides how often it redraws).

Run: .venv/bin/python benchmarks/monitor_overhead.py [--reps 3] [--n 32768] [--min-interval 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import sae_widgets as sw

TARGET = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=32_768)
    parser.add_argument(
        "--min-interval", type=float, help="the monitor's (default: its own; 0: every step)"
    )
    args = parser.parse_args()
    monitor_args = {} if args.min_interval is None else {"min_interval": args.min_interval}
    ds = sw.datasets.superposition(n=args.n, n_features=512, dim=64, active=8, seed=0)
    params = dict(n_units=512, k=8, epochs=2, batch_size=1024, log_every=1)
    plain, monitored, draws = [], [], []
    for _ in range(args.reps):
        sae = sw.SAE(**params)
        start = time.perf_counter()
        sae.fit(ds.X, progress=False)
        plain.append(time.perf_counter() - start)
        sae = sw.SAE(**params)
        monitor = sw.TrainingMonitor(sae, **monitor_args)
        start = time.perf_counter()
        sae.fit(ds.X, callbacks=[monitor], progress=False)
        monitored.append(time.perf_counter() - start)
        draws.append(monitor.n_draws)
    overhead = statistics.median(m / p - 1 for m, p in zip(monitored, plain, strict=True))
    steps = sae.n_steps_
    print(
        f"fit of {args.n:,} x 64, {steps} steps, every step logged; median of {args.reps} "
        f"interleaved pairs: without monitor {statistics.median(plain):.2f} s, with "
        f"{statistics.median(monitored):.2f} s ({statistics.median(draws):.0f} redraws)"
    )
    status = "PASS" if overhead <= TARGET else "FAIL"
    print(f"  target monitor overhead: {100 * overhead:+.1f}% (<= {100 * TARGET:.0f}%) {status}")
    print(f"  status line: {monitor.status.value}")
    if overhead > TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
