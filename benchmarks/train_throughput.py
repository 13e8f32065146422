"""Training throughput and quality of our TopK SAE against two baselines, in one process.

Data: superposition(n_features=1024, dim=256, active=10), 262,144 training samples and 16,384
held-out ones; n_units=2048, k=16, batch 4096, one epoch. Baselines: a plain ~40-line dense
TopK SAE in PyTorch (the same learning-rate schedule, init and input scaling as ours, none of
our tricks), its steps interleaved with ours on the same batches so that both see the same
load on a shared machine, and scikit-learn's MiniBatchDictionaryLearning on a subset. For
each: samples/s, then FVU, L0, MMCS and dead fraction on held-out data. Then our speed-up
over the reference and our fraction of the roofline: this machine's fp32 matmul rate,
measured here on the encoder's shape, divided by the 2 x d x n_units FLOPs per sample that
the dense encoder needs. Finally a 5-epoch run of ours with default hyperparameters (through
SAE.fit) for the quality figures.

Timings on a shared machine are noisy: compare the ratios printed by one run.
Run: .venv/bin/python benchmarks/train_throughput.py [--epochs-quality 5] [--skip-sklearn]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import sae_widgets as sw
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.training import TrainConfig, Trainer

N_TRAIN, N_TEST, N_FEATURES, DIM, ACTIVE = 262_144, 16_384, 1024, 256, 10
N_UNITS, K, BATCH = 2048, 16, 4096


# --------------------------------------------------------------------------- reference
class ReferenceTopK(nn.Module):
    """The straightforward TopK SAE: dense encoder, dense codes, dense decoder."""

    def __init__(self, d: int, n_units: int, k: int, seed: int = 0) -> None:
        super().__init__()
        W = torch.randn(n_units, d, generator=torch.Generator().manual_seed(seed))
        W = W / W.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W.clone())
        self.W_enc = nn.Parameter(W.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(n_units))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.k = k

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        values, units = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, units, torch.relu(values))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x) @ self.W_dec + self.b_dec


def reference_step(model: ReferenceTopK, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """Adam on the per-sample squared error, decoder rows renormalised after the step."""
    loss = (model(x) - x).pow(2).sum(1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.W_dec /= model.W_dec.norm(dim=1, keepdim=True)


def interleaved_epoch(
    X: np.ndarray,
) -> tuple[Trainer, ReferenceTopK, float, list[float], list[float]]:
    """One epoch of ours (the Trainer that SAE.fit drives) and of the reference, step by step
    in turn on the same batches and learning rates, so both see the same machine load.
    Returns (ours, reference, input scale, our step times, reference step times)."""
    X_t = torch.from_numpy(X)
    cfg = SAEConfig(d_in=DIM, n_units=N_UNITS, activation="topk", k=K)
    ours = Trainer(
        SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(0)),
        TrainConfig(batch_size=BATCH),
        seed=0,
        fresh=True,
    )
    batches = list(ours.batches(X_t.shape[0], BATCH, shuffle=True))
    ours.initialize(X_t[batches[0]])
    assert ours.scale is not None
    scale = ours.scale
    ours.model.rescale_inputs_(scale)  # training space, as Trainer.run does
    ref = ReferenceTopK(DIM, N_UNITS, K)
    with torch.no_grad():
        ref.b_dec.copy_(X_t[batches[0]].mean(0) * scale)
    opt = torch.optim.Adam(ref.parameters(), lr=ours.lr)
    our_times, ref_times = [], []
    for step, idx in enumerate(batches):
        x = X_t[idx] * scale
        lr = ours.lr_at(step, len(batches))
        t0 = time.perf_counter()
        ours.train_step(x, lr, 0.0)
        t1 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr
        reference_step(ref, opt, x)
        t2 = time.perf_counter()
        our_times.append(t1 - t0)
        ref_times.append(t2 - t1)
    return ours, ref, scale, our_times, ref_times


# --------------------------------------------------------------------------- measures
def held_out(
    encode: Callable[[torch.Tensor], torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    X_test: torch.Tensor,
) -> dict[str, float]:
    """FVU, L0 and dead fraction on held-out data, in chunks."""
    err, active, fired = 0.0, 0.0, None
    with torch.no_grad():
        for chunk in X_test.split(4096):
            codes = encode(chunk)
            err += float((decode(codes) - chunk).double().pow(2).sum())
            nonzero = codes != 0
            active += float(nonzero.sum())
            fired = nonzero.any(0) if fired is None else fired | nonzero.any(0)
    total = float((X_test.double() - X_test.double().mean(0)).pow(2).sum())
    assert fired is not None
    return {
        "fvu": err / total,
        "l0": active / X_test.shape[0],
        "dead": float((~fired).float().mean()),
    }


def matmul_rate() -> float:
    """Best fp32 FLOP/s of the encoder's matmul shape (BATCH x DIM @ DIM x N_UNITS)."""
    a, b = torch.randn(BATCH, DIM), torch.randn(DIM, N_UNITS)
    best = math.inf
    for _ in range(12):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * BATCH * DIM * N_UNITS / best


