"""Splicing an SAE into a model: exactness of the hook, edits, and that the hook always goes."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sae_widgets as sw
from sae_widgets.sae.splice import capture_output, replace_output


@pytest.fixture(scope="module")
def digits_setup():
    """The digits MLP, its net.1 activations and a small TopK SAE trained on them."""
    torch.set_num_threads(1)
    model = sw.datasets.digits_mlp(steps=150)
    ds = sw.datasets.digits()
    acts = sw.collect_activations(model, "net.1", ds)
    sae = sw.SAE(n_units=64, k=8, epochs=8, batch_size=128, seed=0).fit(acts.X, progress=False)
    return model, ds, acts, sae


def _inputs(ds):
    return torch.from_numpy(ds.X)


def _identity_sae(d):
    cfg = sw.SAEConfig(d_in=d, n_units=d, activation="relu")
    eye = torch.eye(d)
    module = sw.SparseAutoencoder.from_weights(cfg, eye, torch.zeros(d), eye, torch.zeros(d))
    return sw.SAE.from_module(module)


def test_keeping_the_error_with_no_change_reproduces_the_model_exactly(digits_setup):
    model, ds, _acts, sae = digits_setup
    x = _inputs(ds)
    with torch.no_grad():
        original = model(x)
        with sw.Intervention(model, "net.1", sae, add={3: 0.0}):
            unchanged_add = model(x)
        with sw.Intervention(model, "net.1", sae, steer={5: 0.0}):
            unchanged_steer = model(x)
    assert torch.equal(unchanged_add, original)
    assert torch.equal(unchanged_steer, original)


def test_an_identity_sae_spliced_in_reproduces_the_outputs(digits_setup):
    model, ds, _acts, _sae = digits_setup
    x = _inputs(ds)
    identity = _identity_sae(128)
    with torch.no_grad():
        original = model(x)
        with sw.Intervention(model, "net.1", identity) as iv:
            assert iv.active and not iv.keep_error
            spliced = model(x)
    torch.testing.assert_close(spliced, original, rtol=1e-5, atol=1e-5)


def test_the_bare_splice_is_the_reconstruction_run_through_the_rest(digits_setup):
    model, ds, _acts, sae = digits_setup
    x = _inputs(ds)
    with torch.no_grad():
        hidden = model.net[:2](x)
        x_hat = torch.from_numpy(sae.inverse_transform(sae.transform(hidden.numpy())))
        expected = model.net[2:](x_hat)
        with sw.Intervention(model, "net.1", sae):
            spliced = model(x)
    torch.testing.assert_close(spliced, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(spliced, model(x))


def test_the_splice_follows_weights_changed_after_it_was_made(digits_setup):
    model, ds, acts, _sae = digits_setup
    x = _inputs(ds)[:64]
    other = sw.SAE(n_units=64, k=8, epochs=1, batch_size=128, seed=3)
    other.fit(acts.X, progress=False)
    splice = sw.Intervention(model, "net.1", other)
    module = other.model_

    def expected():
        with torch.no_grad():
            x_hat = module.decode(module.encode(model.net[:2](x)))
            return model.net[2:](x_hat)

    with torch.no_grad():
        with splice:
            first = model(x)
        torch.testing.assert_close(first, expected(), rtol=1e-5, atol=1e-5)
        module.W_dec.mul_(2.0)  # in place: the cached weights must follow
        module.b_enc.add_(0.1)
        with splice:
            second = model(x)
        torch.testing.assert_close(second, expected(), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(first, second)
        module.W_enc = nn.Parameter(module.W_enc.detach().flip(1).clone())  # replaced
        with splice:
            third = model(x)
        torch.testing.assert_close(third, expected(), rtol=1e-5, atol=1e-5)


def test_ablating_every_unit_leaves_the_reconstruction_error_only(digits_setup):
    model, ds, _acts, sae = digits_setup
    x = _inputs(ds)
    all_off = {u: 0.0 for u in range(sae.n_units)}
    with torch.no_grad():
        hidden = model.net[:2](x)
        x_hat = torch.from_numpy(sae.inverse_transform(sae.transform(hidden.numpy())))
        error = hidden - x_hat
        b_dec = sae.model_.b_dec  # what the SAE outputs with every unit at 0
        expected = model.net[2:](error + b_dec)
        with sw.Intervention(model, "net.1", sae, set=all_off):
            ablated = model(x)
    torch.testing.assert_close(ablated, expected, rtol=1e-4, atol=1e-5)


def test_set_add_clamp_and_steer_edit_the_codes_as_documented(digits_setup):
    model, _ds, acts, sae = digits_setup
    rows = torch.from_numpy(acts.X[:50])
    codes = torch.from_numpy(sae.transform(acts.X[:50]))
    W = sae.model_.W_dec.detach()
    u = int(np.argmax((acts.X[:50] @ W.numpy().T).std(0)))

    def edited(**edit):
        return sw.Intervention(model, "net.1", sae, **edit).edit_rows(rows)

    torch.testing.assert_close(
        edited(set={u: 2.0}), rows + (2.0 - codes[:, u : u + 1]) * W[u], rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(edited(add={u: 1.5}), rows + 1.5 * W[u], rtol=1e-5, atol=1e-5)
    clipped = codes[:, u : u + 1].clamp(0.1, 0.3)
    torch.testing.assert_close(
        edited(clamp={u: (0.1, 0.3)}),
        rows + (clipped - codes[:, u : u + 1]) * W[u],
        rtol=1e-5,
        atol=1e-5,
    )
    torch.testing.assert_close(edited(steer={u: -3.0}), rows - 3.0 * W[u])
    with_recon = sw.Intervention(model, "net.1", sae, steer={u: 1.0}, keep_error=False)
    x_hat = torch.from_numpy(sae.inverse_transform(codes.numpy()))
    torch.testing.assert_close(with_recon.edit_rows(rows), x_hat + W[u], rtol=1e-5, atol=1e-5)


def test_zero_and_mean_ablation_replace_the_layer(digits_setup):
    model, ds, acts, _sae = digits_setup
    x = _inputs(ds)
    mean = acts.X.mean(0)
    with torch.no_grad():
        with sw.Intervention(model, "net.1", ablate="zero"):
            zeroed = model(x)
        with sw.Intervention(model, model.net[1], ablate="mean", mean=mean):
            meaned = model(x)
        zero_expected = model.net[2:](torch.zeros(1, 128)).expand(len(x), -1)
        mean_expected = model.net[2:](torch.from_numpy(mean)[None]).expand(len(x), -1)
    torch.testing.assert_close(zeroed, zero_expected)
    torch.testing.assert_close(meaned, mean_expected)


class _Boom(nn.Module):
    def __init__(self, error: type[BaseException]) -> None:
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error("inside the model")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_hook_is_removed_when_the_model_raises(digits_setup, error):
    model, ds, _acts, sae = digits_setup
    failing = nn.Sequential(model.net[:2], _Boom(error))
    layer = failing[0][1]
    with pytest.raises(error, match="inside the model"):
        with sw.Intervention(failing, "0.1", sae, set={0: 5.0}) as iv:
            failing(_inputs(ds)[:4])
    assert not iv.active
    assert len(layer._forward_hooks) == 0
    with pytest.raises(error):
        with capture_output(failing, "0.1"):
            failing(_inputs(ds)[:4])
    assert len(layer._forward_hooks) == 0


def test_evaluate_cleans_up_after_an_interrupt(digits_setup):
    model, ds, _acts, sae = digits_setup
    calls = {"n": 0}

    def interrupt_on_third(_module, _inputs, _output):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    handle = model.net[4].register_forward_hook(interrupt_on_third)
    try:
        with pytest.raises(KeyboardInterrupt):
            sw.metrics.evaluate(sae, ds, model=model, layer="net.1")
    finally:
        handle.remove()
    assert len(model.net[1]._forward_hooks) == 0
    assert not model.training


def test_tuple_outputs_replace_only_the_hidden_states():
    class Block(nn.Module):
        def forward(self, x):
            return x * 2.0, "attention"

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.seen = None

        def forward(self, x):
            hidden, extra = self.block(x)
            self.seen = extra
            return hidden.sum(-1)

    model = Model()
    x = torch.randn(2, 5, 4)  # (batch, tokens, d): the SAE reads one row per token
    with replace_output(model, "block", lambda rows: torch.ones_like(rows), width=4):
        out = model(x)
    assert model.seen == "attention"
    torch.testing.assert_close(out, torch.full((2, 5), 4.0))
    with capture_output(model, "block", width=4) as captured:
        model(x)
    Pair = collections.namedtuple("Pair", ["hidden", "attention"])
    model.block.forward = lambda x: Pair(x * 2.0, "attention")
    with replace_output(model, "block", lambda rows: rows + 1.0, width=4):
        out = model(x)
    assert model.seen == "attention"
    torch.testing.assert_close(out, (x * 2 + 1).sum(-1))
    assert captured[0].shape == (10, 4)
    torch.testing.assert_close(captured[0], (x * 2).reshape(10, 4))


def test_bad_arguments_name_what_was_expected(digits_setup):
    model, _ds, _acts, sae = digits_setup
    with pytest.raises(ValueError, match=r"layer 'net\.9' not found"):
        sw.Intervention(model, "net.9", sae)
    with pytest.raises(ValueError, match="sae is required"):
        sw.Intervention(model, "net.1")
    with pytest.raises(ValueError, match="needs mean="):
        sw.Intervention(model, "net.1", ablate="mean")
    with pytest.raises(ValueError, match="ablate must be one of"):
        sw.Intervention(model, "net.1", ablate="noise")
    with pytest.raises(ValueError, match="unit 64 out of range"):
        sw.Intervention(model, "net.1", sae, set={64: 1.0})
    with pytest.raises(TypeError, match="set\\[2\\] must be a number"):
        sw.Intervention(model, "net.1", sae, set={2: "high"})
    with pytest.raises(TypeError, match="clamp\\[2\\] must be a \\(low, high\\) pair"):
        sw.Intervention(model, "net.1", sae, clamp={2: 1.0})
    with pytest.raises(ValueError, match="drop"):
        sw.Intervention(model, "net.1", sae, ablate="zero", set={1: 0.0})
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        sw.Intervention("model", "net.1", sae)
    iv = sw.Intervention(model, "net.1", sae)
    with iv, pytest.raises(RuntimeError, match="already active"):
        iv.__enter__()
    assert len(model.net[1]._forward_hooks) == 0
    wrong_width = sw.Intervention(model, "net.3", sae)  # net.3 has 64 outputs, the SAE 128
    with wrong_width, pytest.raises(ValueError, match="width 128"):
        model(torch.zeros(2, 64))


# ------------------------------------------------------------------ spliced metrics


def _brute_force(model, sae, X, y):
    with torch.no_grad():
        hidden = model.net[:2](X)
        x_hat = torch.from_numpy(sae.inverse_transform(sae.transform(hidden.numpy())))
        suffix = model.net[2:]
        logits = {
            "original": model(X),
            "spliced": suffix(x_hat),
            "zero_ablated": suffix(torch.zeros_like(hidden)),
            "mean_ablated": suffix(hidden.double().mean(0).float().expand_as(hidden)),
        }
    ce = {k: float(F.cross_entropy(v.double(), y)) for k, v in logits.items()}
    acc = {k: float((v.argmax(1) == y).double().mean()) for k, v in logits.items()}
    ref = F.log_softmax(logits["original"].double(), -1)
    kl = float(
        F.kl_div(
            F.log_softmax(logits["spliced"].double(), -1),
            ref,
            log_target=True,
            reduction="batchmean",
        )
    )
    return ce, acc, kl, hidden


def test_loss_recovered_equals_a_brute_force_computation(digits_setup):
    model, ds, _acts, sae = digits_setup
    X, y = _inputs(ds), torch.from_numpy(ds.labels).long()
    ce, acc, kl, hidden = _brute_force(model, sae, X, y)
    result = sw.metrics.evaluate(sae, ds, model=model, layer="net.1", batch_size=100)
    for name in ce:
        assert result[f"ce_{name}"] == pytest.approx(ce[name], rel=1e-5)
        assert result[f"accuracy_{name}"] == pytest.approx(acc[name], abs=1e-9)
    zero, mean = ce["zero_ablated"], ce["mean_ablated"]
    expected = (zero - ce["spliced"]) / (zero - ce["original"])
    assert result["loss_recovered"] == pytest.approx(expected, rel=1e-5)
    expected_mean = (mean - ce["spliced"]) / (mean - ce["original"])
    assert result["loss_recovered_mean_ablation"] == pytest.approx(expected_mean, rel=1e-5)
    assert result["kl_spliced"] == pytest.approx(kl, rel=1e-4)
    # the reconstruction figures are those of the layer's activations
    plain = sw.metrics.evaluate(sae, hidden.numpy())
    for name in ("fvu", "mse", "l0", "dead_fraction"):
        assert result[name] == pytest.approx(plain[name], rel=1e-5)
    assert 0.5 < result["loss_recovered"] <= 1.05
    assert not model.training
    assert len(model.net[1]._forward_hooks) == 0


def test_an_identity_sae_recovers_all_the_loss(digits_setup):
    model, ds, _acts, _sae = digits_setup
    result = sw.metrics.evaluate(_identity_sae(128), ds[:300], model=model, layer="net.1")
    assert result["loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert result["kl_spliced"] == pytest.approx(0.0, abs=1e-9)
    assert result["kl_div_score"] == pytest.approx(1.0, abs=1e-6)


def test_unlabelled_samples_are_skipped_and_labels_can_be_given(digits_setup):
    model, ds, _acts, sae = digits_setup
    labels = ds.labels.copy()
    labels[::2] = -1
    half = sw.metrics.evaluate(sae, ds.X, model=model, layer="net.1", labels=labels)
    X, y = _inputs(ds)[1::2], torch.from_numpy(ds.labels[1::2]).long()
    with torch.no_grad():
        expected = float(F.cross_entropy(model(X).double(), y))
    assert half["ce_original"] == pytest.approx(expected, rel=1e-6)


def test_spliced_evaluation_rejects_bad_input(digits_setup):
    model, ds, _acts, sae = digits_setup
    with pytest.raises(ValueError, match="model and layer go together"):
        sw.metrics.evaluate(sae, ds, model=model)
    with pytest.raises(ValueError, match="labels"):
        sw.metrics.evaluate(sae, ds.X, model=model, layer="net.1")
    with pytest.raises(ValueError, match="labels must be integers"):
        sw.metrics.evaluate(sae, ds.X, model=model, layer="net.1", labels=ds.labels[:5])
    with pytest.raises(ValueError, match="task must be one of"):
        sw.metrics.evaluate(sae, ds, model=model, layer="net.1", task="regress")
    with pytest.raises(TypeError, match="apply only with model="):
        sw.metrics.evaluate(sae, ds.X, labels=ds.labels)
    with pytest.raises(ValueError, match="skip_first applies to language models"):
        sw.metrics.evaluate(sae, ds, model=model, layer="net.1", skip_first=1)
    # the layer's activations instead of the model's inputs: the model's own shape error,
    # explained, and the hook gone
    with pytest.raises(ValueError, match=r"model raised RuntimeError in the original pass.*inputs"):
        sw.metrics.evaluate(sae, _acts, model=model, layer="net.1")
    assert not model.net[1]._forward_hooks
    # any other error of the model's own escaped raw (a KeyError from evaluate)
    failing = nn.Sequential(model.net[:2], _Boom(KeyError))
    with pytest.raises(ValueError, match="model raised KeyError in the original pass") as info:
        sw.metrics.evaluate(sae, ds, model=failing, layer="0.1")
    assert isinstance(info.value.__cause__, KeyError)
    assert not failing[0][1]._forward_hooks


# ------------------------------------------------------------------ a language model


class TinyLM(nn.Module):
    """Embedding -> one block (returns a tuple, like a transformer block) -> vocabulary."""

    def __init__(self, vocab=32, d=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.block = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids, attention_mask=None):
        hidden = self.embed(input_ids)
        hidden = self.block(hidden)
        return self.head(hidden)


class CharTokenizer:
    """What the splice needs of a Hugging Face tokenizer: call(text) -> {"input_ids": [...]}."""

    def __call__(self, text, truncation=True, max_length=None):
        ids = [ord(c) % 32 for c in text]
        return {"input_ids": ids[:max_length] if truncation and max_length else ids}


def test_language_model_figures_match_a_brute_force_next_token_loss():
    torch.manual_seed(0)
    lm = TinyLM().eval()
    texts = ["the cat sat on the mat", "a dog", "sparse autoencoders read models"]
    with torch.no_grad():
        rows = torch.cat(
            [lm.block(lm.embed(torch.tensor(CharTokenizer()(t)["input_ids"]))) for t in texts]
        )
    sae = sw.SAE(n_units=16, k=3, epochs=20, batch_size=16, seed=0).fit(
        rows.numpy(), progress=False
    )
    result = sw.metrics.evaluate(
        sae, texts, model=lm, layer="block", tokenizer=CharTokenizer(), batch_size=2
    )
    ce_sum, n = 0.0, 0
    spliced_sum = 0.0
    module = sae.model_
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor(CharTokenizer()(text)["input_ids"])[None]
            logits = lm(ids)[0, :-1].double()
            ce_sum += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            hidden = lm.block(lm.embed(ids))[0]
            spliced = lm.head(module.decode(module.encode(hidden)))[:-1].double()
            spliced_sum += float(F.cross_entropy(spliced, ids[0, 1:], reduction="sum"))
            n += ids.shape[1] - 1
    assert result["ce_original"] == pytest.approx(ce_sum / n, rel=1e-6)
    assert result["ce_spliced"] == pytest.approx(spliced_sum / n, rel=1e-5)
    assert result["kl_spliced"] > 0
    plain = sw.metrics.evaluate(sae, rows.numpy())
    assert result["fvu"] == pytest.approx(plain["fvu"], rel=1e-5)  # padding rows left out


def test_skip_first_leaves_the_first_positions_alone_in_every_pass():
    torch.manual_seed(0)
    lm, tok = TinyLM().eval(), CharTokenizer()
    texts = ["the cat sat on the mat", "a dog", "sparse autoencoders read models"]
    sae = sw.SAE(n_units=16, k=3, epochs=5, batch_size=16, seed=0)
    sae.fit(torch.randn(256, 8), progress=False)
    result = sw.metrics.evaluate(
        sae, texts, model=lm, layer="block", tokenizer=tok, batch_size=2, skip_first=2
    )
    module = sae.model_
    sums = {"spliced": 0.0, "zero_ablated": 0.0}
    later_rows, n = [], 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor(tok(text)["input_ids"])[None]
            hidden = lm.block(lm.embed(ids))[0]
            later_rows.append(hidden[2:])
            for name, new in (
                ("spliced", module.decode(module.encode(hidden))),
                ("zero_ablated", torch.zeros_like(hidden)),
            ):
                new[:2] = hidden[:2]  # the first two positions keep the layer's own output
                logits = lm.head(new)[:-1].double()
                sums[name] += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            n += ids.shape[1] - 1
    assert result["ce_spliced"] == pytest.approx(sums["spliced"] / n, rel=1e-5)
    assert result["ce_zero_ablated"] == pytest.approx(sums["zero_ablated"] / n, rel=1e-5)
    plain = sw.metrics.evaluate(sae, torch.cat(later_rows).numpy())
    assert result["fvu"] == pytest.approx(plain["fvu"], rel=1e-5)  # skipped rows left out
    for bad, error in ((-1, ValueError), (1.5, ValueError)):
        with pytest.raises(error, match="skip_first"):
            sw.metrics.evaluate(sae, texts, model=lm, layer="block", tokenizer=tok, skip_first=bad)


def test_language_model_token_arrays_and_their_errors():
    torch.manual_seed(0)
    lm = TinyLM().eval()
    ids = torch.randint(0, 32, (4, 6))
    sae = sw.SAE(n_units=16, k=3, epochs=2, batch_size=8, seed=0)
    sae.fit(torch.randn(64, 8), progress=False)
    result = sw.metrics.evaluate(sae, ids.numpy(), model=lm, layer="block")
    assert np.isfinite(result["loss_recovered"])
    with pytest.raises(ValueError, match="tokenizer is required"):
        sw.metrics.evaluate(sae, ["some text"], model=lm, layer="block")
    with pytest.raises(ValueError, match="n_tokens >= 2"):
        sw.metrics.evaluate(sae, ids[:, :1].numpy(), model=lm, layer="block", task="next_token")


class ConfiguredLM(TinyLM):
    """TinyLM with what a Hugging Face model tells: its context and its input embedding."""

    config = type("Config", (), {"max_position_embeddings": 16})()

    def get_input_embeddings(self):
        return self.embed


def test_a_token_dataset_is_scored_on_its_documents_with_its_tokenizer():
    from sae_widgets.data.tokens import Documents, TokenRows

    torch.manual_seed(0)
    lm, tok = TinyLM().eval(), CharTokenizer()
    texts = ["the cat sat on the mat", "a dog", "sparse autoencoders read models"]
    ids = [np.asarray(tok(t)["input_ids"], np.int64) for t in texts]
    offsets = [np.stack([np.arange(len(t)), np.arange(1, len(t) + 1)], 1) for t in texts]
    documents = Documents(texts=texts, token_ids=ids, offsets=offsets, tokenizer=tok)
    doc = np.concatenate([np.full(len(i), d) for d, i in enumerate(ids)])
    pos = np.concatenate([np.arange(len(i)) for i in ids])
    tokens = TokenRows(doc, pos, np.concatenate(ids), documents)
    with torch.no_grad():
        rows = torch.cat([lm.block(lm.embed(torch.from_numpy(i))) for i in ids]).numpy()
    acts = sw.Dataset(rows, tokens=tokens)  # what collect_activations(..., tokenizer=) gives
    sae = sw.SAE(n_units=16, k=3, epochs=2, batch_size=16, seed=0).fit(acts, progress=False)
    # it was read as a classifier's inputs: "labels: a classifier is scored against labels"
    from_acts = sw.metrics.evaluate(sae, acts, model=lm, layer="block", batch_size=2)
    from_texts = sw.metrics.evaluate(sae, texts, model=lm, layer="block", tokenizer=tok)
    assert from_acts == pytest.approx(from_texts, rel=1e-6)
    assert "loss_recovered" in from_acts


@pytest.mark.parametrize(
    ("data", "options", "error", "message"),
    [
        (["a text"], {"max_length": -1}, ValueError, "max_length must be >= 2"),
        (["a text"], {"max_length": "64"}, TypeError, "max_length must be an int"),
        (["a text"], {"max_length": 1000}, ValueError, "at most 16, the model's context"),
        (["a text"], {"tokenizer": "gpt2"}, TypeError, "tokenizer must be a Hugging Face"),
        (["ok", "a \ud800 b"], {}, ValueError, r"data\[1\] is not valid Unicode"),
        (np.array([[1, 2, 40]]), {"tokenizer": None}, ValueError, "token id 40 is beyond"),
        (np.array([[1, 2, -5]]), {"tokenizer": None}, ValueError, "token id -5 is negative"),
        (np.ones((1, 20), int), {"tokenizer": None}, ValueError, "at most 16"),
        # float rows went down the classifier path: "labels: a classifier is scored ..."
        (np.ones((4, 8), np.float32), {}, ValueError, "data: ConfiguredLM is a language model"),
    ],
)
def test_language_model_inputs_that_do_not_fit_are_named(data, options, error, message):
    lm = ConfiguredLM().eval()
    sae = sw.SAE(n_units=16, k=3, epochs=1, batch_size=8, seed=0)
    sae.fit(torch.randn(64, 8), progress=False)
    options = {"tokenizer": CharTokenizer(), **options}
    with pytest.raises(error, match=message):
        sw.metrics.evaluate(sae, data, model=lm, layer="block", **options)


@pytest.mark.parametrize("activation", ["topk", "relu", "batchtopk", "jumprelu"])
def test_the_fast_reconstruction_equals_decode_of_encode(activation):
    from sae_widgets.sae.splice import reconstruct

    torch.manual_seed(0)
    X = torch.randn(2600, 12)  # over 1.5 x Reconstruction.CHUNK_ROWS: the chunked path too
    sae = sw.SAE(n_units=30, activation=activation, epochs=2, batch_size=256, seed=0)
    sae.fit(X, progress=False)
    module = sae.model_
    with torch.no_grad():
        torch.testing.assert_close(
            reconstruct(module, X), module.decode(module.encode(X)), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            reconstruct(module, X[:50]), module.decode(module.encode(X[:50])), rtol=1e-5, atol=1e-5
        )


# ------------------------------------------------------------------ per-position logits


def _tagger_setup():
    """A per-token classifier over sequences of vectors: (n, T, 4) -> logits (n, T, 3)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    inputs = torch.randn(20, 5, 4)
    with torch.no_grad():
        hidden = model[:2](inputs)
    sae = sw.SAE(n_units=12, k=3, epochs=3, batch_size=25, seed=0)
    sae.fit(hidden.reshape(-1, 8).numpy(), progress=False)
    return model, inputs, hidden, sae


