"""The torch ops a GPU runs give the CPU kernels' results (checked on CPU via torch_paths).

The sparse step has two implementations: compiled CPU kernels and the plain torch ops of
every other device. No GPU is needed to check the second: `torch_paths()` sends CPU tensors
down it, and each check below fails if that path's selection, loss or gradients drift.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.sae.device_paths import cpu_kernels, torch_paths
from sae_widgets.sae.model import ACTIVATIONS, SAEConfig, SparseAutoencoder

D, UNITS, K, ROWS = 24, 128, 4, 300


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
    activation: str, with_dead: bool
) -> None:
    cfg = SAEConfig(d_in=D, n_units=UNITS, activation=activation, k=K)
    model = SparseAutoencoder(cfg, generator=gen(0)).train()
    x = torch.randn(ROWS, D, generator=gen(1)) * 2 + 0.5
    dead = torch.zeros(UNITS, dtype=torch.bool)
    if with_dead:  # AuxK runs over these units (sparse activations)
        dead[::3] = True
    twin = copy.deepcopy(model)
    out, grads = step_of(model, x, dead)
    with torch_paths():
        twin_out, twin_grads = step_of(twin, x, dead)
    for name in ("fvu", "sparsity", "aux_fvu", "l0"):
        torch.testing.assert_close(
            getattr(twin_out, name), getattr(out, name), rtol=1e-5, atol=1e-6, msg=name
        )
    codes, twin_codes = out.codes, twin_out.codes
    if not isinstance(codes, torch.Tensor):
        codes, twin_codes = codes.to_dense(UNITS), twin_codes.to_dense(UNITS)
    torch.testing.assert_close(twin_codes, codes, rtol=1e-5, atol=1e-6)
    assert grads.keys() == twin_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(twin_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu"])
def test_fit_and_encoding_on_the_torch_path_match_the_kernels(activation: str) -> None:
    X = np.random.default_rng(0).normal(size=(1_500, D)).astype(np.float32)
    params = dict(n_units=UNITS, k=K, activation=activation, epochs=2, batch_size=256, seed=3)
    sae = sw.SAE(**params).fit(X)
    with torch_paths():
        twin = sw.SAE(**params).fit(X)
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
def test_a_bfloat16_matmul_step_stays_close_to_float32(activation: str) -> None:
    """precision="bf16" on the GPU path: the encoder matmul really runs in bfloat16 (its
    pre-activations differ from float32's in the last bits), and the step's loss and
    gradients stay within bfloat16's rounding of the float32 step."""
    cfg = SAEConfig(d_in=D, n_units=UNITS, activation=activation, k=K)
    model = SparseAutoencoder(cfg, generator=gen(0)).train()
    x = torch.randn(ROWS, D, generator=gen(1)) * 2 + 0.5
    dead = torch.zeros(UNITS, dtype=torch.bool)
    dead[::3] = True
    mixed = copy.deepcopy(model)
    mixed.matmul_dtype = torch.bfloat16
    with torch_paths():
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


def test_bf16_precision_fits_and_encodes_in_float32_outputs() -> None:
    X = np.random.default_rng(0).normal(size=(1_500, D)).astype(np.float32)
    params = dict(n_units=UNITS, k=K, epochs=2, batch_size=256, seed=3)
    full = sw.SAE(**params).fit(X, progress=False)
    with torch_paths():
        mixed = sw.SAE(**params, precision="bf16").fit(X, progress=False)
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
