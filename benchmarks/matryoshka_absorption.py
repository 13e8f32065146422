"""Matryoshka BatchTopK vs BatchTopK at equal L0 on the hierarchical toy: prefix FVU and
feature absorption (sw.datasets.superposition(hierarchy=...), sae_widgets.analysis.absorption).

    .venv/bin/python benchmarks/matryoshka_absorption.py           # ~ a few minutes, 2 cores
    .venv/bin/python benchmarks/matryoshka_absorption.py --quick   # smaller data, fewer epochs

Baseline, trained in the same process on the same data with the same k, units and seed:
BatchTopK. Printed per SAE: L0 (equal by construction: the same k), FVU, the FVU of each
prefix of units (the first n units alone), full absorption and absorption fraction (means
over parents; see the analysis module), the parent misses without a child (a baseline), the
mean cosine of each parent's main unit, and the training time. Matryoshka should show a
prefix FVU that falls with the prefix size and is far lower than BatchTopK's for small
prefixes, and lower absorption. Last, the time of one training step of each at a larger
size (best of 6, interleaved): Matryoshka's prefixes cost one re-bagged gathered decode.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import sae_widgets as sw
from sae_widgets.analysis.absorption import feature_absorption
from sae_widgets.analysis.prefix import prefix_metrics
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder


def step_times(d: int = 256, n_units: int = 2048, k: int = 32, batch: int = 1024) -> None:
    """Best-of-6 forward+backward time of one training step, BatchTopK vs Matryoshka (its
    default prefixes), interleaved in this process."""
    torch.manual_seed(0)
    x = torch.randn(batch, d)
    models = {
        activation: SparseAutoencoder(
            SAEConfig(d_in=d, n_units=n_units, activation=activation, k=k)
        ).train()
        for activation in ("batchtopk", "matryoshka_batchtopk")
    }

    def step(model: SparseAutoencoder) -> float:
        start = time.perf_counter()
        out = model.forward_train(x)
        loss = out.fvu if out.extra_loss is None else out.fvu + out.extra_loss
        loss.backward()
        return time.perf_counter() - start

    best = {name: min(step(m) for _ in range(2)) for name, m in models.items()}  # warm-up
    for _ in range(6):
        for name, model in models.items():
            best[name] = min(best[name], step(model))
    prefixes = models["matryoshka_batchtopk"].cfg.prefix_sizes
    print(
        f"\ntraining step (d={d}, {n_units} units, k={k}, batch {batch}): batchtopk "
        f"{best['batchtopk'] * 1e3:.0f} ms, matryoshka {prefixes} "
        f"{best['matryoshka_batchtopk'] * 1e3:.0f} ms, ratio "
        f"{best['matryoshka_batchtopk'] / best['batchtopk']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k samples, 3 epochs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, epochs = (10_000, 3) if args.quick else (20_000, 5)
    n_features, dim, parents, children = 64, 32, 8, 4
    units, k = 128, 3
    ds = sw.datasets.superposition(
        n=n, n_features=n_features, dim=dim, active=3, seed=0, hierarchy=parents, children=children
    )
    parent_of = sw.datasets.hierarchy_parents(n_features, parents, children)
    sizes = (8, 16, 32, 64, 128)
    print(
        f"hierarchical toy: n={n}, dim={dim}, {n_features} features ({parents} parents x "
        f"{children} children), true L0 {ds.true_codes.getnnz(axis=1).mean():.2f}; "
        f"{units} units, k={k}, {epochs} epochs, {args.threads} torch threads"
    )
    results = {}
    for activation in ("batchtopk", "matryoshka_batchtopk"):
        sae = sw.SAE(n_units=units, activation=activation, k=k, epochs=epochs, seed=0)
        start = time.perf_counter()
        sae.fit(ds.X, progress=False)
        seconds = time.perf_counter() - start
        codes = sae.encode_sparse(ds.X)
        bias = sae.inverse_transform(np.zeros((1, units), np.float32))[0]
        prefix = prefix_metrics(ds.X, codes, sae.components_, bias, sizes)
        absorption = feature_absorption(
            codes, sae.components_, ds.true_features, ds.true_codes, parent_of
        )
        results[activation] = (prefix, absorption, seconds)
        print(f"\n{activation} (prefix sizes {sae.prefix_sizes_}), trained in {seconds:.1f} s")
        print(f"  L0 {prefix.l0[-1]:.2f}   FVU {prefix.fvu[-1]:.4f}")
        print("  prefix FVU  " + "  ".join(f"{s}:{f:.3f}" for s, f in zip(sizes, prefix.fvu)))
        print(
            f"  absorption: full {absorption.mean_full_absorption:.3f}   fraction "
            f"{absorption.mean_absorption_fraction:.3f}   parent missed without a child "
            f"{np.nanmean(absorption.miss_alone):.3f}   main-unit cosine "
            f"{absorption.main_cosine.mean():.3f}"
        )
    (p_b, a_b, t_b), (p_m, a_m, t_m) = results["batchtopk"], results["matryoshka_batchtopk"]
    print("\nmatryoshka / batchtopk:")
    print(
        "  prefix FVU ratio "
        + "  ".join(f"{s}:{m / b:.2f}" for s, m, b in zip(sizes, p_m.fvu, p_b.fvu))
    )
    full = a_m.mean_full_absorption / max(a_b.mean_full_absorption, 1e-9)
    fraction = a_m.mean_absorption_fraction / max(a_b.mean_absorption_fraction, 1e-9)
    print(
        f"  full absorption ratio {full:.2f}   absorption fraction ratio {fraction:.2f}"
        f"   training time ratio {t_m / t_b:.2f}"
    )
    decreasing = bool(np.all(np.diff(p_m.fvu) < 0))
    print(f"  matryoshka prefix FVU decreasing with prefix size: {decreasing}")
    step_times()


if __name__ == "__main__":
    main()