def line(name: str, samples_per_s: float, q: dict[str, float], mmcs: float) -> None:
    print(
        f"{name:<34} {samples_per_s:>12,.0f} samples/s   FVU {q['fvu']:.4f}   L0 {q['l0']:5.1f}"
        f"   MMCS {mmcs:.4f}   dead {q['dead']:.3f}",
        flush=True,
    )


def run_ours(X: np.ndarray, X_test: torch.Tensor, true: np.ndarray, epochs: int) -> float:
    sae = SAE(n_units=N_UNITS, activation="topk", k=K, batch_size=BATCH, epochs=epochs)
    t0 = time.perf_counter()
    sae.fit(X, progress=False)
    elapsed = time.perf_counter() - t0
    model = sae.model_
    q = held_out(model.encode, model.decode, X_test)
    sps = epochs * X.shape[0] / elapsed
    line(f"SAE.fit, {epochs} epoch(s), defaults", sps, q, sw.metrics.mmcs(sae, true))
    return sps


def run_sklearn(X: np.ndarray, X_test: np.ndarray, true: np.ndarray, n_fit: int) -> None:
    from sklearn.decomposition import MiniBatchDictionaryLearning

    dl = MiniBatchDictionaryLearning(
        n_components=N_UNITS,
        batch_size=256,
        max_iter=1,
        transform_algorithm="omp",
        transform_n_nonzero_coefs=K,
        random_state=0,
    )
    t0 = time.perf_counter()
    dl.fit(X[:n_fit])
    sps = n_fit / (time.perf_counter() - t0)
    D = torch.from_numpy(dl.components_.astype(np.float32))
    sub = torch.from_numpy(X_test[:4096])

    def encode(x: torch.Tensor) -> torch.Tensor:
        # OMP warns once per row whose residual it cannot shrink further; the codes still count.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return torch.from_numpy(dl.transform(x.numpy()).astype(np.float32))

    q = held_out(encode, lambda codes: codes @ D, sub)
    line(f"sklearn MiniBatchDL ({n_fit:,} samples)", sps, q, sw.metrics.mmcs(D, true))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-quality", type=int, default=5)
    parser.add_argument("--sklearn-samples", type=int, default=4096)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    t0 = time.perf_counter()
    ds = sw.datasets.superposition(
        n=N_TRAIN + N_TEST, n_features=N_FEATURES, dim=DIM, active=ACTIVE, seed=0
    )
    X, X_test_np, true = ds.X[:N_TRAIN], ds.X[N_TRAIN:], ds.true_features
    X_test = torch.from_numpy(X_test_np)
    print(
        f"data: {N_TRAIN:,} train + {N_TEST:,} held-out, d={DIM} ({time.perf_counter() - t0:.1f}s)",
        flush=True,
    )

    rate = matmul_rate()  # best of several: the machine's peak for this shape
    roofline = rate / (2 * DIM * N_UNITS)
    print(
        f"fp32 matmul {BATCH}x{DIM}@{DIM}x{N_UNITS}: {rate / 1e9:.1f} GFLOP/s -> roofline "
        f"{roofline:,.0f} samples/s (dense encoder only)",
        flush=True,
    )

    print(
        f"\none epoch, n_units={N_UNITS}, k={K}, batch={BATCH}, our default lr schedule "
        "for both, steps interleaved:"
    )
    ours, ref, scale, our_times, ref_times = interleaved_epoch(X)
    X_scaled = X_test * scale
    with torch.no_grad():
        q_ours = held_out(ours.model.encode, ours.model.decode, X_scaled)
        q_ref = held_out(ref.encode, lambda codes: codes @ ref.W_dec + ref.b_dec, X_scaled)
    ours_sps, ref_sps = N_TRAIN / sum(our_times), N_TRAIN / sum(ref_times)
    line("ours (sparse TopK step)", ours_sps, q_ours, sw.metrics.mmcs(ours.model.W_dec, true))
    line("reference dense TopK (PyTorch)", ref_sps, q_ref, sw.metrics.mmcs(ref.W_dec, true))
    median_ratio = float(np.median(ref_times) / np.median(our_times))
    print(
        f"median step: ours {1e3 * np.median(our_times):.0f} ms, reference "
        f"{1e3 * np.median(ref_times):.0f} ms; fastest step: ours {1e3 * min(our_times):.0f} ms,"
        f" reference {1e3 * min(ref_times):.0f} ms"
    )
    print(
        f"\nspeed-up over the reference: {ours_sps / ref_sps:.2f}x over the epoch "
        f"({median_ratio:.2f}x median step)"
    )
    print(
        f"fraction of the matmul roofline: {ours_sps / roofline:.2f} over the epoch "
        f"({BATCH / np.median(our_times) / roofline:.2f} median step, "
        f"{BATCH / min(our_times) / roofline:.2f} fastest step)"
    )
    if not args.skip_sklearn:
        print()
        run_sklearn(X, X_test_np, true, args.sklearn_samples)
    print("\nthe estimator end to end (SAE.fit, progress bar off):")
    run_ours(X, X_test, true, epochs=1)

    if args.epochs_quality:
        print(f"\nquality, {args.epochs_quality} epochs, default hyperparameters:")
        run_ours(X, X_test, true, epochs=args.epochs_quality)


if __name__ == "__main__":
    main()
