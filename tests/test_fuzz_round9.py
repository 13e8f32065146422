"""Fuzz round 9: the hidden activations of unusual PyTorch models (shared layers, aliases,
gradients through a splice, literal special tokens in texts). Each test pins a defect found
in this round (the fix is in the commit that added it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sae_widgets as sw


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _rows(n: int = 16, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def _topk_sae(d: int, n_units: int = 12, k: int = 3, seed: int = 0) -> sw.SAE:
    """A TopK SAE with random weights (no training needed to check plumbing)."""
    g = torch.Generator().manual_seed(seed)
    cfg = sw.SAEConfig(d_in=d, n_units=n_units, activation="topk", k=k)
    W_enc = torch.randn(d, n_units, generator=g)
    W_dec = torch.randn(n_units, d, generator=g) / d**0.5
    module = sw.SparseAutoencoder.from_weights(
        cfg, W_enc, torch.zeros(n_units), W_dec, torch.zeros(d)
    )
    return sw.SAE.from_module(module)


# ------------------------------------------------------------------ a layer under two names


class _Aliased(nn.Module):
    """One Linear registered twice (`lin` and `alias`) and applied twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.alias = self.lin  # named_modules() lists it once, as "lin"
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lin(torch.relu(self.lin(x))))


def test_a_layer_registered_under_two_names_is_found_by_either() -> None:
    # layer="alias" was "not found in model; available layers: lin, head" although
    # model.alias is that very layer
    torch.manual_seed(0)
    model = _Aliased()
    X = _rows()
    by_alias = sw.collect_activations(model, "alias", X)
    by_name = sw.collect_activations(model, "lin", X)
    np.testing.assert_array_equal(by_alias.X, by_name.X)
    assert by_alias.name.endswith("-> alias")
    with torch.no_grad(), sw.Intervention(model, "alias", ablate="zero"):
        zeroed = model(torch.from_numpy(X))
    with torch.no_grad():
        np.testing.assert_allclose(zeroed.numpy(), model.head.bias.expand(16, 2).numpy())
    assert _hooks(model) == 0
    with pytest.raises(ValueError, match=r"layer 'alias\.x' not found.*available layers: lin"):
        sw.collect_activations(model, "alias.x", X)


# ------------------------------------------------------------------ gradients through a splice


