"""SmolLM2-135M end to end (marked slow: the first load dequantises the GGUF, ~30 s, and
caches the model under the sae_widgets cache folder; later loads take a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.data import models

pytestmark = pytest.mark.slow

TEXTS = ["The capital of France is Paris.", "def add(a, b):\n    return a + b  # <script>"]


@pytest.fixture(scope="module")
def smollm2() -> models.LanguageModel:
    return sw.models.smollm2()


def test_loader_caches_a_complete_dequantised_copy(smollm2) -> None:
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert tokenizer.is_fast
    folder = models.cache_dir() / "smollm2-135m-instruct"
    assert (folder / "sae_widgets_source.json").is_file()
    assert not list(folder.parent.glob("smollm2-135m-instruct.tmp-*"))  # nothing half-written
    again = sw.load_language_model("SmolLM2-135M")  # reads the cached copy
    for name, tensor in model.state_dict().items():
        assert np.array_equal(tensor.numpy(), again.model.state_dict()[name].numpy()), name


def test_residual_rows_and_logit_effects_equal_a_brute_force_product(smollm2) -> None:
    model, tokenizer = smollm2
    ds = sw.collect_activations(model, "model.layers.15", data=TEXTS, tokenizer=tokenizer)
    n_tokens = sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)  # SmolLM2 adds no BOS
    assert ds.X.shape == (n_tokens, 576)
    documents = ds.tokens.documents
    assert documents.unembedding.shape == (49152, 576)
    sae = sw.SAE(n_units=16, k=4, epochs=1, batch_size=8, seed=0).fit(ds.X, progress=False)
    ex = sw.Explorer(sae, ds)
    W_U = model.lm_head.weight.detach().numpy().T  # (d, vocab)
    gamma = model.model.norm.weight.detach().numpy()
    for unit in (0, 7):
        found = ex.logit_effects(unit, top=5)
        effects = (ex.unit_direction(unit).astype(np.float64) * gamma) @ W_U
        order = np.argsort(-effects)
        np.testing.assert_array_equal(found.promoted_ids, order[:5])
        np.testing.assert_array_equal(found.suppressed_ids, order[::-1][:5])
        np.testing.assert_allclose(found.promoted_values, effects[order[:5]], rtol=1e-4)
    text = ds.tokens.vocab_text([tokenizer.convert_tokens_to_ids("Ġthe")])
    assert text == [" the"]  # the byte-level BPE marker is gone
