"""The training loop: Adam with warm-up and final decay, input scaling, dead-unit tracking.

The `Trainer` owns everything that must persist between `partial_fit` calls (optimizer
moments, step count, the input scale, dead-unit counters, the shuffling generator) so that
`fit` is exactly a sequence of the same steps `partial_fit` takes.

Where training starts (input scale, b_dec, learned thresholds) is read from the first batch
by `sae.initialization`.

Scale folding: the module always lives in user space. Each training session multiplies the
inputs by `scale` and converts the module to that space first (`rescale_inputs_(scale)`),
then converts it back when it ends, whatever ends it (an exception, Ctrl-C, a callback).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_widgets.sae import device_paths, distributed, scratch
from sae_widgets.sae.batches import EpochPlan, StreamBatches, TensorBatches, plan_epoch
from sae_widgets.sae.finite_loss import FiniteLoss, NonFiniteLossError
from sae_widgets.sae.initialization import geometric_median, init_thresholds, input_scale
from sae_widgets.sae.interrupts import SigintGuard
from sae_widgets.sae.model import SparseAutoencoder
from sae_widgets.sae.optim import clip_grad_norm_, fused_adam
from sae_widgets.sae.sparse_ops import SparseCodes
from sae_widgets.sae.sparse_ops_threads import StepThreads
from sae_widgets.sae.train_config import TrainConfig, default_lr, planned_steps

# TrainConfig, default_lr and planned_steps live in sae.train_config; importable from here too
__all__ = [
    "NonFiniteLossError",
    "StopTraining",
    "TrainConfig",
    "Trainer",
    "default_lr",
    "planned_steps",
]

Callback = Callable[[dict[str, float]], Any]
THRESHOLD_LR_SCALE = 10.0
DEAD_CHECK_EVERY = 16
"""A GPU reads whether any unit is dead (for AuxK) every this many steps."""


class StopTraining(Exception):
    """Raise from a callback to end training cleanly (the model stays usable)."""


def says_stop(result: object) -> bool:
    """Whether a callback's answer ends training: False, numpy's False_ too (a callback
    returning `np.isfinite(loss)` gives one, which `is False` missed)."""
    return result is False or (isinstance(result, np.bool_) and not result)


class Trainer:
    """Optimiser state and step logic for one SparseAutoencoder."""

    def __init__(self, model: SparseAutoencoder, cfg: TrainConfig, seed: int, fresh: bool) -> None:
        self.model = model
        self.cfg = cfg
        self.fresh = fresh  # initialise b_dec from data on the first batch
        norms = model.W_dec.detach().norm(dim=1)
        if not fresh and bool(((norms - 1).abs() > 1e-4).any()):
            model.fold_decoder_norms_()  # e.g. a loaded ReLU SAE: training keeps rows unit-norm
        self.step = 0
        self.samples_seen = 0
        self.start_step = 0  # warm-up and sparsity ramps count from here (see resume_counts)
        self.scale: float | None = None
        self.lr = self._base_lr(cfg)
        # learned thresholds act in log space, where a step of size lr is a relative change
        # of lr: they get a 10x larger rate so sparsity can adapt within a short run
        thresholds = model.threshold_parameters()
        others = [p for p in model.parameters() if all(p is not t for t in thresholds)]
        groups: list[dict[str, Any]] = [{"params": others, "lr_scale": 1.0}]
        if thresholds:
            groups.append({"params": thresholds, "lr_scale": THRESHOLD_LR_SCALE})
        device = model.W_dec.device
        self.optimizer = torch.optim.Adam(groups, lr=self.lr, fused=fused_adam(device))
        self.samples_since_fired = torch.zeros(model.cfg.n_units, dtype=torch.long, device=device)
        self.threshold_updates = 0
        self.generator = torch.Generator(device="cpu").manual_seed(seed + 1)
        self.rank, self.world = distributed.rank_and_world()
        self.forward_train: Callable[..., Any] = model.forward_train
        self._rows = 0  # this rank's rows in the last step
        # CPU: the small ops of a sparse step on 1 thread when that measures faster (load)
        self.threads = StepThreads(device, model.spec.sparse_training)
        # CPU: the step's batch x n_units pre-activations reuse one buffer (sae.scratch)
        self.buffers: dict[str, Tensor] = {}
        self.finite = FiniteLoss(self.optimizer, device, self.world)
        self.any_dead = False  # deferred (GPU): as of the last read, see _dead_mask_for_step

    # ----------------------------------------------------------------- set-up
    def _base_lr(self, cfg: TrainConfig) -> float:
        arch = self.model.cfg
        return cfg.lr if cfg.lr is not None else default_lr(arch.activation, arch.n_units)

    def reconfigure(self, cfg: TrainConfig) -> None:
        """Train on with `cfg` (the estimator's parameters as set now: set_params between
        partial_fit calls); the optimiser state, counts and input scale are kept."""
        self.cfg = cfg
        self.lr = self._base_lr(cfg)

    def initialize(self, x_ND: Tensor) -> None:
        """Choose the input scale (E||x s|| = sqrt(d)) and, for a fresh model, b_dec (and
        learned thresholds) from the first batch (`sae.initialization`)."""
        self.scale = input_scale(x_ND)
        if self.fresh:
            with torch.no_grad():  # the module is in user space here
                self.model.b_dec.copy_(geometric_median(x_ND.double()).to(x_ND.dtype))
                if self.model.spec.threshold == "learned":
                    init_thresholds(self.model, x_ND)
            self.fresh = False

    def resume_counts(self, step: int, samples_seen: int) -> None:
        """Continue the step and sample counts of earlier training (a loaded checkpoint), so
        logged steps keep increasing; warm-up restarts, as the optimiser state is new."""
        self.step = self.start_step = int(step)
        self.samples_seen = int(samples_seen)

    def dead_mask(self) -> Tensor:
        """(n_units,) True for units silent over the last `dead_window` training samples."""
        return self.samples_since_fired >= self.cfg.dead_window

    def _dead_mask_for_step(self) -> Tensor | None:
        """The dead units for AuxK. A GPU (deferred loss check) reads whether any unit is
        dead only every DEAD_CHECK_EVERY steps (reading waits for the device); None
        between reads that found none, so AuxK starts up to that many steps late."""
        if not self.finite.deferred:
            return self.dead_mask()
        if self.step % DEAD_CHECK_EVERY == 0:
            self.any_dead = bool(self.dead_mask().any())
        return self.dead_mask() if self.any_dead else None

    def lr_at(self, step: int, total: int | None) -> float:
        """Warm-up, constant, then (when the total is known) a linear decay to 0."""
        warmup = self._warmup(total)
        factor = min(1.0, (step - self.start_step + 1) / warmup)
        if total is not None and self.cfg.decay_fraction > 0:
            decay_steps = max(1, int(total * self.cfg.decay_fraction))
            factor *= min(1.0, (total - step) / decay_steps)
        return self.lr * factor

    def _warmup(self, total: int | None) -> int:
        if self.cfg.warmup_steps is not None:
            return max(1, self.cfg.warmup_steps)
        return max(1, total // 20) if total is not None else 10

    def sparsity_coeff_at(self, step: int, total: int | None) -> float:
        name = self.model.spec.coeff
        if name is None:
            return 0.0
        coeff = float(getattr(self.cfg, name))
        ramp = self.cfg.l1_warmup_steps
        ramp = ramp if ramp is not None else self._warmup(total)
        return coeff * min(1.0, (step - self.start_step + 1) / max(1, ramp))

    # ----------------------------------------------------------------- one step
    def train_step(self, x_BD: Tensor, lr: float, sparsity_coeff: float) -> dict[str, Tensor]:
        """One optimiser step on a batch already in training space."""
        if not device_paths.cpu_kernels(self.model.W_dec):  # a GPU: no CPU threads, buffers
            return self._train_step(x_BD, lr, sparsity_coeff)
        with self.threads.step(), scratch.reuse(self.buffers):
            return self._train_step(x_BD, lr, sparsity_coeff)

    def _train_step(self, x_BD: Tensor, lr: float, sparsity_coeff: float) -> dict[str, Tensor]:
        model = self.model
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        out = self.forward_train(x_BD, self._dead_mask_for_step(), self.cfg.k_aux)
        loss = out.fvu + sparsity_coeff * out.sparsity + self.cfg.aux_coeff * out.aux_fvu
        if out.extra_loss is not None:
            loss = loss + out.extra_loss
        self.finite.check(loss.detach(), self.step + 1, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_parallel_grad_()
        if self.cfg.grad_clip > 0:
            clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        model.normalize_decoder_()
        global_rows = self._track_firing(out.codes, x_BD.shape[0])
        if out.batch_threshold is not None:
            self._update_threshold(out.batch_threshold)
        self._rows = x_BD.shape[0]
        self.step += 1
        self.samples_seen += global_rows
        return {
            "loss": loss.detach(),
            "fvu": out.fvu.detach(),
            "l0": out.l0,
            "aux_fvu": out.aux_fvu.detach(),
            "sparsity": out.sparsity.detach(),
        }

    @torch.no_grad()
    def _track_firing(self, codes: SparseCodes | Tensor, n_rows: int) -> int:
        """Reset the counters of units that fired; returns the rows counted (global batch)."""
        if isinstance(codes, SparseCodes):  # one counting pass (a boolean index is two)
            counts, fires = self.samples_since_fired, (codes.values > 0).float()
            if device_paths.cpu_kernels(counts):
                fires = torch.bincount(codes.units, weights=fires, minlength=counts.numel())
            else:  # a GPU's bincount reads the largest unit first: the host would wait
                fires = fires.new_zeros(counts.numel()).index_add_(0, codes.units, fires)
            fired = fires > 0
        else:
            fired = (codes > 0).any(dim=0)
        if distributed.is_global():  # every rank's firing counts, over the global batch
            fired, n_rows = distributed.global_fired(fired, n_rows)
        self.samples_since_fired += n_rows
        self.samples_since_fired.masked_fill_(fired, 0)
        return n_rows

    @torch.no_grad()
    def _update_threshold(self, batch_threshold: Tensor) -> None:
        """Running thresholds: mean (EMA after warm-up) of each batch's smallest kept value."""
        current = self.model.threshold
        assert current is not None
        self.threshold_updates += 1
        beta = min(0.95, 1.0 - 1.0 / self.threshold_updates)
        updated = current * beta + (1 - beta) * batch_threshold.clamp_min(0)
        self.model.write_threshold_(self.finite.unless_skipped(updated, current))

    # ----------------------------------------------------------------- sessions
    def plan(self, n: int, batch_size: int, shuffle: bool) -> EpochPlan:
        """Row order and batches of one pass over n samples (the same for an array in memory
        and a store on disk, see `sae.batches`)."""
        return plan_epoch(n, batch_size, shuffle, self.cfg.shuffle_buffer, self.generator)

    def source(self, X: Any) -> TensorBatches | StreamBatches:
        """Batches of X: a tensor on the model's device, or a row source streamed from disk;
        in a process group, this rank's slice of each global batch."""
        if isinstance(X, Tensor):
            return TensorBatches(X, self.rank, self.world)
        return StreamBatches(X, self.model.W_dec.device, self.rank, self.world)

    def _distributed(self) -> Callable[..., Any]:
        """The training forward, wrapped in DistributedDataParallel in a process group."""
        if self.world == 1:
            return self.model.forward_train
        from torch.nn.parallel import DistributedDataParallel

        device = self.model.W_dec.device
        ids = [device.index] if device.type == "cuda" else None
        # buffers (the BatchTopK threshold) are equal on every rank: syncing them is harmless
        return DistributedDataParallel(_TrainForward(self.model), device_ids=ids)

    def run(
        self,
        X_ND: Any,
        history: list[dict[str, float]],
        *,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        total_steps: int | None,
        callbacks: Iterable[Callback] = (),
        progress: bool = False,
    ) -> str | None:
        """Train over X (a tensor in user space on the model's device, or a row source such
        as `ActivationStore.X`, streamed) for `epochs` passes.

        Appends each logged step's metrics to `history` and passes them to every callback.
        Returns why training stopped early ("callback" or "interrupted"), or None. Ctrl-C
        stops at the next step boundary (see `sae_widgets.sae.interrupts`); whatever ends the
        session, the module is left finite, in eval mode and in user space.
        """
        with SigintGuard() as guard:
            return self._run(
                guard, X_ND, history, epochs, batch_size, shuffle, total_steps, callbacks, progress
            )

    def _run(
        self,
        guard: SigintGuard,
        X_ND: Any,
        history: list[dict[str, float]],
        epochs: int,
        batch_size: int,
        shuffle: bool,
        total_steps: int | None,
        callbacks: Iterable[Callback],
        progress: bool,
    ) -> str | None:
        callbacks = list(callbacks)
        source = self.source(X_ND)
        n = source.n
        n_batches = max(1, math.ceil(n / batch_size))
        planned = epochs * n_batches
        log_every = self.cfg.log_every or max(1, (total_steps or planned) // 50)
        first_plan = self.plan(n, batch_size, shuffle)
        if self.scale is None:
            self.initialize(source.first_batch(first_plan))
        assert self.scale is not None
        scale = self.scale
        last: dict[str, Tensor] | None = None
        last_lr = 0.0
        logged_step = -1
        stopped: str | None = None
        self.forward_train = self._distributed()  # DistributedDataParallel in a process group
        progress = progress and self.rank == 0  # only rank 0 shows progress
        bar = tqdm(total=planned, desc="SAE training", unit="step", disable=not progress)
        self.model.train()
        self.model.rescale_inputs_(scale)  # training space from here to the clean-up
        try:
            if guard.interrupted:
                raise KeyboardInterrupt  # Ctrl-C during set-up: no step at all
            for epoch in range(epochs):
                plan = first_plan if epoch == 0 else self.plan(n, batch_size, shuffle)
                for x_BD in source.batches(plan, scale):  # in training space
                    guard.escapable = True
                    last_lr = self.lr_at(self.step, total_steps)
                    coeff = self.sparsity_coeff_at(self.step, total_steps)
                    with distributed.global_batch():
                        last = self.train_step(x_BD, last_lr, coeff)
                    bar.update(1)
                    if self.step % log_every == 0:
                        entry = self._log_entry(last, last_lr)
                        history.append(entry)
                        logged_step = self.step
                        bar.set_postfix(fvu=f"{entry['fvu']:.4f}", l0=f"{entry['l0']:.1f}")
                        for callback in callbacks:
                            if says_stop(callback(dict(entry))):  # history_ keeps its own
                                raise StopTraining
                    guard.escapable = False
                    if guard.interrupted:
                        raise KeyboardInterrupt
        except StopTraining:
            stopped = "callback"
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            guard.escapable = False  # first: from here no Ctrl-C can cut the clean-up short
            self.forward_train = self.model.forward_train
            self.model.normalize_decoder_()
            self.model.rescale_inputs_(1.0 / scale)
            self.model.eval()
            bar.close()
        if last is not None and logged_step != self.step:
            entry = self._log_entry(last, last_lr)
            history.append(entry)
            for callback in callbacks:
                try:
                    callback(dict(entry))
                except StopTraining:
                    pass
        return stopped

    def _log_entry(self, metrics: dict[str, Tensor], lr: float) -> dict[str, float]:
        self.finite.raise_if_seen()  # a GPU's deferred check, before any value is logged
        entry: dict[str, float] = {"step": self.step, "samples": self.samples_seen}
        values = {name: float(value) for name, value in metrics.items()}
        if self.world > 1:  # what one process would log for the global batch
            values = distributed.global_metrics(values, self._rows, self.model.W_dec.device)
        entry.update(values)
        entry["dead_fraction"] = float(self.dead_mask().float().mean())
        entry["lr"] = lr
        return entry


class _TrainForward(torch.nn.Module):
    """`forward` = the module's training forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: SparseAutoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_BD: Tensor, dead_mask: Tensor, k_aux: int | None) -> Any:
        return self.model.forward_train(x_BD, dead_mask, k_aux)