def test_per_position_logits_are_scored_per_position_against_per_position_labels():
    model, inputs, hidden, sae = _tagger_setup()
    labels = torch.randint(0, 3, (20, 5))
    labels[::3, -1] = -1  # unscored positions
    result = sw.metrics.evaluate(sae, inputs.numpy(), model=model, layer="1", labels=labels)
    keep = labels.reshape(-1) >= 0
    module = sae.model_
    with torch.no_grad():
        original = model(inputs).reshape(-1, 3)[keep].double()
        rows = hidden.reshape(-1, 8)
        spliced = model[2](module.decode(module.encode(rows)))[keep].double()
    targets = labels.reshape(-1)[keep]
    assert result["ce_original"] == pytest.approx(float(F.cross_entropy(original, targets)))
    assert result["ce_spliced"] == pytest.approx(float(F.cross_entropy(spliced, targets)))
    accuracy = float((original.argmax(-1) == targets).double().mean())
    assert result["accuracy_original"] == pytest.approx(accuracy)
    plain = sw.metrics.evaluate(sae, hidden.reshape(-1, 8).numpy())
    assert result["fvu"] == pytest.approx(plain["fvu"], rel=1e-5)


def test_per_position_logits_against_one_label_per_sample_are_refused():
    # the (n, 5, 3) logits were read as 15 "classes" of a flat classifier: a quiet wrong figure
    model, inputs, _hidden, sae = _tagger_setup()
    labels = np.zeros(20, np.int64)
    with pytest.raises(ValueError, match=r"logits of shape \(20, 5, 3\) \(batch, tokens, vocab\)"):
        sw.metrics.evaluate(sae, inputs.numpy(), model=model, layer="1", labels=labels)
    with pytest.raises(ValueError, match=r"labels of shape \(n_samples, 5\)"):
        sw.metrics.evaluate(sae, inputs.numpy(), model=model, layer="1", labels=labels)
    with pytest.raises(ValueError, match=r"labels of shape \(n_samples, 4\) give a class per"):
        sw.metrics.evaluate(
            sae, inputs.numpy(), model=model, layer="1", labels=np.zeros((20, 4), np.int64)
        )
    with pytest.raises(ValueError, match=r"labels must be integers, one per sample \(20\)"):
        sw.metrics.evaluate(
            sae, inputs.numpy(), model=model, layer="1", labels=np.zeros((20, 5, 1), np.int64)
        )


def test_a_language_model_run_as_a_classifier_is_pointed_to_its_token_ids():
    torch.manual_seed(0)
    lm = TinyLM().eval()
    ids = torch.randint(0, 32, (4, 6))
    sae = sw.SAE(n_units=16, k=3, epochs=2, batch_size=8, seed=0)
    sae.fit(torch.randn(64, 8), progress=False)
    as_rows = {"model": lm, "layer": "block", "input_fn": lambda x: x.long()}
    with pytest.raises(ValueError, match=r"\(4, 6, 32\) \(batch, tokens, vocab\).*token ids"):
        sw.metrics.evaluate(sae, ids.float().numpy(), labels=np.zeros(4, np.int64), **as_rows)
    # a classifier's (b, C) logits against per-position labels: named too
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"logits of shape \(batch, 2, n_classes\)"):
        sw.metrics.evaluate(
            sae, np.ones((4, 8), np.float32), model=model, layer="1", labels=np.zeros((4, 2), int)
        )
    # labels given with token ids were silently ignored
    with pytest.raises(ValueError, match="labels: a language model is scored on each next token"):
        sw.metrics.evaluate(sae, ids.numpy(), model=lm, layer="block", labels=np.zeros(4, int))
