"""SparseAutoencoder invariants: shapes, activations, sparse backward, scale folding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_widgets.sae.model import SAEConfig, SparseAutoencoder
from sae_widgets.sae.sparse_ops import batch_topk_units

ACTS = ["relu", "topk", "batchtopk", "jumprelu"]


def make(activation: str, d: int = 12, n: int = 40, k: int | None = 3, seed: int = 0):
    cfg = SAEConfig(d_in=d, n_units=n, activation=activation, k=k)
    model = SparseAutoencoder(cfg, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # move off the symmetric init so every term is exercised
        model.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 1))
        model.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 2))
        if activation == "batchtopk":
            model.batch_threshold.fill_(0.2)
    return model


def data(n: int = 64, d: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("activation", ACTS)
def test_decode_of_encode_equals_forward(activation: str) -> None:
    model = make(activation).eval()
    x = data()
    out = model(x)
    codes = model.encode(x)
    torch.testing.assert_close(out.codes, codes)
    torch.testing.assert_close(out.reconstruction, model.decode(codes), rtol=1e-5, atol=1e-5)
    assert out.codes.shape == (64, 40) and out.reconstruction.shape == (64, 12)
    assert float(out.l0) == pytest.approx(float((codes != 0).sum(1).float().mean()))


def test_topk_codes_have_exactly_k_nonzeros_per_row() -> None:
    model = make("topk", k=5)
    with torch.no_grad():
        model.b_enc.fill_(100.0)  # every pre-activation positive, so ReLU drops none
    codes = model.encode(data())
    assert ((codes != 0).sum(1) == 5).all()
    # and they are the 5 largest pre-activations of each row
    pre = model.preacts(data())
    top = pre.topk(5, dim=1).indices.sort(1).values
    assert torch.equal((codes != 0).nonzero()[:, 1].view(-1, 5), top)


def test_topk_forward_is_relu_of_topk() -> None:
    model = make("topk", k=3)
    x = data()
    pre = model.preacts(x)
    values, units = pre.topk(3, dim=1)
    expected = torch.zeros_like(pre).scatter_(1, units, torch.relu(values))
    torch.testing.assert_close(model.encode(x), expected)


@pytest.mark.parametrize("activation", ["topk", "batchtopk"])
@pytest.mark.parametrize("k_aux", [5, 14])  # 14: every dead unit (no AuxK selection)
def test_sparse_backward_matches_dense_autograd(activation: str, k_aux: int) -> None:
    """The gathered encoder/decoder gradients equal those of the plain dense computation."""
    model = make(activation, k=4).train()
    x = data()
    dead = torch.zeros(40, dtype=torch.bool)
    dead[::3] = True  # exercise AuxK too
    out = model.forward_train(x, dead, k_aux=k_aux)
    loss = out.fvu + 0.5 * out.aux_fvu
    loss.backward()
    sparse_grads = {name: p.grad.clone() for name, p in model.named_parameters()}

    # dense reference with the same selection
    ref = make(activation, k=4)
    W_enc, b_enc = ref.W_enc, ref.b_enc
    W_dec, b_dec = ref.W_dec, ref.b_dec
    pre = (x - b_dec) @ W_enc + b_enc
    dense_codes = out.codes.to_dense(40).detach()
    mask = torch.zeros_like(pre, dtype=torch.bool)
    mask[out.codes.rows(), out.codes.units] = True
    codes = torch.relu(pre) * mask
    assert torch.allclose(codes.detach(), dense_codes, atol=1e-5)
    x_hat = codes @ W_dec + b_dec
    fvu = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    dead_pre = pre.detach().clone()
    dead_pre[:, ~dead] = -torch.inf
    aux_units = dead_pre.topk(k_aux, dim=1).indices
    aux_mask = torch.zeros_like(mask).scatter_(1, aux_units, True)
    aux_codes = torch.relu(pre) * aux_mask
    e = (x - x_hat).detach()
    aux = (aux_codes @ W_dec - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum()
    (fvu + 0.5 * aux).backward()
    assert torch.allclose(out.aux_fvu, aux, rtol=1e-5)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(sparse_grads[name], p.grad, rtol=1e-4, atol=1e-5)


def test_batch_topk_selection_is_exact_on_both_paths() -> None:
    gen = torch.Generator().manual_seed(0)
    for pre in (torch.randn(32, 50, generator=gen), torch.randn(32, 50, generator=gen)):
        pre[0] += 10.0  # one row holds most winners: forces the exact fallback on one pass
        for tensor in (pre, torch.randn(32, 50, generator=gen)):
            units, offsets, cutoff = batch_topk_units(tensor, 2)
            expected = tensor.flatten().topk(64).indices.sort().values
            rows = torch.repeat_interleave(
                torch.arange(32), torch.diff(offsets, append=torch.tensor([units.numel()]))
            )
            assert torch.equal((rows * 50 + units).sort().values, expected)
            assert float(cutoff) == pytest.approx(float(tensor.flatten().topk(64).values.min()))


def test_batchtopk_training_keeps_k_times_batch_and_estimates_threshold() -> None:
    model = make("batchtopk", k=3).train()
    with torch.no_grad():
        model.b_enc.fill_(5.0)
    out = model.forward_train(data())
    assert out.codes.units.numel() == 3 * 64
    assert out.batch_threshold is not None and float(out.batch_threshold) > 0


def test_weights_round_trip_and_orientation() -> None:
    for activation in ACTS:
        model = make(activation)
        w = model.weights()
        assert w["W_enc"].shape == (12, 40) and w["W_dec"].shape == (40, 12)
        assert ("threshold" in w) == (activation in ("jumprelu", "batchtopk"))
        clone = SparseAutoencoder.from_weights(model.cfg, **{k: v.numpy() for k, v in w.items()})
        x = data()
        torch.testing.assert_close(clone.encode(x), model.encode(x))


def test_from_weights_validates_shapes() -> None:
    model = make("topk")
    w = model.weights()
    w["W_enc"] = w["W_enc"].t()
    with pytest.raises(ValueError, match="W_enc must have shape"):
        SparseAutoencoder.from_weights(model.cfg, **w)
    with pytest.raises(ValueError, match="threshold is required"):
        SparseAutoencoder.from_weights(make("jumprelu").cfg, **make("topk").weights())


@pytest.mark.parametrize("activation", ACTS)
def test_rescale_inputs_scales_codes_and_reconstruction(activation: str) -> None:
    model = make(activation).eval()
    x = data()
    codes, recon = model.encode(x), model(x).reconstruction
    model.rescale_inputs_(4.0)
    torch.testing.assert_close(model.encode(4.0 * x), 4.0 * codes, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(4.0 * x).reconstruction, 4.0 * recon, rtol=1e-5, atol=1e-4)


def test_remove_parallel_grad_leaves_tangent_component() -> None:
    model = make("topk")
    model.W_dec.grad = torch.randn(40, 12)
    model.remove_parallel_grad_()
    dots = (model.W_dec.grad * model.W_dec).sum(1)
    assert dots.abs().max() < 1e-5


def test_jumprelu_threshold_gets_straight_through_gradient() -> None:
    model = make("jumprelu")
    with torch.no_grad():
        model.log_threshold.fill_(np.log(0.3))
    out = model.forward_train(data(256))
    out.sparsity.backward()
    grad = model.log_threshold.grad
    assert grad is not None and (grad <= 0).all() and (grad < 0).any()  # L0 raises thresholds


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        SAEConfig(d_in=4, n_units=8, activation="gelu")
    with pytest.raises(ValueError, match="k must be"):
        SAEConfig(d_in=4, n_units=8, activation="topk", k=None)
    with pytest.raises(ValueError, match="k must be"):
        SAEConfig(d_in=4, n_units=8, activation="topk", k=9)
    with pytest.raises(ValueError, match="k must be an integer"):  # was truncated silently
        SAEConfig(d_in=4, n_units=8, activation="topk", k=2.5)
    with pytest.raises(TypeError, match="k must be an integer"):  # was parsed silently
        SAEConfig(d_in=4, n_units=8, activation="topk", k="4")
    assert SAEConfig(d_in=4, n_units=8, activation="topk", k=np.int64(3)).k == 3
    with pytest.raises(ValueError, match="n_units must be a positive integer"):
        SAEConfig(d_in=4, n_units=0)
    assert SAEConfig(d_in=4, n_units=8, activation="relu").to_dict()["activation"] == "relu"


@pytest.mark.parametrize("activation", ["relu", "jumprelu", "batchtopk"])
def test_fold_decoder_norms_keeps_the_function(activation: str) -> None:
    model = make(activation).eval()
    with torch.no_grad():
        model.W_dec.mul_(torch.linspace(0.5, 3.0, 40)[:, None])
    x = data()
    before = model(x).reconstruction
    model.fold_decoder_norms_()
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(40))
    torch.testing.assert_close(model(x).reconstruction, before, rtol=1e-4, atol=1e-4)
