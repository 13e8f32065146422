"""Splicing and steering on a real causal LM, SmolLM2-135M (marked slow: loads the model)."""

from __future__ import annotations

import html

import pytest
import torch
import torch.nn.functional as F

import sae_widgets as sw

pytestmark = pytest.mark.slow

LAYER = "model.layers.15"
TEXTS = [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "def add(a, b):\n    return a + b",
    "She walked to the market and bought three apples.",
]


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = sw.models.smollm2()
    acts = sw.collect_activations(model, LAYER, data=TEXTS, tokenizer=tokenizer)
    # 40 epochs over these ~37 tokens: with 5 the SAE was undertrained and whether it beat zero
    # ablation depended on the seed (FVU 0.02-0.29 over seeds 0-2; 0.0001-0.003 with 40)
    sae = sw.SAE(n_units=64, k=8, epochs=40, batch_size=16, seed=0).fit(acts.X, progress=False)
    return model, tokenizer, acts, sae


def test_keeping_the_error_reproduces_a_transformer_exactly(smollm2):
    model, tokenizer, _acts, sae = smollm2
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        original = model(ids).logits
        with sw.Intervention(model, LAYER, sae, steer={3: 0.0}):
            unchanged = model(ids).logits
        with sw.Intervention(model, LAYER, sae):
            spliced = model(ids).logits
    assert torch.equal(unchanged, original)
    assert not torch.allclose(spliced, original)


def test_next_token_figures_match_the_models_own_loss(smollm2):
    model, tokenizer, _acts, sae = smollm2
    result = sw.metrics.evaluate(sae, TEXTS, model=model, layer=LAYER, tokenizer=tokenizer)
    total, count = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            logits = model(ids).logits[0, :-1].double()
            total += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    assert result["ce_original"] == pytest.approx(total / count, rel=1e-4)
    assert result["ce_zero_ablated"] > result["ce_spliced"] > result["ce_original"]
    assert result["kl_spliced"] > 0 and 0 < result["kl_div_score"] < 1


def test_steering_changes_the_greedy_continuation(smollm2):
    model, tokenizer, acts, sae = smollm2
    ex = sw.Explorer(sae, acts, model=model, layer=LAYER, tokenizer=tokenizer)
    prompt = "My favourite food is"
    with torch.no_grad():
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        plain = model.generate(ids, max_new_tokens=8, do_sample=False)
    expected = tokenizer.decode(plain[0, ids.shape[1] :].tolist())
    unit = int(ex.codes.frequency.argmax())
    assert ex.steerer.continuation(unit, 0.0, prompt, max_new_tokens=8) == expected
    pushed = ex.steerer.continuation(unit, 200.0, prompt, max_new_tokens=8)
    assert pushed != expected
    view = sw.SteeringView(ex, prompt=prompt, max_new_tokens=8)
    ex.selection.unit = unit
    assert html.escape(expected) in view.texts.value  # slider at 0: the unedited model