def _manual_edit(h, sae_module, kind, unit, value):
    """The edit of `kind` written out in plain differentiable torch (module docstring of
    sae_widgets.sae.splice): the reference the hooked edit's gradients are held to."""
    W_enc, b_enc, W_dec, b_dec = (
        sae_module.W_enc,
        sae_module.b_enc,
        sae_module.W_dec,
        sae_module.b_dec,
    )
    pre = (h - b_dec) @ W_enc + b_enc
    values, units = pre.topk(sae_module.cfg.k, dim=1)
    codes = torch.zeros_like(pre).scatter(1, units, torch.relu(values))
    if kind == "splice":
        return codes @ W_dec + b_dec
    if kind == "steer":
        return h + value * W_dec[unit]
    new_u = value if kind == "set" else codes[:, unit].clamp(None, value)
    return h + (new_u - codes[:, unit])[:, None] * W_dec[unit]


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["splice", "set", "steer", "clamp"]),
    seed=st.integers(0, 2**16),
    unit=st.integers(0, 11),
    value=st.floats(-3, 3, allow_nan=False),
)
def test_gradients_flow_through_an_intervention_as_through_the_edit_written_out(
    kind, seed, unit, value
) -> None:
    # The hooked edit ran under no_grad: inside an Intervention, model(x).backward() gave
    # the inputs and every parameter upstream of the layer no gradient at all (x.grad None)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    sae = _topk_sae(5, seed=seed)
    module = sae.model_
    edit = {
        "splice": {},
        "set": {"set": {unit: value}},
        "steer": {"steer": {unit: value}},
        "clamp": {"clamp": {unit: (None, value)}},
    }[kind]
    x = torch.from_numpy(_rows(8, 6, seed)).requires_grad_()
    weights = torch.randn(8, 3)
    with sw.Intervention(model, "1", sae, **edit):
        (model(x) * weights).sum().backward()
    assert _hooks(model) == 0
    got = [x.grad, model[0].weight.grad, module.W_enc.grad, module.W_dec.grad]
    assert all(g is not None for g in got[:2])
    x_ref = x.detach().clone().requires_grad_()
    ref_params = [p.detach().clone().requires_grad_() for p in (model[0].weight, module.W_enc)]
    model.zero_grad()
    module.zero_grad()
    h = torch.relu(nn.functional.linear(x_ref, ref_params[0], model[0].bias))

    class _Ref:  # the SAE's parameters, W_enc replaced by the leaf under test
        cfg = module.cfg
        W_enc, b_enc, W_dec, b_dec = ref_params[1], module.b_enc, module.W_dec, module.b_dec

    out = model[2](_manual_edit(h, _Ref, kind, unit, value))
    (out * weights).sum().backward()
    torch.testing.assert_close(got[0], x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], ref_params[0].grad, rtol=1e-4, atol=1e-5)
    if kind in ("splice", "set", "clamp"):  # the encoder takes part (steer adds a constant)
        ref_enc = ref_params[1].grad
        torch.testing.assert_close(
            got[2] if got[2] is not None else torch.zeros_like(ref_enc),
            ref_enc,
            rtol=1e-4,
            atol=1e-5,
        )
    with torch.no_grad(), sw.Intervention(model, "1", sae, **edit):
        fast = model(x)
    torch.testing.assert_close(fast, out.detach(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ special tokens typed in texts


@pytest.fixture(scope="module")
def minilm():
    return sw.models.minilm()


def test_special_tokens_written_in_a_text_are_dropped_like_the_added_ones(minilm) -> None:
    # "[CLS] hi [SEP]" gave rows for the typed [CLS] and [SEP] (the tokenizer's special
    # tokens mask marks only the ones it adds) although drop_special drops special tokens;
    # a chat template's <|im_end|> the same
    model, tok = minilm
    texts = ["[CLS] hi [SEP]", "hi", "a [SEP][SEP] b"]
    ds = sw.collect_activations(model, "encoder.layer.1", texts, tokenizer=tok)
    names = tok.convert_ids_to_tokens([int(i) for i in ds.tokens.token_id])
    assert names == ["hi", "hi", "a", "b"]
    # the row of "hi" in the first text is its vector there (not shifted by a dropped row)
    kept = sw.collect_activations(
        model, "encoder.layer.1", texts[:1], tokenizer=tok, drop_special=False
    )
    assert tok.convert_ids_to_tokens([int(i) for i in kept.tokens.token_id]) == [
        "[CLS]",
        "[CLS]",
        "hi",
        "[SEP]",
        "[SEP]",
    ]
    np.testing.assert_allclose(ds.X[0], kept.X[2], atol=1e-5)  # padded in a batch of 3
    # an [UNK] standing for other characters is text, and stays
    unknown = sw.collect_activations(model, "encoder.layer.1", ["x \u2603 y"], tokenizer=tok)
    assert tok.convert_ids_to_tokens([int(i) for i in unknown.tokens.token_id]) == [
        "x",
        "[UNK]",
        "y",
    ]
    assert _hooks(model) == 0


# ------------------------------------------------------------------ steering a conv net


def _digits_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(128, 10)
    ).train()


def test_steering_a_conv_net_takes_the_datasets_images_like_collect_activations() -> None:
    # collect_activations fed the conv net image batches from the dataset's images, but the
    # Explorer's steerer fed it flat rows: sweep raised torch's own RuntimeError ("Expected
    # 3D (unbatched) or 4D (batched) input to conv2d")
    ds = sw.datasets.digits()[np.arange(40)]
    model = _digits_cnn()
    acts = sw.collect_activations(model, "1", ds)
    sae = _topk_sae(acts.n_features, n_units=8, k=2)
    auto = sw.Explorer(sae, acts, model=model, layer="1", inputs=ds)
    given = sw.Explorer(
        sae, acts, model=model, layer="1", inputs=ds, input_fn=lambda x: x.reshape(-1, 1, 8, 8)
    )
    a = auto.steerer.sweep(3, [0.0, 2.0], [0, 5, 7])
    b = given.steerer.sweep(3, [0.0, 2.0], [0, 5, 7])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert model.training and model[2].training and _hooks(model) == 0


def test_steering_inputs_the_model_rejects_are_a_value_error_naming_inputs() -> None:
    ds = sw.datasets.digits()[np.arange(40)]
    model = _digits_cnn()
    acts = sw.collect_activations(model, "1", ds)
    sae = _topk_sae(acts.n_features, n_units=8, k=2)
    ex = sw.Explorer(sae, acts, model=model, layer="1", inputs=ds.X)  # no images to go by
    with pytest.raises(ValueError, match=r"conv2d.*shape \(2, 64\).*inputs must hold.*input_fn"):
        ex.steerer.sweep(0, [1.0], [0, 1])
    bad_fn = sw.Explorer(
        sae, acts, model=model, layer="1", inputs=ds, input_fn=lambda x: x.reshape(-1, 64, 1, 1)
    )
    with pytest.raises(ValueError, match=r"inputs must hold what the model takes \(check input_fn"):
        bad_fn.steerer.sweep(0, [1.0], [0, 1])
    # the layer's rows against the SAE's width: that error is ours, and passes unchanged
    wrong = sw.Explorer(sae, acts, model=model, layer="4", inputs=ds)
    with pytest.raises(ValueError, match=r"^layer '4' output has shape \(2, 10\)"):
        wrong.steerer.sweep(0, [1.0], [0, 1])
    assert model.training and _hooks(model) == 0
    np.testing.assert_array_equal(  # the model still works, unhooked
        model.eval()(torch.from_numpy(ds.X[:2]).reshape(2, 1, 8, 8)).shape, (2, 10)
    )


def test_evaluate_feeds_a_conv_net_the_datasets_images_like_collect_activations() -> None:
    # evaluate(sae, ds, model=cnn, layer=...) on the very Dataset collect_activations had fed
    # the cnn as images raised "Expected 3D (unbatched) or 4D (batched) input to conv2d"
    ds = sw.datasets.digits()[np.arange(40)]
    model = _digits_cnn()
    acts = sw.collect_activations(model, "1", ds)
    sae = _topk_sae(acts.n_features, n_units=8, k=2)
    auto = sw.metrics.evaluate(sae, ds, model=model, layer="1")
    given = sw.metrics.evaluate(
        sae, ds, model=model, layer="1", input_fn=lambda x: x.reshape(-1, 1, 8, 8)
    )
    assert auto == pytest.approx(given, rel=1e-6)
    assert model.training and _hooks(model) == 0
    # the activations themselves are still refused, with the hint
    with pytest.raises(ValueError, match=r"conv2d.*not the activations"):
        sw.metrics.evaluate(sae, acts, model=model, layer="1")


def test_steering_reads_the_layer_output_before_an_in_place_op_after_it() -> None:
    # capture_output kept the layer's output tensor itself: a ReLU(inplace=True) after the
    # layer (torchvision's ResNets) zeroed its negative values before the steerer encoded
    # them, so a sweep's unit activations were those of other rows
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))
    X = _rows(20, 6)
    acts = sw.collect_activations(model, "0", X)
    assert (acts.X < 0).any()  # there is something for the ReLU to change
    sae = _topk_sae(5, n_units=6, k=3)
    codes = sae.transform(acts.X)
    ex = sw.Explorer(sae, acts, model=model, layer="0", inputs=X)
    samples = np.arange(20)
    found = [ex.steerer.sweep(u, [0.0], samples).unit_activation[0] for u in range(6)]
    np.testing.assert_allclose(found, codes.mean(0), rtol=1e-5, atol=1e-6)
    assert _hooks(model) == 0


