"""Spliced-model figures: how much of the model's loss survives when the SAE replaces a layer.

`spliced_metrics(sae, data, model, layer)` runs the model over `data` in batches four ways:
original, with the layer's output replaced by the SAE reconstruction, with the layer
zero-ablated and with it mean-ablated (the layer's mean output over `data`), and reports

- ce_original / ce_spliced / ce_zero_ablated / ce_mean_ablated: mean cross-entropy (nats);
  for a classifier against `labels` (per sample, or per position for (batch, T, C)
  logits), for a language model of each next token;
- accuracy_* the same four ways (a language model: next-token top-1);
- loss_recovered = (ce_zero_ablated - ce_spliced) / (ce_zero_ablated - ce_original): the
  headline, zero ablation as in SAELens' `ce_loss_score` (which SAEBench's core evaluation
  reports); loss_recovered_mean_ablation: the same against mean ablation, a stricter
  baseline (mean ablation usually hurts less, so the SAE must do more to recover);
- kl_spliced, kl_zero_ablated: mean KL(original || spliced) of the output distribution
  (per sample, or per next token), and kl_div_score = 1 - kl_spliced / kl_zero_ablated
  (SAELens' kl_div_score).

The model runs in eval mode under no_grad; modes are restored and every hook removed after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sae_widgets.language_inputs import (
    check_max_length,
    context_length,
    holds_texts,
    listed,
    text_list,
    vocab_size,
)
from sae_widgets.sae.scored_batches import (
    TASKS,
    ScoredBatch,
    check_targets,
    classifier_batches,
    language_model_batches,
    pick_task,
)
from sae_widgets.sae.splice import replace_output, resolve_layer, sae_module
from sae_widgets.sae.token_batches import texts_of_tokens

__all__ = ["TASKS", "model_logits", "spliced_metrics"]


class ModelInputError(ValueError):
    """The model failed on the evaluation data: most often data that is not its input."""


def model_logits(output: Any) -> Tensor:
    """The logits in a model's output: a tensor, `.logits`, or a tuple's first element."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"model returned {type(output).__name__}; expected logits (a tensor)")


def _as_is(x: Tensor) -> Tensor:
    return x


@dataclass
class _Scores:
    ce: float = 0.0
    correct: float = 0.0
    kl: float = 0.0
    n: int = 0

    def add(self, logits: Tensor, targets: Tensor, reference: Tensor | None) -> None:
        logp = F.log_softmax(logits.double(), dim=-1)
        self.ce += float(F.nll_loss(logp, targets, reduction="sum"))
        self.correct += float((logits.argmax(-1) == targets).sum())
        if reference is not None:
            self.kl += float(F.kl_div(logp, reference, log_target=True, reduction="sum"))
        self.n += int(targets.shape[0])


def _recovered(ablated: float, spliced: float, original: float) -> float:
    gap = ablated - original
    return (ablated - spliced) / gap if gap != 0 else float("nan")


