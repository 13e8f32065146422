"""The thread choice of a sparse training step (sae/sparse_ops_threads.py): it changes speed
only, never results, and follows the measured step times."""

from __future__ import annotations

import pytest
import torch

from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops_threads import RETRY, StepThreads, matmul_threads
from sae_widgets.sae.training import TrainConfig, Trainer


def trained(activation: str, mode: str | None) -> dict[str, torch.Tensor]:
    """Weights after 3 steps (AuxK on) with every step in `mode` (None: no choice at all)."""
    cfg = SAEConfig(d_in=64, n_units=1024, activation=activation, k=8)
    model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, TrainConfig(batch_size=512), seed=0, fresh=True)
    X = torch.randn(3 * 512, 64, generator=torch.Generator().manual_seed(1))
    trainer.initialize(X[:512])
    trainer.samples_since_fired[:100] = 10**6  # dead units: the AuxK path runs too
    model.train()
    if mode is None:
        trainer.threads.enabled = False
    else:  # force the mode: the other one already measured as much slower
        other = "parallel" if mode == "serial" else "serial"
        trainer.threads.times[mode].extend([0.0, 0.0])
        trainer.threads.times[other].extend([1e9, 1e9])
        trainer.threads.steps = 1  # no retry of the slower mode within 3 steps
    for batch in X.split(512):
        trainer.train_step(batch, 1e-3, 0.0)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread: there is nothing to choose")
@pytest.mark.parametrize("activation", ["topk", "batchtopk"])
def test_serial_small_ops_train_the_same_bits(activation: str) -> None:
    plain, serial = trained(activation, None), trained(activation, "serial")
    for name in plain:
        assert torch.equal(plain[name], serial[name]), name


def test_step_threads_use_the_faster_mode_and_retry_the_other() -> None:
    threads = StepThreads(torch.device("cpu"), sparse=True)
    # each mode timed twice first, as early on average (the early steps run slower)
    assert threads.choose() == "parallel"
    threads.times["parallel"].append(0.3)
    assert threads.choose() == "serial"
    threads.times["serial"].append(0.1)
    assert threads.choose() == "serial"
    threads.times["serial"].append(0.1)
    assert threads.choose() == "parallel"
    threads.times["parallel"].append(0.3)
    threads.steps = 1
    assert threads.choose() == "serial"
    threads.steps = RETRY  # the slower one again, judged on fresh steps alone
    assert threads.choose() == "parallel"
    assert not threads.times["parallel"]
    threads.steps += 1
    threads.times["parallel"].append(0.05)
    assert threads.choose() == "parallel"  # a second fresh step before any verdict
    threads.times["parallel"].append(0.05)
    assert threads.choose() == "parallel"  # now the faster
    assert not StepThreads(torch.device("meta"), sparse=True).enabled
    assert not StepThreads(torch.device("cpu"), sparse=False).enabled


def test_threads_are_restored_after_a_step_that_raises() -> None:
    before = torch.get_num_threads()
    threads = StepThreads(torch.device("cpu"), sparse=True)
    threads.times["parallel"].extend([1.0, 1.0])  # serial next
    threads.steps = 1  # past the warm-up step
    with pytest.raises(RuntimeError), threads.step():
        if before > 1:
            assert torch.get_num_threads() == 1
            with matmul_threads():
                assert torch.get_num_threads() == before
        raise RuntimeError("a failing step")
    assert torch.get_num_threads() == before


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread: there is nothing to choose")
def test_the_first_step_is_a_warm_up_that_does_not_count() -> None:
    """Its time (kernels loading, buffers faulting in) would make its mode look slow."""
    threads = StepThreads(torch.device("cpu"), sparse=True)
    with threads.step():
        pass
    assert threads.steps == 1 and not any(threads.times.values())
    assert threads.choose() == "parallel"  # still untried: timed next
    with threads.step():
        pass
    assert len(threads.times["parallel"]) == 1