# ------------------------------------------------------------------ TorchScript models


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_torchscript_models_and_layers_are_named_not_torch_runtime_errors() -> None:
    # a scripted model raised torch's "RuntimeError: register_forward_hook is not supported
    # on ScriptModules"; a traced one "layer '1' was not called by model's forward pass"
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    X = _rows(8, 6)
    sae = _topk_sae(5, n_units=6, k=2)
    for compiled in (torch.jit.script(eager), torch.jit.trace(eager, torch.zeros(2, 6))):
        with pytest.raises(TypeError, match=r"model is a TorchScript module.*eager nn\.Module"):
            sw.collect_activations(compiled, "1", X)
        with pytest.raises(TypeError, match=r"model is a TorchScript module"):
            sw.Intervention(compiled, "1", sae)
        with pytest.raises(TypeError, match=r"model is a TorchScript module"):
            sw.metrics.evaluate(sae, X, model=compiled, layer="1", labels=np.zeros(8, int))
    mixed = nn.Sequential(nn.Linear(6, 5), torch.jit.script(nn.ReLU()), nn.Linear(5, 3))
    with pytest.raises(TypeError, match=r"layer '1' is a TorchScript module"):
        sw.collect_activations(mixed, "1", X)
    with pytest.raises(TypeError, match=r"layer '1' is a TorchScript module"):
        sw.Intervention(mixed, mixed[1], sae)
    assert sw.collect_activations(mixed, "0", X).X.shape == (8, 5)  # its eager layers work
    assert _hooks(mixed) == 0 and _hooks(eager) == 0