@torch.no_grad()
def spliced_metrics(
    sae: Any,
    data: Any,
    model: nn.Module,
    layer: str | nn.Module,
    *,
    labels: Any = None,
    input_fn: Callable[[Tensor], Any] | None = None,
    tokenizer: Any = None,
    task: str = "auto",
    batch_size: int = 64,
    max_length: int | None = None,
    skip_first: int = 0,
    on_rows: Callable[[Tensor, Tensor, Tensor], None] | None = None,
) -> dict[str, float]:
    """Spliced-model figures of `sae` at `layer` of `model` over `data` (module docstring).

    data: a classifier's inputs (a Dataset, whose X rows are fed to the model, as image
        batches if it rejects flat rows and the Dataset has images, as in
        `collect_activations`; or an array),
        scored against `labels` (default: the Dataset's; -1 means unlabelled): one class per
        sample, shape (n,), for logits (batch, n_classes); or one per position, shape (n, T),
        for a model returning logits (batch, T, n_classes). Logits (batch, T, vocab) against
        one label per sample are refused (a language model: give it token ids). Or, for a
        language model, texts (with `tokenizer`), an int array of token ids (n, T), or
        the token Dataset `collect_activations(..., tokenizer=)` made (its documents, and
        its tokenizer unless one is given).
    max_length: tokens per text (default 128, or the model's context if shorter).
    task: "classify", "next_token", or "auto" (texts and integer arrays are next_token).
    input_fn: shapes a float (b, d) batch of X rows into what the classifier takes.
    skip_first: language models: the first n positions of each sequence keep the layer's
        own output in every pass (spliced and ablated) and are left out of the
        reconstruction figures, for an SAE trained without them (`collect_activations(...,
        drop_first=n)`: a causal LM's attention-sink token). Every position is still scored.
    on_rows: called as on_rows(x, codes, x_hat) with the layer's real (non-padding) rows in
        the spliced pass, e.g. to accumulate reconstruction statistics.
    """
    module = sae_module(sae)
    layer_name, layer_module = resolve_layer(model, layer)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if input_fn is not None and not callable(input_fn):
        raise TypeError(f"input_fn must be callable; got {type(input_fn).__name__}")
    if isinstance(skip_first, bool) or not isinstance(skip_first, int) or skip_first < 0:
        raise ValueError(f"skip_first must be an int >= 0 (token positions); got {skip_first!r}")
    data, tokenizer = texts_of_tokens(data, tokenizer)
    data = listed(data)  # a generator of texts, read once
    if task != "classify" and holds_texts(data):  # as collect_activations reads texts
        data = [data] if isinstance(data, str) else text_list(data)
    picked = pick_task(task, data)
    if picked == "classify":
        if task == "auto" and vocab_size(model) is not None:  # it reads token ids, not rows
            raise ValueError(
                f"data: {type(model).__name__} is a language model (it embeds token ids); "
                "pass texts with tokenizer=, an int array of token ids (n, T) or the token "
                f"Dataset collect_activations(..., tokenizer=) made; got {type(data).__name__},"
                " read as a classifier's inputs"
            )
        if skip_first:
            raise ValueError("skip_first applies to language models (token positions) only")
        batches = classifier_batches(model, data, labels, input_fn, batch_size)
    else:
        if labels is not None:  # it was ignored: the figures were not what the caller meant
            raise ValueError(
                "labels: a language model is scored on each next token of data, not against "
                "labels; leave labels out, or pass task='classify' with the model's inputs "
                "for a classifier (labels of shape (n_samples,) or, per position, "
                "(n_samples, n_positions))"
            )
        if max_length is None:  # 128 tokens, or the model's whole context if shorter
            max_length = min(128, context_length(model) or 128)
        max_length = check_max_length(max_length, model, low=2)  # a next token to score
        batches = language_model_batches(model, data, tokenizer, batch_size, max_length, skip_first)
    width = module.cfg.d_in
    W_dec = module.W_dec
    state: dict[str, Any] = {"mask": None, "fixed": None, "sum": None, "count": 0}

    def real_rows(x: Tensor) -> Tensor:
        mask = state["mask"]
        return x if mask is None or mask.shape[0] != x.shape[0] else x[mask.to(x.device)]

    def splice(x: Tensor) -> Tensor:
        x_f = x.to(device=W_dec.device, dtype=W_dec.dtype)
        codes = module.encode(x_f)
        x_hat = module.decode(codes)
        real = real_rows(x_f)
        total = real.double().sum(0)
        state["sum"] = total if state["sum"] is None else state["sum"] + total
        state["count"] += real.shape[0]
        if on_rows is not None:
            on_rows(real, real_rows(codes), real_rows(x_hat))
        return x_hat

    def mean_ablate(x: Tensor) -> Tensor:
        return state["mean"].to(device=x.device, dtype=x.dtype).expand_as(x)

    # One hook for the whole evaluation; what it does is switched per forward pass.
    replacements: dict[str, Callable[[Tensor], Tensor]] = {
        "original": _as_is,
        "spliced": splice,
        "zero_ablated": torch.zeros_like,
        "mean_ablated": mean_ablate,
    }

    def replace(x: Tensor) -> Tensor:
        new = replacements[state["mode"]](x)
        fixed = state["fixed"]
        if fixed is None or new is x or fixed.shape[0] != x.shape[0]:
            return new
        return torch.where(fixed.to(x.device)[:, None], x, new.to(x.dtype))

    def run(batch: ScoredBatch, mode: str) -> Tensor:
        state["mode"] = mode
        try:
            output = batch.run()
        except (ValueError, TypeError):  # ours (the hook's checks) or already the contract's
            raise
        except (RuntimeError, IndexError) as err:  # torch's shape/dtype/index errors
            raise ModelInputError(
                f"model raised {type(err).__name__} in the {mode} pass: {err}. data must hold "
                "the model's inputs (for a classifier, the Dataset you collected the "
                "activations from, not the activations; input_fn= reshapes rows) or, for a "
                "language model, texts with tokenizer= or token ids"
            ) from err
        except Exception as err:  # the model's own error (a KeyError...): named, and chained
            raise ModelInputError(
                f"model raised {type(err).__name__} in the {mode} pass: {err}"
            ) from err
        return batch.flatten(model_logits(output))

    scores = {name: _Scores() for name in replacements}
    modes = {m: m.training for m in model.modules()}
    was_training = module.training
    model.eval()
    module.eval()
    try:
        with replace_output(model, layer_module, replace, width):
            for batch in batches:
                state["mask"], state["fixed"] = batch.row_mask, batch.fixed
                logits = run(batch, "original")
                check_targets(batch, logits.shape[-1])
                reference = F.log_softmax(logits.double(), dim=-1)
                scores["original"].add(logits, batch.targets, None)
                scores["spliced"].add(run(batch, "spliced"), batch.targets, reference)
                scores["zero_ablated"].add(run(batch, "zero_ablated"), batch.targets, reference)
            if state["count"] == 0:
                raise ValueError(f"layer {layer_name!r} saw no rows: nothing to score")
            state["mean"] = (state["sum"] / state["count"]).float()
            for batch in batches:
                state["mask"], state["fixed"] = batch.row_mask, batch.fixed
                scores["mean_ablated"].add(run(batch, "mean_ablated"), batch.targets, None)
    finally:
        for m, training in modes.items():
            m.training = training
        module.train(was_training)
    n = scores["original"].n
    if n == 0:
        raise ValueError("nothing to score: no labelled sample (labels are all -1)")
    out: dict[str, float] = {}
    for name, s in scores.items():
        out[f"ce_{name}"] = s.ce / n
    for name, s in scores.items():
        out[f"accuracy_{name}"] = s.correct / n
    ce = {name: out[f"ce_{name}"] for name in scores}
    out["loss_recovered"] = _recovered(ce["zero_ablated"], ce["spliced"], ce["original"])
    out["loss_recovered_mean_ablation"] = _recovered(
        ce["mean_ablated"], ce["spliced"], ce["original"]
    )
    out["kl_spliced"] = scores["spliced"].kl / n
    out["kl_zero_ablated"] = scores["zero_ablated"].kl / n
    kl_zero = out["kl_zero_ablated"]
    out["kl_div_score"] = 1 - out["kl_spliced"] / kl_zero if kl_zero > 0 else float("nan")
    return out
