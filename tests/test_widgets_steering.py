"""SteeringView headless: Selection state -> view, slider -> model output, notification counts,
and the Explorer's Steerer against a brute-force run of the model."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pytest
import torch
from torch import nn
from traitlets import All

import sae_widgets as sw
from sae_widgets.widgets.steering import alpha_grid, continuation_alphas

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture(scope="module")
def classifier():
    torch.set_num_threads(1)
    model = sw.datasets.digits_mlp(steps=150)
    ds = sw.datasets.digits()
    acts = sw.collect_activations(model, "net.1", ds)
    sae = sw.SAE(n_units=48, k=6, epochs=6, batch_size=128, seed=0).fit(acts.X, progress=False)
    return model, ds, acts, sae


@pytest.fixture
def view(classifier):
    model, ds, acts, sae = classifier
    ex = sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds)
    return ex, sw.SteeringView(ex, max_samples=40)


def _watch(has_traits, name):
    observer = Mock()
    has_traits.observe(observer, names=name)
    return observer


def test_focusing_a_unit_draws_its_sweep(view, classifier):
    ex, steering = view
    assert steering.result is None
    assert "focus a unit" in steering.caption.value
    unit = int(np.argmax(ex.codes.frequency))
    ex.selection.unit = unit
    result = steering.result
    assert result is not None and result.unit == unit and result.mode == "steer"
    assert (
        f"unit {unit}" in steering.caption.value and "40 random samples" in steering.caption.value
    )
    np.testing.assert_allclose(steering.curves.y, result.probabilities.T, rtol=1e-6)
    np.testing.assert_allclose(steering.activation.y, result.unit_activation, rtol=1e-6)
    expected_grid = alpha_grid(float(ex.codes.max_activation[unit]), "steer")
    np.testing.assert_allclose(result.alphas, expected_grid)
    assert steering.slider.value == 0.0
    # alpha 0 in steer mode is the unedited model: the two rows of bars agree
    np.testing.assert_allclose(steering.bar_values()[0], steering.bar_values()[1], atol=1e-6)


def test_the_sweep_matches_the_model_run_by_hand(view, classifier):
    model, ds, _acts, sae = classifier
    ex, steering = view
    ex.selection.samples = [3, 10, 200]
    unit = int(np.argmax(ex.codes.frequency))
    ex.selection.unit = unit
    result = steering.result
    W = sae.model_.W_dec.detach()
    with torch.no_grad():
        x = torch.from_numpy(ds.X[[3, 10, 200]])
        hidden = model.net[:2](x)
        before = sae.model_.encode(hidden)[:, unit].double().mean().item()
        for i in (0, len(result.alphas) - 1):
            steered = hidden + float(result.alphas[i]) * W[unit]
            probs = torch.softmax(model.net[2:](steered).double(), -1).mean(0).numpy()
            unit_act = sae.model_.encode(steered)[:, unit].double().mean().item()
            np.testing.assert_allclose(result.probabilities[i], probs, rtol=1e-5, atol=1e-7)
            assert result.unit_activation[i] == pytest.approx(unit_act, rel=1e-5, abs=1e-6)
    # the unit reads back the push: less at -alpha, more at +alpha than unedited
    assert result.unit_activation[0] < before < result.unit_activation[-1]
    assert "3 selected samples" in steering.caption.value


def test_moving_the_slider_redraws_only_the_bars_and_the_rule(view):
    ex, steering = view
    ex.selection.unit = 7
    result = steering.result
    bars, curves, rule = (
        _watch(mark, "y") for mark in (steering.bars, steering.curves, steering.rule)
    )
    rule_x = _watch(steering.rule, "x")
    selection = Mock()
    ex.selection.observe(selection, names=All)
    steering.slider.value = float(result.alphas[-1])
    assert bars.call_count == 1 and rule_x.call_count == 1
    assert curves.call_count == 0 and rule.call_count == 0
    assert selection.call_count == 0  # alpha is the view's own control, not Selection state
    np.testing.assert_allclose(steering.bar_values()[1], result.probabilities[-1], rtol=1e-6)
    assert steering.rule.x[0] == pytest.approx(result.alphas[-1])


def test_pushing_a_units_decoder_direction_far_enough_changes_the_prediction(view):
    ex, steering = view
    ex.selection.unit = int(np.argmax(ex.codes.frequency))
    result = steering.result
    baseline = result.predicted[len(result.alphas) // 2]
    assert not np.allclose(result.predicted[-1], baseline)


def test_set_mode_sweeps_activation_values(view):
    ex, steering = view
    ex.selection.unit = 2
    curves = _watch(steering.curves, "y")
    steering.mode.value = "set"
    assert curves.call_count == 1
    assert steering.result.mode == "set"
    assert steering.result.alphas[0] == 0.0 and steering.slider.min == 0.0


def test_unit_cleared_hides_the_controls(view):
    ex, steering = view
    ex.selection.unit = 1
    ex.selection.unit = None
    assert steering.result is None
    assert all(child.layout.display == "none" for child in steering.children[1:])


def test_probe_sample_is_steered_when_nothing_is_selected(view):
    ex, steering = view
    ex.selection.probe_sample = 42
    ex.selection.unit = 4
    np.testing.assert_array_equal(steering.result.samples, [42])
    assert "sample 42" in steering.caption.value


def test_the_dashboard_includes_the_view_only_when_the_explorer_knows_the_model(classifier):
    model, ds, acts, sae = classifier
    with_model = sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds).dashboard()
    assert isinstance(with_model.steering, sw.SteeringView)
    assert with_model.steering in with_model.children
    without = sw.Explorer(sae, acts).dashboard()
    assert without.steering is None
    with_model.selection.unit = 3  # linked like every view
    assert with_model.steering.result.unit == 3


def test_explorer_and_view_reject_what_cannot_steer(classifier):
    model, ds, acts, sae = classifier
    with pytest.raises(ValueError, match="model and layer go together"):
        sw.Explorer(sae, acts, model=model)
    with pytest.raises(ValueError, match="need model= and layer="):
        sw.Explorer(sae, acts, inputs=ds)
    with pytest.raises(ValueError, match="one model input per sample"):
        sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds.X[:10])
    with pytest.raises(ValueError, match="needs an Explorer built with model="):
        sw.SteeringView(sw.Explorer(sae, acts))
    ex = sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds)
    with pytest.raises(ValueError, match="unit must be"):
        ex.steerer.sweep(999, [0.0], [0])
    with pytest.raises(ValueError, match="mode must be one of"):
        ex.steerer.sweep(0, [0.0], [0], mode="push")


# ------------------------------------------------------------------ a language model


class CharLM(nn.Module):
    def __init__(self, vocab=40, d=12):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.block = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids):
        return self.head(self.block(self.embed(input_ids)))


class CharTokenizer:
    alphabet = " abcdefghijklmnopqrstuvwxyz.,!?"

    def __call__(self, text, **_options):
        return {"input_ids": [self.alphabet.index(c) if c in self.alphabet else 0 for c in text]}

    def decode(self, ids):
        return "".join(self.alphabet[i % len(self.alphabet)] for i in ids)


def test_language_model_view_shows_cached_greedy_continuations():
    torch.manual_seed(0)
    lm = CharLM().eval()
    rows = torch.randn(300, 12)
    sae = sw.SAE(n_units=24, k=4, epochs=3, batch_size=64, seed=0).fit(rows, progress=False)
    ex = sw.Explorer(sae, rows.numpy(), model=lm, layer="block", tokenizer=CharTokenizer())
    view = sw.SteeringView(ex, prompt="the cat", max_new_tokens=6)
    assert view.kind == "generate"
    ex.selection.unit = 0
    view.slider.value = float(view.slider.max)
    shown = view.continuations(view.slider.value)
    assert [a for a, _ in shown] == continuation_alphas(view.slider.value)
    unedited = dict(shown)[0.0]
    with torch.no_grad():
        ids = CharTokenizer()("the cat")["input_ids"]
        for _ in range(6):
            ids.append(int(lm(torch.tensor([ids]))[0, -1].argmax()))
    assert unedited == CharTokenizer().decode(ids[7:])
    assert "α = 0" in view.texts.value and "the cat" in view.texts.value
    assert "unit 0 on the continuation" in view.texts.value
    top = view.slider.value
    pushed = ex.steerer.continuation_activation(0, top, "the cat", max_new_tokens=6)
    assert pushed > ex.steerer.continuation_activation(0, 0.0, "the cat", max_new_tokens=6)
    calls = Mock(wraps=lm.forward)
    lm.forward = calls
    view.continuations(view.slider.value)  # cached: the model does not run again
    assert calls.call_count == 0
    texts = [t for _, t in shown]
    assert len(set(texts)) > 1  # pushing the unit hard changes what the model writes


class ContextLM(CharLM):
    """CharLM with a Hugging Face config: a context of 32 positions."""

    config = type("Config", (), {"max_position_embeddings": 32})()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"alpha": "x"}, TypeError, "alpha must be a finite number; got 'x'"),  # float('x') before
        ({"alpha": None}, TypeError, "alpha must be a finite number; got None"),
        ({"alpha": float("inf")}, ValueError, "alpha must be a finite number; got inf"),
        ({"prompt": "a \ud800"}, ValueError, "prompt is not valid Unicode"),
        ({"max_new_tokens": 10**6}, ValueError, "below 32, the model's context"),  # ran on
        ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens must be an int"),
    ],
)
def test_continuation_arguments_are_named(arguments, error, message):
    torch.manual_seed(0)
    rows = torch.randn(100, 12)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=50, seed=0).fit(rows, progress=False)
    ex = sw.Explorer(sae, rows.numpy(), model=ContextLM(), layer="block", tokenizer=CharTokenizer())
    call = {"alpha": 1.0, "prompt": "the cat", "max_new_tokens": 3, **arguments}
    with pytest.raises(error, match=message):
        ex.steerer.continuation(
            0, call["alpha"], call["prompt"], max_new_tokens=call["max_new_tokens"]
        )
    # a numpy integer is an integer (it was refused as "not an int")
    assert isinstance(ex.steerer.continuation(0, 1.0, "the", max_new_tokens=np.int64(2)), str)
    with pytest.raises(TypeError, match="tokenizer must be a Hugging Face tokenizer"):
        sw.Explorer(sae, rows.numpy(), model=ContextLM(), layer="block", tokenizer="gpt2")


def test_a_refit_and_refresh_steer_the_new_sae(classifier):
    model, ds, acts, _ = classifier
    sae = sw.SAE(n_units=16, k=4, epochs=1, batch_size=128, seed=0).fit(acts.X, progress=False)
    ex = sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds)
    steering = sw.SteeringView(ex, max_samples=40)
    ex.selection.unit = 3
    old = steering.result
    sae.set_params(n_units=8, seed=1).fit(acts.X, progress=False)
    ex.refresh()
    assert ex.steerer.sae_module is sae.model_  # the refit's module, not the old one
    result = steering.result
    assert result is not old and result.unit == 3
    grid = alpha_grid(float(ex.codes.max_activation[3]), "steer")
    np.testing.assert_allclose(result.alphas, grid)
    np.testing.assert_allclose(steering.curves.y, result.probabilities.T, rtol=1e-6)
    samples, _ = steering.steered_samples()
    fresh = ex.steerer.sweep(3, grid, samples)
    np.testing.assert_allclose(result.probabilities, fresh.probabilities)


# ------------------------------------------------------------------ failures shown in the view


class Fragile(nn.Module):
    """The digits classifier, made to fail on demand (as a model out of memory would)."""

    def __init__(self, model):
        super().__init__()
        self.net = model.net
        self.broken = False

    def forward(self, x):
        if self.broken:
            raise RuntimeError("CUDA out of memory (simulated)")
        return self.net(x)


def test_a_failing_model_is_reported_in_the_view_not_raised_into_the_selection(classifier):
    model, ds, acts, sae = classifier
    fragile = Fragile(model)
    ex = sw.Explorer(sae, acts, model=fragile, layer="net.1", inputs=ds)
    steering = sw.SteeringView(ex, max_samples=20)
    assert steering.error.value == "" and steering.error.layout.display == "none"
    later = Mock()  # an observer after the view (another view) must still hear the change
    ex.selection.observe(later, names="unit")
    fragile.broken = True
    ex.selection.unit = 5  # raised RuntimeError out of the assignment before
    assert later.call_count == 1
    assert steering.result is None
    assert steering.error.layout.display is None
    assert "Could not steer unit 5" in steering.error.value
    assert "RuntimeError: CUDA out of memory (simulated)" in steering.error.value
    assert steering._output.layout.display == "none"  # no stale sweep of another unit
    steering.mode.value = "set"  # a control moved in the browser: still shown, not raised
    assert "Could not steer unit 5" in steering.error.value
    fragile.broken = False
    ex.selection.unit = 6
    assert steering.result is not None and steering.result.unit == 6
    assert steering.error.value == "" and steering.error.layout.display == "none"
    assert steering._output.layout.display is None
    steering.close()


def test_a_continuation_that_cannot_run_is_reported_in_the_view():
    torch.manual_seed(0)
    rows = torch.randn(100, 12)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=50, seed=0).fit(rows, progress=False)
    ex = sw.Explorer(sae, rows.numpy(), model=ContextLM(), layer="block", tokenizer=CharTokenizer())
    view = sw.SteeringView(ex, prompt="the cat", max_new_tokens=40)  # context: 32 positions
    ex.selection.unit = 0  # raised ValueError out of the assignment before
    assert "Could not steer unit 0" in view.error.value
    assert "max_new_tokens" in view.error.value and "32" in view.error.value
    assert view.texts.value == ""
    view.slider.set_state({"value": float(view.slider.max)})  # as the browser's comm sets it
    assert "max_new_tokens" in view.error.value
    view.close()
    view = sw.SteeringView(ex, prompt="the cat", max_new_tokens=4)
    assert view.error.value == "" and "α = 0" in view.texts.value
    view.close()


def test_steered_samples_count_one_sample_in_the_singular(view, classifier):
    ex, steering = view
    ex.selection.samples = [3]
    assert steering.steered_samples()[1] == "1 selected sample"
    ex.selection.samples = [3, 4]
    assert steering.steered_samples()[1] == "2 selected samples"
    one = sw.SteeringView(ex, max_samples=1)
    ex.selection.samples = []
    assert one.steered_samples()[1] == "1 random sample"