# ------------------------------------------------------------------ models writing into their input


class _Doubling(nn.Module):
    """Doubles its input in place before the layers (as a first ReLU(inplace=True) or an
    in-place normalisation writes into it)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mul_(2))


def _identity_sae(d: int) -> sw.SAE:
    cfg = sw.SAEConfig(d_in=d, n_units=d, activation="relu")
    eye = torch.eye(d)
    return sw.SAE.from_module(
        sw.SparseAutoencoder.from_weights(cfg, eye, torch.zeros(d), eye, torch.zeros(d))
    )


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 50), as_dataset=st.booleans())
def test_a_model_writing_into_its_input_leaves_the_callers_data_alone(
    n: int, batch_size: int, as_dataset: bool
) -> None:
    # collect_activations and evaluate gave the model the caller's own memory: a model
    # writing into its input changed the Dataset's X (or the array given), and evaluate's
    # later passes (spliced, ablated) ran on the already-doubled inputs
    X = _rows(n, 6, seed=n)
    data = sw.Dataset(X.copy(), labels=np.arange(n) % 3) if as_dataset else X.copy()
    model = _Doubling()
    acts = sw.collect_activations(model, "net.1", data, batch_size=batch_size)
    np.testing.assert_array_equal(getattr(data, "X", data), X)
    with torch.no_grad():
        expected = model.net[1](model.net[0](torch.from_numpy(2 * X))).numpy()
    np.testing.assert_allclose(acts.X, expected, rtol=1e-6, atol=1e-7)
    figures = sw.metrics.evaluate(
        _identity_sae(5), data, model=model, layer="net.1", labels=np.arange(n) % 3
    )
    np.testing.assert_array_equal(getattr(data, "X", data), X)
    assert figures["kl_spliced"] == pytest.approx(0.0, abs=1e-9)  # the same inputs each pass
    assert figures["ce_spliced"] == pytest.approx(figures["ce_original"], rel=1e-9)


def test_every_steering_pass_sees_the_same_inputs_when_the_model_writes_into_them() -> None:
    # the sweep gave one input tensor to every pass: a model writing into its input
    # doubled it again on each, so alpha 0 drifted away from the baseline pass by pass
    X = _rows(10, 6)
    model = _Doubling()
    acts = sw.collect_activations(model, "net.1", X)
    ex = sw.Explorer(_identity_sae(5), acts, model=model, layer="net.1", inputs=X)
    result = ex.steerer.sweep(0, [0.0, 0.0, 0.0], np.arange(10))
    for row in result.probabilities:
        np.testing.assert_allclose(row, result.baseline, rtol=1e-12)
    with torch.no_grad():
        expected = torch.softmax(model.net(torch.from_numpy(2 * X)).double(), -1).mean(0)
    np.testing.assert_allclose(result.baseline, expected.numpy(), rtol=1e-6)


# ------------------------------------------------------------------ Hugging Face ModelOutput layers


class _Encoder(nn.Module):
    """A submodule returning a ModelOutput, as a Hugging Face encoder does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> object:
        from transformers.modeling_outputs import BaseModelOutput

        hidden = torch.relu(self.lin(x))
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=(x, hidden))


class _WithEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = _Encoder()
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encoder(x)
        assert len(out.hidden_states) == 2  # the other fields are kept
        return self.head(out.last_hidden_state)


def test_a_layer_returning_a_model_output_is_read_and_edited_at_its_first_field() -> None:
    # a ModelOutput (an encoder's BaseModelOutput) was "not a tensor (or a tuple whose first
    # item is one)" for collect_activations and a TypeError inside the forward for an
    # Intervention, though its first field is the hidden states, as a tuple's first item is
    pytest.importorskip("transformers")
    model = _WithEncoder()
    X = _rows(12, 6)
    acts = sw.collect_activations(model, "encoder", X)
    with torch.no_grad():
        expected = torch.relu(model.encoder.lin(torch.from_numpy(X)))
        np.testing.assert_allclose(acts.X, expected.numpy(), rtol=1e-6)
        sae = _topk_sae(5, n_units=6, k=2)
        with sw.Intervention(model, "encoder", sae):
            spliced = model(torch.from_numpy(X))
        manual = model.head(sae.model_.decode(sae.model_.encode(expected)))
    torch.testing.assert_close(spliced, manual, rtol=1e-5, atol=1e-6)
    figures = sw.metrics.evaluate(sae, X, model=model, layer="encoder", labels=np.arange(12) % 3)
    assert np.isfinite(figures["ce_spliced"])
    assert _hooks(model) == 0


