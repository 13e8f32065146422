"""The torch ops a GPU runs give the CPU kernels' results.

The sparse step has two implementations: compiled CPU kernels and the plain torch ops of
every other device. No GPU is needed to check the second: `torch_paths()` sends CPU tensors
down it, and each check below fails if that path's selection, loss or gradients drift. On a
machine with CUDA the same checks also run on the GPU itself (the `gpu_path` fixture).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.sae.device_paths import cpu_kernels, torch_paths
from sae_widgets.sae.model import ACTIVATIONS, SAEConfig, SparseAutoencoder
from sae_widgets.sae.training import DEAD_CHECK_EVERY, NonFiniteLossError, TrainConfig, Trainer

D, UNITS, K, ROWS = 24, 128, 4, 300


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


GPU_PATHS = ["cpu-torch-ops"] + (["cuda"] if torch.cuda.is_available() else [])


class GpuPath:
    """Where the GPU path runs: CPU tensors within torch_paths(), or a real CUDA device."""

    def __init__(self, name: str) -> None:
        self.device = torch.device("cuda" if name == "cuda" else "cpu")
        self.enter: Callable[[], Any] = contextlib.nullcontext if name == "cuda" else torch_paths


@pytest.fixture(params=GPU_PATHS)
def gpu_path(request: pytest.FixtureRequest) -> GpuPath:
    return GpuPath(request.param)


def test_torch_paths_switch_only_within_the_block() -> None:
    x = torch.ones(2)
    assert cpu_kernels(x)
    with torch_paths():
        assert not cpu_kernels(x)
    assert cpu_kernels(x)


def step_of(model: SparseAutoencoder, x: torch.Tensor, dead: torch.Tensor) -> tuple:
    """A training step's loss terms and gradients (the Trainer's loss: all terms summed)."""
    model.zero_grad(set_to_none=True)
    out = model.forward_train(x, dead, None)
    loss = out.fvu + out.sparsity + out.aux_fvu
    if out.extra_loss is not None:
        loss = loss + out.extra_loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("with_dead", [False, True])
def test_a_training_step_on_the_torch_path_equals_the_kernels(
    activation: str, with_dead: bool, gpu_path: GpuPath
) -> None:
    cfg = SAEConfig(d_in=D, n_units=UNITS, activation=activation, k=K)
    model = SparseAutoencoder(cfg, generator=gen(0)).train()
    x = torch.randn(ROWS, D, generator=gen(1)) * 2 + 0.5
    dead = torch.zeros(UNITS, dtype=torch.bool)
    if with_dead:  # AuxK runs over these units (sparse activations)
        dead[::3] = True
    twin = copy.deepcopy(model).to(gpu_path.device)
    out, grads = step_of(model, x, dead)
    with gpu_path.enter():
        twin_out, twin_grads = step_of(twin, x.to(gpu_path.device), dead.to(gpu_path.device))
    twin_out = twin_out._replace(
        **{name: getattr(twin_out, name).cpu() for name in ("fvu", "sparsity", "aux_fvu", "l0")}
    )
    twin_grads = {name: grad.cpu() for name, grad in twin_grads.items()}
    for name in ("fvu", "sparsity", "aux_fvu", "l0"):
        torch.testing.assert_close(
            getattr(twin_out, name), getattr(out, name), rtol=1e-5, atol=1e-6, msg=name
        )
    codes, twin_codes = out.codes, twin_out.codes
    if not isinstance(codes, torch.Tensor):
        codes, twin_codes = codes.to_dense(UNITS), twin_codes.to_dense(UNITS)
    torch.testing.assert_close(twin_codes.cpu(), codes, rtol=1e-5, atol=1e-6)
    assert grads.keys() == twin_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(twin_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu"])
def test_fit_and_encoding_on_the_torch_path_match_the_kernels(
    activation: str, gpu_path: GpuPath
) -> None:
    X = np.random.default_rng(0).normal(size=(1_500, D)).astype(np.float32)
    params = dict(n_units=UNITS, k=K, activation=activation, epochs=2, batch_size=256, seed=3)
    sae = sw.SAE(**params).fit(X, progress=False)
    with gpu_path.enter():
        twin = sw.SAE(**params, device=gpu_path.device).fit(X, progress=False)
        twin_dense, twin_sparse = twin.transform(X[:400]), twin.encode_sparse(X[:400])
    # the same steps: only float rounding of the sums' order may differ
    assert sae.history_[-1]["fvu"] == pytest.approx(twin.history_[-1]["fvu"], rel=1e-3)
    dense, sparse = sae.transform(X[:400]), sae.encode_sparse(X[:400])
    torch.testing.assert_close(twin_dense, dense, rtol=1e-3, atol=1e-4)
    swapped = (twin_sparse.toarray() != 0) != (sparse.toarray() != 0)
    assert swapped.sum() <= 0.01 * sparse.nnz  # a near-tie may swap a unit
    np.testing.assert_allclose(twin_sparse.toarray(), sparse.toarray(), rtol=1e-3, atol=1e-4)
    # each path's sparse codes are its own dense codes
    np.testing.assert_array_equal(twin_sparse.toarray(), twin_dense)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_a_bfloat16_matmul_step_stays_close_to_float32(activation: str, gpu_path: GpuPath) -> None:
    """precision="bf16" on the GPU path: the encoder matmul really runs in bfloat16 (its
    pre-activations differ from float32's in the last bits), and the step's loss and
    gradients stay within bfloat16's rounding of the float32 step."""
    cfg = SAEConfig(d_in=D, n_units=UNITS, activation=activation, k=K)
    model = SparseAutoencoder(cfg, generator=gen(0)).train()
    x = torch.randn(ROWS, D, generator=gen(1)) * 2 + 0.5
    dead = torch.zeros(UNITS, dtype=torch.bool)
    dead[::3] = True
    model, x, dead = model.to(gpu_path.device), x.to(gpu_path.device), dead.to(gpu_path.device)
    mixed = copy.deepcopy(model)
    mixed.matmul_dtype = torch.bfloat16
    with gpu_path.enter():
        out, grads = step_of(model, x, dead)
        mixed_out, mixed_grads = step_of(mixed, x, dead)
        pre, mixed_pre = model.preacts(x), mixed.preacts(x)
    assert mixed_pre.dtype == torch.float32 and not torch.equal(mixed_pre, pre)
    torch.testing.assert_close(mixed_pre, pre, rtol=0.02, atol=0.05)
    assert mixed_out.fvu.dtype == torch.float32
    assert float(mixed_out.fvu.detach()) == pytest.approx(float(out.fvu.detach()), rel=0.02)
    aux, mixed_aux = float(out.aux_fvu.detach()), float(mixed_out.aux_fvu.detach())
    assert mixed_aux == pytest.approx(aux, rel=0.02, abs=1e-6)
    for name, grad in grads.items():
        mixed_grad = mixed_grads[name]
        assert mixed_grad.dtype == grad.dtype
        cosine = torch.nn.functional.cosine_similarity(mixed_grad.flatten(), grad.flatten(), 0)
        assert float(cosine) > 0.98, name


def test_bf16_precision_fits_and_encodes_in_float32_outputs(gpu_path: GpuPath) -> None:
    X = np.random.default_rng(0).normal(size=(1_500, D)).astype(np.float32)
    params = dict(n_units=UNITS, k=K, epochs=2, batch_size=256, seed=3)
    full = sw.SAE(**params).fit(X, progress=False)
    with gpu_path.enter():
        mixed = sw.SAE(**params, precision="bf16", device=gpu_path.device)
        mixed.fit(X, progress=False)
        codes, sparse = mixed.transform(X[:400]), mixed.encode_sparse(X[:400])
    assert mixed.history_[-1]["fvu"] == pytest.approx(full.history_[-1]["fvu"], rel=0.03)
    assert codes.dtype == np.float32 and sparse.dtype == np.float32
    np.testing.assert_array_equal(sparse.toarray(), codes)
    assert np.count_nonzero(codes, axis=1).max() <= K


def test_bf16_precision_on_cpu_kernels_warns_and_trains_in_float32() -> None:
    X = np.random.default_rng(1).normal(size=(400, D)).astype(np.float32)
    params = dict(n_units=32, k=K, epochs=1, seed=0)
    with pytest.warns(RuntimeWarning, match="precision='bf16' applies on GPUs"):
        mixed = sw.SAE(**params, precision="bf16").fit(X, progress=False)
    full = sw.SAE(**params).fit(X, progress=False)
    np.testing.assert_array_equal(mixed.components_, full.components_)
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16'; got 'fp16'"):
        sw.SAE(precision="fp16").fit(X)


def test_a_gpu_defers_the_loss_check_and_still_keeps_the_last_good_weights(
    gpu_path: GpuPath,
) -> None:
    """On the GPU path fused Adam skips the updates from the first non-finite loss on (its
    found_inf), and the error comes when the metrics are next read, naming that step;
    the weights stay those of the last good step and training can go on."""
    X = torch.from_numpy(np.random.default_rng(2).normal(size=(640, D)).astype(np.float32))
    X_bad = X.clone()
    X_bad[150] = float("inf")  # the third batch of 64 rows in order: step 5 after 2 steps
    X, X_bad = X.to(gpu_path.device), X_bad.to(gpu_path.device)
    model = SparseAutoencoder(SAEConfig(d_in=D, n_units=32, k=3), generator=gen(0))
    model = model.to(gpu_path.device)
    with gpu_path.enter():
        trainer = Trainer(model, TrainConfig(log_every=4), seed=0, fresh=True)
        assert trainer.finite.deferred
        trainer.run(X[:128], [], epochs=1, batch_size=64, shuffle=False, total_steps=None)
        good: list[SparseAutoencoder] = []

        def keep_weights(entry: dict[str, float]) -> None:  # called at steps 4, 8, ...
            good.append(copy.deepcopy(model))  # in training space, as the run leaves it

        with pytest.raises(NonFiniteLossError, match=r"became (nan|inf) at step 5\. Try"):
            trainer.run(X_bad, [], epochs=1, batch_size=64, shuffle=False, total_steps=None,
                        callbacks=[keep_weights])  # fmt: skip
        assert trainer.step == 8  # raised at the next log step, not at the bad step
        weights = model.weights()
        assert all(bool(torch.isfinite(w).all()) for w in weights.values())
        # no update after step 4's (the decoder renormalised in place: equal to rounding)
        assert trainer.scale is not None and len(good) == 1
        good[0].rescale_inputs_(1 / trainer.scale)  # back to user space, as the run did
        for name, value in good[0].weights().items():
            torch.testing.assert_close(weights[name], value, msg=name)
        assert trainer.finite.skipped is None and not trainer.finite.pending
        before = model.W_dec.detach().clone()
        trainer.run(X, [], epochs=1, batch_size=64, shuffle=True, total_steps=None)
        assert not torch.equal(before, model.W_dec.detach())  # updates no longer skipped
    assert not Trainer(model.cpu(), TrainConfig(), 0, False).finite.deferred  # CPU


def test_the_deferred_check_changes_no_result_of_a_finite_fit() -> None:
    """A finite fit is the same with the loss read each step or deferred; only AuxK may
    start up to DEAD_CHECK_EVERY steps later, so it is off here (dead_window beyond the
    run)."""
    X = torch.from_numpy(np.random.default_rng(3).normal(size=(1_024, D)).astype(np.float32))

    def trained(deferred: bool) -> Trainer:
        model = SparseAutoencoder(SAEConfig(d_in=D, n_units=64, k=4), generator=gen(0))
        trainer = Trainer(model, TrainConfig(log_every=3, dead_window=10**9), 0, True)
        trainer.finite.deferred = deferred
        trainer.run(X, [], epochs=2, batch_size=128, shuffle=True, total_steps=16)
        return trainer

    with torch_paths():
        each, deferred = trained(False), trained(True)
    assert torch.equal(each.model.W_dec, deferred.model.W_dec)


def test_a_gpu_reads_the_dead_units_for_auxk_every_few_steps() -> None:
    X = torch.from_numpy(np.random.default_rng(4).normal(size=(2_560, D)).astype(np.float32))
    model = SparseAutoencoder(SAEConfig(d_in=D, n_units=64, k=2), generator=gen(0))
    history: list[dict[str, float]] = []
    with torch_paths():  # dead_window 1: units silent in the last step count as dead
        trainer = Trainer(model, TrainConfig(log_every=1, dead_window=1), seed=0, fresh=True)
        trainer.run(X, history, epochs=1, batch_size=64, shuffle=False, total_steps=None)
    aux = [entry["aux_fvu"] for entry in history]
    every = DEAD_CHECK_EVERY
    assert aux[:every] == [0.0] * every  # read at step 0: none dead yet
    assert all(value > 0 for value in aux[every:])  # read again at step 16: AuxK from then


def test_a_bad_precision_is_named_wherever_it_comes_from() -> None:
    X = np.random.default_rng(1).normal(size=(200, D)).astype(np.float32)
    sae = sw.SAE(n_units=16, k=2, epochs=1).fit(X, progress=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        sae.set_params(precision="half")
    sae.precision = "half"  # scikit-learn style: attributes are plain
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16'; got 'half'"):
        sae.transform(X)
    wrapped = sw.SAE.from_module(sae.model_, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        wrapped.encode_sparse(X)
