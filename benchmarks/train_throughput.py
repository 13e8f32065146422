"""Training throughput and quality of our TopK / BatchTopK SAE against a dense PyTorch
reference and the matmul roofline, all measured in one process.

Shapes (toy superposition data, batch 4096, fp32, on the CPU unless `--device cuda`):
  small: d=256, 1,024 true features (10 active), n_units=2,048, k=16
  large: d=512, 4,096 true features (10 active), n_units=8,192, k=32
  gpu:   d=2,048, 16,384 true features (10 active), n_units=32,768, k=64 (issue 16's GPU
         target: `--device cuda --shapes gpu`; the roofline is then the GPU's fp32 matmul)
For each shape and activation, `--steps` training steps of ours (the Trainer that SAE.fit
drives) and of a plain ~30-line dense reference (same init, input scaling and learning-rate
schedule, none of our kernels) run interleaved on the same batches (in an order that rotates
every step), each step timed right after one roofline matmul (batch x d @ d x n_units), so
all three see the same load. Printed:
samples/s (median step), the fraction of the encoder-forward roofline (2 d n_units FLOP per
sample at the GEMM rate just measured; median of per-step ratios) with its target (>= 0.60)
PASS/FAIL, then FVU, L0, MMCS and dead fraction of both on held-out data; beside them the
same step of ours with torch's threads throughout (the in-process A/B of the thread choice of
sae/sparse_ops_threads.py, with a check that both trained the same weights), a
torch.profiler breakdown of our step, and the cost of the AuxK path (steps with 10% of the
units dead against steps with none). `--epochs-quality` adds SAE.fit with defaults on the
small shape (the quality figures of the README); `--ab-kernels` steps a third copy of ours
with torch's backward ops instead of the compiled ones of sae/sparse_grads.py; `--blas-ab`
one whose lanes multiply with torch's BLAS whatever sae/cpu_gemm.py chose; `--piece-rows-ab R`
one whose lanes cut the batch into R-row pieces (sae/lanes.py PIECE_ROWS); `--whole-preacts-ab`
one whose step writes the batch's whole pre-activations (before sae/topk_selection.py and
sae/batch_topk_selection.py);
`--compile-reference` steps a copy of the reference with its loss under torch.compile.

Timings on a shared machine are noisy: compare the ratios printed by one run.
Run: .venv/bin/python benchmarks/train_throughput.py [--shapes small large]
     [--activations topk batchtopk] [--steps 24] [--epochs-quality 5] [--ab-kernels] [--blas-ab]
     [--piece-rows-ab 256] [--whole-preacts-ab]
     [--compile-reference] [--device cuda] [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from roofline import Paired, breakdown, under, verdict
from train_reference import (
    BATCH,
    CompiledTwin,
    Reference,
    held_out,
    line,
    reference_step,
)

import sae_widgets as sw
from sae_widgets.sae import (
    auxk,
    batch_topk_selection,
    bf16_preacts,
    cpu_gemm,
    lanes,
    sparse_grads,
    topk_selection,
)
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import affine_width
from sae_widgets.sae.training import TrainConfig, Trainer

N_TEST, ACTIVE = 16_384, 10
TRAIN_TARGET = 0.60
GPU_SPEEDUP_TARGET = 2.0
FIXED = "ours, torch threads throughout"
TORCH_BACKWARD = "ours, torch backward ops"
TORCH_BLAS = "ours, torch's BLAS in the lanes"
WHOLE = "ours, whole pre-activations"
FP32_LANES = "ours, float32 lanes"
# the settings of the in-process A/B copies (roofline.under)
TORCH_BACKWARD_OPS = ((sparse_grads, "ENABLED", False),)
TORCH_BLAS_LANES = ((cpu_gemm, "FORCED", "torch"),)
FP32_LANE_PRODUCT = ((bf16_preacts, "FORCED", False),)  # no bfloat16 product in the lanes
WHOLE_PATHS = (  # the selections over the whole (B, n_units) pre-activations
    (topk_selection, "_in_lanes", lambda *args: None),
    (batch_topk_selection, "applies", lambda *args: False),
)


@dataclass(frozen=True)
class Shape:
    name: str
    d: int
    n_units: int
    k: int
    n_features: int


SHAPES = {
    "small": Shape("small", 256, 2048, 16, 1024),
    "large": Shape("large", 512, 8192, 32, 4096),
    "gpu": Shape("gpu", 2048, 32768, 64, 16384),  # the GPU target's shape (issue 16)
}


def compare(
    shape: Shape,
    activation: str,
    steps: int,
    profile_steps: int,
    ab_kernels: bool = False,
    blas_ab: bool = False,
    compile_reference: bool = False,
    device: torch.device | None = None,
    precision: str = "fp32",
    piece_rows_ab: int | None = None,
    whole_preacts_ab: bool = False,
    fp32_lanes_ab: bool = False,
) -> float:
    """Interleaved steps of ours and the reference on one shape; returns our fraction.
    ab_kernels: a third copy of ours steps with torch's backward ops (in-process A/B).
    blas_ab: a copy of ours steps with torch's BLAS in its lanes (in-process A/B).
    compile_reference: a copy of the reference steps with its loss under torch.compile.
    device: where every model trains (the data is generated on the CPU and moved per batch).
    precision "bf16": ours with SAE(precision="bf16")'s bfloat16 encoder matmul, the
    reference's step under torch.autocast(bfloat16) (a GPU's mixed precision).
    piece_rows_ab: a copy of ours steps with lanes of that many rows (sae/lanes.py PIECE_ROWS).
    whole_preacts_ab: a copy of ours writes the batch's whole pre-activations (the paths
    before the lanes' scratch of sae/topk_selection.py and sae/batch_topk_selection.py).
    fp32_lanes_ab: a copy of ours multiplies its lanes in float32 (no bfloat16 product,
    sae/bf16_preacts.py).
    """
    device = device or torch.device("cpu")
    mixed = precision == "bf16"
    ds = sw.datasets.superposition(
        n=steps * BATCH + N_TEST, n_features=shape.n_features, dim=shape.d, active=ACTIVE, seed=0
    )
    X, true = torch.from_numpy(ds.X[: steps * BATCH]), ds.true_features
    X_test = torch.from_numpy(ds.X[steps * BATCH :])
    cfg = SAEConfig(d_in=shape.d, n_units=shape.n_units, activation=activation, k=shape.k)

    def new_trainer(wanted: bool = True) -> Trainer | None:
        """A copy of ours (same init and seed), if wanted."""
        if not wanted:
            return None
        model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(0)).to(device)
        return Trainer(model, TrainConfig(batch_size=BATCH), seed=0, fresh=True)

    ours, fixed = new_trainer(), new_trainer()
    assert ours is not None and fixed is not None
    plain = new_trainer(ab_kernels)  # copies that step only when asked for
    torch_blas = new_trainer(blas_ab)
    other_pieces = new_trainer(piece_rows_ab is not None)
    whole = new_trainer(whole_preacts_ab)
    fp32_lanes = new_trainer(fp32_lanes_ab)
    copies = (ours, fixed, plain, torch_blas, other_pieces, whole, fp32_lanes)
    trainers = [trainer for trainer in copies if trainer is not None]
    fixed.threads.enabled = False  # the same step on torch's threads throughout
    plan = ours.plan(X.shape[0], BATCH, shuffle=True)
    batches = [plan.order[plan.bounds[b] : plan.bounds[b + 1]] for b in range(plan.n_batches)]
    for trainer in trainers:
        trainer.model.matmul_dtype = torch.bfloat16 if mixed else None
        trainer.initialize(X[batches[0]].to(device))
        assert trainer.scale is not None
        trainer.model.rescale_inputs_(trainer.scale)  # training space, as Trainer.run does
        trainer.model.train()
    scale = ours.scale
    assert scale is not None
    ref = Reference(shape.d, shape.n_units, shape.k, batch_topk=activation == "batchtopk")
    ref = ref.to(device)
    with torch.no_grad():
        ref.b_dec.copy_(X[batches[0]].mean(0) * scale)
    opt = torch.optim.Adam(ref.parameters(), lr=ours.lr)
    twin = CompiledTwin(ref, ours.lr) if compile_reference else None
    paired = Paired(BATCH, shape.d, shape.n_units, device)
    for step, idx in enumerate(batches):
        x = (X[idx] * scale).to(device)
        lr = ours.lr_at(step, len(batches))
        for group in opt.param_groups:
            group["lr"] = lr
        if twin is not None:
            twin.step(paired, x, lr)
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("ours", lambda x=x, lr=lr: ours.train_step(x, lr, 0.0)),
            ("reference", lambda x=x: reference_step(ref, opt, x, autocast=mixed)),
            (FIXED, lambda x=x, lr=lr: fixed.train_step(x, lr, 0.0)),
        ]
        if plain is not None:
            step_plain = lambda x=x, lr=lr, t=plain: t.train_step(x, lr, 0.0)  # noqa: E731
            calls.append((TORCH_BACKWARD, lambda f=step_plain: under(f, *TORCH_BACKWARD_OPS)))
        if torch_blas is not None:
            step_blas = lambda x=x, lr=lr, t=torch_blas: t.train_step(x, lr, 0.0)  # noqa: E731
            calls.append((TORCH_BLAS, lambda f=step_blas: under(f, *TORCH_BLAS_LANES)))
        if other_pieces is not None and piece_rows_ab is not None:
            step_pieces = lambda x=x, lr=lr, t=other_pieces: t.train_step(x, lr, 0.0)  # noqa: E731
            rows = (lanes, "PIECE_ROWS", piece_rows_ab)
            pieces = lambda f=step_pieces, rows=rows: under(f, rows)  # noqa: E731
            calls.append((f"ours, {piece_rows_ab}-row lane pieces", pieces))
        if whole is not None:
            step_whole = lambda x=x, lr=lr, t=whole: t.train_step(x, lr, 0.0)  # noqa: E731
            calls.append((WHOLE, lambda f=step_whole: under(f, *WHOLE_PATHS)))
        if fp32_lanes is not None:
            step_fp32 = lambda x=x, lr=lr, t=fp32_lanes: t.train_step(x, lr, 0.0)  # noqa: E731
            calls.append((FP32_LANES, lambda f=step_fp32: under(f, *FP32_LANE_PRODUCT)))
        turn = step % len(calls)  # a rotating order: no copy always comes first or last
        for name, call in calls[turn:] + calls[:turn]:
            paired.time(name, call, BATCH)
    print(
        f"\n{shape.name} on {device}: d={shape.d}, n_units={shape.n_units}, k={shape.k}, "
        f"{activation}, {precision}, "
        f"batch {BATCH}, {steps} interleaved steps; fp32 matmul {paired.blas_rates()} "
        f"-> roofline {paired.roofline():,.0f} samples/s (encoder forward only, the faster "
        f"BLAS; our BLAS: {cpu_gemm.choices() or 'torch'}; bfloat16 lane product: "
        f"{bf16_preacts.pays(affine_width(shape.d))})"
    )
    ours.model.eval()
    X_scaled = X_test * scale
    q_ours = held_out(ours.model.encode, ours.model.decode, X_scaled, device)
    q_ref = held_out(ref.encode, lambda c: c @ ref.W_dec + ref.b_dec, X_scaled, device)
    line("ours", paired.samples_per_s("ours"), q_ours, sw.metrics.mmcs(ours.model, true))
    line("dense PyTorch reference", paired.samples_per_s("reference"), q_ref,
         sw.metrics.mmcs(ref.W_dec.detach().cpu(), true))  # fmt: skip
    fraction = paired.fraction("ours")
    print(
        f"  speed-up over the reference: "
        f"{paired.samples_per_s('ours') / paired.samples_per_s('reference'):.2f}x (median steps);"
        f" fraction of the roofline: ours {fraction:.2f}, reference "
        f"{paired.fraction('reference'):.2f}; of torch's matmul alone: ours "
        f"{paired.torch_fraction('ours'):.2f}, reference {paired.torch_fraction('reference'):.2f}"
    )
    print(
        f"  ours with torch's threads throughout: {paired.fraction(FIXED):.2f} of the roofline; "
        f"ours chose one thread for the small ops in {ours.threads.counts['serial']} of "
        f"{steps} steps; same weights: {torch.equal(ours.model.W_dec, fixed.model.W_dec)}"
    )
    if torch_blas is not None:
        print(
            f"  ours with torch's BLAS in the lanes: {paired.fraction(TORCH_BLAS):.2f} of the "
            f"roofline, {paired.samples_per_s(TORCH_BLAS):,.0f} samples/s"
        )
    if other_pieces is not None:
        name = f"ours, {piece_rows_ab}-row lane pieces"
        print(
            f"  {name}: {paired.fraction(name):.2f} of the roofline, "
            f"{paired.samples_per_s(name):,.0f} samples/s; same weights: "
            f"{torch.equal(ours.model.W_dec, other_pieces.model.W_dec)}"
        )
    if whole is not None:
        print(
            f"  {WHOLE}: {paired.fraction(WHOLE):.2f} of the roofline, "
            f"{paired.samples_per_s(WHOLE):,.0f} samples/s; same weights: "
            f"{torch.equal(ours.model.W_dec, whole.model.W_dec)}"
        )
    if fp32_lanes is not None:
        gap = float((ours.model.W_dec - fp32_lanes.model.W_dec).detach().abs().max())
        print(
            f"  {FP32_LANES}: {paired.fraction(FP32_LANES):.2f} of the roofline, "
            f"{paired.samples_per_s(FP32_LANES):,.0f} samples/s; largest W_dec difference "
            f"{gap:.1e}"
        )
    if plain is not None:
        gap = float((ours.model.W_dec - plain.model.W_dec).detach().abs().max())
        print(
            f"  ours with torch's backward ops (sparse_grads off): "
            f"{paired.fraction(TORCH_BACKWARD):.2f} of the roofline; largest W_dec difference "
            f"{gap:.1e} (float rounding, "
            "grown by Adam)"
        )
    if twin is not None:
        twin.report(paired, ref)
    print(verdict(f"training {activation} {shape.name}", fraction, TRAIN_TARGET))
    if device.type == "cuda":  # issue 16's GPU target: 2x the reference at the same FVU
        speedup = paired.samples_per_s("ours") / paired.samples_per_s("reference")
        status = "PASS" if speedup >= GPU_SPEEDUP_TARGET else "FAIL"
        print(f"  target GPU {precision}: {speedup:.2f}x the reference (>= 2x) {status}")
    if profile_steps:
        ours.model.train()
        x = (X[batches[0]] * scale).to(device)
        for text in breakdown(lambda: ours.train_step(x, 1e-4, 0.0), profile_steps, device=device):
            print(text)
        aux_cost(ours, x, paired, profile_steps)
    return fraction


def aux_cost(ours: Trainer, x: torch.Tensor, paired: Paired, repeats: int) -> None:
    """Steps with 1% and 10% of the units dead (the AuxK path runs), dense and sparse AuxK
    (sae/auxk.py), against steps with none."""
    counters = ours.samples_since_fired.clone()
    dense_factor = auxk.DENSE_FACTOR
    names = {}
    for _ in range(repeats):
        ours.samples_since_fired.zero_()
        paired.time("step, no dead unit", lambda: ours.train_step(x, 1e-4, 0.0), BATCH)
        for percent in (1, 10):
            for path, factor in (("dense", dense_factor), ("sparse", 0)):
                n_dead = ours.model.cfg.n_units * percent // 100
                k_aux = min(ours.cfg.k_aux or x.shape[1] // 2, n_dead)
                chosen = "dense" if n_dead <= dense_factor * k_aux else "sparse"
                name = f"{percent}% dead, {path} AuxK" + (" (ours)" if path == chosen else "")
                names[(percent, path)] = name
                ours.samples_since_fired.zero_()
                ours.samples_since_fired[:n_dead] = ours.cfg.dead_window
                auxk.DENSE_FACTOR = factor
                try:
                    paired.time(name, lambda: ours.train_step(x, 1e-4, 0.0), BATCH)
                finally:
                    auxk.DENSE_FACTOR = dense_factor
    ours.samples_since_fired.copy_(counters)
    without = statistics.median(paired.times["step, no dead unit"])
    parts = [
        f"{name} {statistics.median(paired.times[name]) / without:.2f}x" for name in names.values()
    ]
    print(f"  AuxK: a step against one without dead units ({repeats} steps each): "
          + ", ".join(parts))  # fmt: skip


def run_fit(epochs: int) -> None:
    """SAE.fit with default hyperparameters on the small shape (the README's quality row)."""
    shape = SHAPES["small"]
    n_train = 262_144
    ds = sw.datasets.superposition(
        n=n_train + N_TEST, n_features=shape.n_features, dim=shape.d, active=ACTIVE, seed=0
    )
    X, X_test = ds.X[:n_train], torch.from_numpy(ds.X[n_train:])
    sae = SAE(n_units=shape.n_units, activation="topk", k=shape.k, batch_size=BATCH, epochs=epochs)
    paired = Paired(BATCH, shape.d, shape.n_units)
    for _ in range(5):  # the roofline's matmuls before the fit (and after it, below)
        paired.time("-", lambda: None, BATCH)
    start = time.perf_counter()
    sae.fit(X, progress=False)
    elapsed = time.perf_counter() - start
    for _ in range(5):
        paired.time("-", lambda: None, BATCH)
    q = held_out(sae.model_.encode, sae.model_.decode, X_test, torch.device("cpu"))
    print(f"\nSAE.fit, {epochs} epochs of {n_train:,} samples, defaults ({elapsed:.1f} s):")
    samples_per_s = epochs * n_train / elapsed
    line("SAE.fit (whole fit)", samples_per_s, q, sw.metrics.mmcs(sae, ds.true_features))
    fraction = samples_per_s / paired.roofline()
    print(
        f"  the whole fit (shuffling, logging, every step) against the roofline timed before "
        f"and after it ({paired.blas_rates()}): {fraction:.2f}"
    )
    print(verdict("training topk small, whole SAE.fit", fraction, TRAIN_TARGET))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["small", "large"])
    parser.add_argument("--activations", nargs="+", choices=["topk", "batchtopk"],
                        default=["topk", "batchtopk"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=24, help="interleaved steps per case")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--epochs-quality", type=int, default=0)
    parser.add_argument("--ab-kernels", action="store_true",
                        help="a copy with torch's backward ops (sparse_grads A/B)")  # fmt: skip
    parser.add_argument("--blas-ab", action="store_true",
                        help="a copy whose lanes use torch's BLAS (cpu_gemm A/B)")  # fmt: skip
    parser.add_argument("--piece-rows-ab", type=int, default=None,
                        help="a copy whose lanes cut batches into pieces of this size")  # fmt: skip
    parser.add_argument(
        "--fp32-lanes-ab",
        action="store_true",
        help="also time ours with float32 lane products (no bfloat16)",
    )
    parser.add_argument("--whole-preacts-ab", action="store_true",
                        help="a copy whose step writes the whole pre-activations")  # fmt: skip
    parser.add_argument("--compile-reference", action="store_true",
                        help="a copy of the reference under torch.compile")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: mixed precision (GPUs; slow on CPUs)")  # fmt: skip
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; the machine may be "
        "shared: each ratio pairs a step with a matmul timed just before it",
        flush=True,
    )
    results = {}
    for name in args.shapes:
        for activation in args.activations:
            results[(name, activation)] = compare(
                SHAPES[name],
                activation,
                args.steps,
                args.profile_steps,
                args.ab_kernels,
                args.blas_ab,
                args.compile_reference,
                torch.device(args.device),
                args.precision,
                args.piece_rows_ab,
                args.whole_preacts_ab,
                args.fp32_lanes_ab,
            )
    print("\nsummary (fraction of the encoder-forward roofline, target >= 0.60):")
    for (name, activation), fraction in results.items():
        print(verdict(f"training {activation} {name}", fraction, TRAIN_TARGET))
    if args.epochs_quality:
        run_fit(args.epochs_quality)
    if not all(np.array(list(results.values())) >= TRAIN_TARGET):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