def test_a_whole_hugging_face_model_is_a_layer_of_itself(minilm) -> None:
    model, tok = minilm
    texts = ["a short text", "and another one"]
    whole = sw.collect_activations(model, "", texts, tokenizer=tok)
    last = sw.collect_activations(model, "encoder.layer.5", texts, tokenizer=tok)
    np.testing.assert_array_equal(whole.X, last.X)


# ------------------------------------------------------------------ fitting inside no_grad blocks


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("activation", ["topk", "jumprelu"])
def test_fit_inside_a_no_grad_or_inference_mode_block_trains_as_outside(
    context, activation
) -> None:
    # activations are collected under torch.no_grad() / inference_mode(), and a notebook
    # cell often fits in the same block: fit raised torch's "RuntimeError: element 0 of
    # tensors does not require grad and does not have a grad_fn"
    X = _rows(120, 6)
    params = dict(n_units=8, k=2, activation=activation, epochs=2, batch_size=40, seed=0)
    outside = sw.SAE(**params).fit(X, progress=False)
    with context():
        X_t = torch.from_numpy(X.copy())  # an inference tensor under inference_mode
        inside = sw.SAE(**params).fit(X_t, progress=False)
        inside.partial_fit(X_t[:40])
    outside.partial_fit(X[:40])
    np.testing.assert_array_equal(inside.components_, outside.components_)
    inside.partial_fit(X[:40])  # and it trains on outside the block
    assert len(inside.history_) == len(outside.history_) + 1


# ------------------------------------------------------------------ half-precision models


@settings(max_examples=15, deadline=None)
@given(
    row=st.integers(0, 9),
    value=st.floats(7e4, 3e38),
    sign=st.sampled_from([1.0, -1.0]),
    batch_size=st.integers(1, 10),
)
def test_inputs_a_float16_model_cannot_hold_are_named_as_data(row, value, sign, batch_size):
    # a float16 model's inputs are cast to float16: 1e5 became inf there, reported as
    # "layer '0' produced NaN or infinite activations ...; check the model and its inputs"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Identity(), nn.Linear(6, 3)).half()
    X = _rows(10, 6)
    X[row, 2] = sign * value
    with pytest.raises(ValueError, match=rf"^data: X row {row} holds values beyond torch\.float16"):
        sw.collect_activations(model, "0", X, batch_size=batch_size)
    # evaluate: its figures came out NaN, without a word
    sae = _identity_sae(6)
    with pytest.raises(ValueError, match=rf"^data: X row {row} holds values beyond torch\.float16"):
        sw.metrics.evaluate(sae, X, model=model, layer="0", labels=np.zeros(10, int))
    X[row, 2] = sign * 6e4  # within float16's range: collected
    acts = sw.collect_activations(model, "0", X, batch_size=batch_size)
    assert np.isfinite(acts.X).all()
    assert _hooks(model) == 0


def test_an_image_array_given_as_data_is_refused_with_the_way_to_pass_it() -> None:
    # (n, h, w) images were refused as "not 2-D" with no word on how to pass them
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    images = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"images=X\).*input_shape=\(1, 8, 8\)"):
        sw.collect_activations(conv, "0", images)
    hinted = sw.collect_activations(conv, "0", images.reshape(5, -1), input_shape=(1, 8, 8))
    via_dataset = sw.collect_activations(
        conv, "0", sw.Dataset(images.reshape(5, -1), images=images)
    )
    np.testing.assert_array_equal(hinted.X, via_dataset.X)


def test_steering_inputs_a_float16_model_cannot_hold_are_named_as_inputs() -> None:
    # collect and evaluate named them (above); the steerer cast them to inf and drew NaN
    torch.manual_seed(0)
    model = nn.Sequential(nn.Identity(), nn.Linear(6, 3)).half()
    X = _rows(10, 6)
    acts = sw.collect_activations(model, "0", X)
    inputs = X.copy()
    inputs[7, 1] = 1e5  # beyond float16's 65504
    ex = sw.Explorer(_identity_sae(6), acts, model=model, layer="0", inputs=inputs)
    with pytest.raises(ValueError, match=r"^inputs: X row 7 holds values beyond torch\.float16"):
        ex.steerer.sweep(0, [0.0, 1.0], [2, 7])
    result = ex.steerer.sweep(0, [0.0, 1.0], [2, 3])  # rows within range still steer
    assert np.isfinite(result.probabilities).all()
