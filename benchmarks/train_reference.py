"""The dense PyTorch reference SAE that benchmarks/train_throughput.py trains beside ours,
its compiled twin, and the held-out quality measures both are judged by."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from roofline import Paired
from torch import nn

BATCH = 4096
COMPILED = "reference, torch.compile"


# --------------------------------------------------------------------------- reference
class Reference(nn.Module):
    """The straightforward SAE: dense encoder, dense codes, dense decoder (TopK per sample,
    or BatchTopK: the k * B largest of the batch)."""

    def __init__(self, d: int, n_units: int, k: int, batch_topk: bool, seed: int = 0) -> None:
        super().__init__()
        W = torch.randn(n_units, d, generator=torch.Generator().manual_seed(seed))
        W = W / W.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W.clone())
        self.W_enc = nn.Parameter(W.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(n_units))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.k, self.batch_topk = k, batch_topk

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        if self.batch_topk:
            flat = pre.flatten()
            values, index = flat.topk(self.k * x.shape[0])
            return torch.zeros_like(flat).scatter(0, index, torch.relu(values)).view_as(pre)
        values, units = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, units, torch.relu(values))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x) @ self.W_dec + self.b_dec


def reference_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The per-sample squared error, averaged over the batch."""
    return (model(x) - x).pow(2).sum(1).mean()


def reference_step(
    model: Reference,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] = reference_loss,
    autocast: bool = False,
) -> None:
    """Adam on the per-sample squared error, decoder rows renormalised after the step;
    autocast: the forward in bfloat16 mixed precision."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = loss_fn(model, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.W_dec /= model.W_dec.norm(dim=1, keepdim=True)


# --------------------------------------------------------------------------- measures
def held_out(
    encode: Callable[[torch.Tensor], torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    X_test: torch.Tensor,
    device: torch.device,
) -> dict[str, float]:
    """FVU, L0 and dead fraction on held-out data, in chunks."""
    err, active, fired = 0.0, 0.0, None
    with torch.no_grad():
        for chunk in X_test.split(4096):
            chunk = chunk.to(device)
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


def line(name: str, samples_per_s: float, q: dict[str, float], mmcs: float) -> None:
    print(
        f"  {name:<30} {samples_per_s:>9,.0f} samples/s   FVU {q['fvu']:.4f}   L0 {q['l0']:5.1f}"
        f"   MMCS {mmcs:.4f}   dead {q['dead']:.3f}",
        flush=True,
    )


class CompiledTwin:
    """A copy of the reference whose loss (forward, top-k, decoder) runs under torch.compile
    (inductor), stepped on the same batches: what a compiler gives the plain dense step. Its
    first step compiles and is timed apart; where torch.compile fails (no C++ compiler, no
    inductor), the reason is printed and the twin stops."""

    def __init__(self, ref: Reference, lr: float) -> None:
        self.model = copy.deepcopy(ref)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss = torch.compile(reference_loss)
        self.compile_s: float | None = None
        self.failed: str | None = None

    def step(self, paired: Paired, x: torch.Tensor, lr: float) -> None:
        if self.failed is not None:
            return
        for group in self.opt.param_groups:
            group["lr"] = lr
        run = lambda: reference_step(self.model, self.opt, x, self.loss)  # noqa: E731
        if self.compile_s is not None:
            paired.time(COMPILED, run, BATCH)
            return
        start = time.perf_counter()
        try:
            run()
        except Exception as error:  # the compiler's own failure: report it, keep measuring
            self.failed = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        self.compile_s = time.perf_counter() - start

    def report(self, paired: Paired, ref: Reference) -> None:
        if self.failed is not None:
            print(f"  reference under torch.compile: unavailable here ({self.failed})")
            return
        drift = float((self.model.W_dec - ref.W_dec).detach().abs().max())
        print(
            f"  reference under torch.compile: {paired.fraction(COMPILED):.2f} of the roofline, "
            f"{paired.samples_per_s(COMPILED) / paired.samples_per_s('reference'):.2f}x the "
            f"eager reference (median steps); first step (compiling) {self.compile_s:.1f} s; "
            f"largest W_dec difference to the eager one {drift:.1e}"
        )
