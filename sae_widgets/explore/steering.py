"""`Steerer`: what the model does when one SAE unit is pushed (GUI-free, cached).

For a classifier: class probabilities of some samples as a unit is steered over a grid of
alphas, and the unit's own activation read back from the edited layer output. For a causal
language model: greedy continuations of a prompt at a few alphas. Two ways to push a unit:

- "steer": add alpha * W_dec[unit] to the layer's output (activation steering);
- "set": set the unit's activation to alpha in SAE space, reconstruction error kept.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from sae_widgets.analysis.checks import check_index, check_indices, check_positive_int
from sae_widgets.data.checks import check_float
from sae_widgets.image_inputs import image_batch, image_layout
from sae_widgets.language_inputs import (
    check_encodable,
    check_token_ids,
    check_tokenizer,
    context_length,
)
from sae_widgets.sae.splice import Intervention, capture_output, resolve_layer, sae_module
from sae_widgets.sae.splice_metrics import model_logits
from sae_widgets.tensor_checks import check_cast
from sae_widgets.wording import counted

__all__ = ["MODES", "Steerer", "SteeringResult"]

MODES = ("steer", "set")
_CACHE_SIZE = 32


@dataclass(frozen=True)
class SteeringResult:
    """A classifier's response to one unit pushed over `alphas`, on `samples`.

    probabilities: (n_alphas, n_classes) class probabilities, mean over the samples.
    predicted: (n_alphas, n_classes) fraction of the samples predicted as each class.
    unit_activation: (n_alphas,) the unit's mean activation read (re-encoded by the SAE)
        from the edited layer output: how much of the push the SAE itself sees.
    baseline: (n_classes,) class probabilities without any edit.
    """

    unit: int
    mode: str
    alphas: NDArray[np.float64]
    samples: NDArray[np.int64]
    probabilities: NDArray[np.float64]
    predicted: NDArray[np.float64]
    unit_activation: NDArray[np.float64]
    baseline: NDArray[np.float64]


def _device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _model_error(
    err: Exception, x: Tensor, shaped: bool, flat_error: Exception | None = None
) -> ValueError:
    tried = "" if flat_error is None else f"{type(flat_error).__name__}: {flat_error}; as images: "
    how = "check input_fn" if shaped else "pass input_fn= to shape each batch of them"
    return ValueError(
        f"model raised {tried}{type(err).__name__}: {err} on a batch of inputs of shape "
        f"{tuple(x.shape)}; inputs must hold what the model takes ({how})"
    )


class Steerer:
    """Push one unit of `sae` at `layer` of `model` and read the model's output.

    inputs: the classifier's input for each sample of the Explorer's dataset (an (n, ...)
        array, or a Dataset whose X are the inputs); None for a language model.
    input_fn: shapes a float batch of inputs into what the model takes (default: as is;
        for a Dataset with images, image batches if the model rejects flat rows, as
        `collect_activations` does).
    tokenizer: a language model's tokenizer (needed for `continuations`).
    """

    def __init__(
        self,
        sae: Any,
        model: nn.Module,
        layer: str | nn.Module,
        *,
        inputs: Any = None,
        input_fn: Callable[[Tensor], Any] | None = None,
        tokenizer: Any = None,
    ) -> None:
        self.layer_name, self.module = resolve_layer(model, layer)
        self.model = model
        self.sae = sae
        self.sae_module = sae_module(sae)
        holder = inputs  # a Dataset: its images are a layout the model may take
        if inputs is not None and not isinstance(inputs, (np.ndarray, Tensor)):
            inputs = getattr(inputs, "X", inputs)
        self.inputs: NDArray[np.float32] | None = None
        if inputs is not None:
            try:
                self.inputs = np.asarray(inputs, dtype=np.float32)
            except (TypeError, ValueError, RuntimeError) as err:  # strings, ragged, meta
                raise TypeError(
                    f"inputs must be an (n, ...) array of the model's inputs; got "
                    f"{type(inputs).__name__} ({err})"
                ) from None
            if self.inputs.ndim < 1:
                raise ValueError(f"inputs must be an (n, ...) array; got shape {self.inputs.shape}")
            if not np.isfinite(self.inputs).all():
                raise ValueError("inputs contains NaN or infinite values")
        if input_fn is not None and not callable(input_fn):
            raise TypeError(f"input_fn must be callable; got {type(input_fn).__name__}")
        self.input_fn = input_fn
        # a Dataset's images as the model's input layout: (h, w) or (h, w, 3) images
        self._image_shape: tuple[int, ...] | None = None
        if self.inputs is not None and self.inputs.ndim == 2:
            self._image_shape = image_layout(holder, self.inputs.shape[1])
        self._as_images = False  # set once flat rows are rejected and images are taken
        self.tokenizer = None if tokenizer is None else check_tokenizer(tokenizer, decodes=True)
        self._sweeps: OrderedDict[tuple[Any, ...], SteeringResult] = OrderedDict()
        self._texts: OrderedDict[tuple[Any, ...], tuple[str, float]] = OrderedDict()

    def refresh(self) -> None:
        """Re-read the SAE's module (a refit builds a new one) and forget every cached
        result: they were computed with the old weights (`Explorer.refresh` calls this)."""
        self.sae_module = sae_module(self.sae)
        self._sweeps.clear()
        self._texts.clear()

    @property
    def kind(self) -> str:
        """What it can do: "classify" (it has inputs), "generate" (a tokenizer) or "none"."""
        if self.inputs is not None:
            return "classify"
        return "generate" if self.tokenizer is not None else "none"

    def intervention(self, unit: int, alpha: float, mode: str = "steer") -> Intervention:
        """The Intervention that pushes `unit` by `alpha` ("steer") or sets it ("set")."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        edit = {unit: alpha}  # Intervention checks it (a number, finite, not huge)
        if mode == "steer":
            return Intervention(self.model, self.module, self.sae_module, steer=edit)
        return Intervention(self.model, self.module, self.sae_module, set=edit)

    # ----------------------------------------------------------------- classifier
    def _batch(self, samples: NDArray[np.int64]) -> Any:
        assert self.inputs is not None
        device, dtype = _device(self.model)
        rows = self.inputs[samples]
        x = torch.from_numpy(rows).to(device=device, dtype=dtype)
        check_cast(rows, x, 0, "inputs", samples)  # a float16 model's range (as collect's)
        return x

    def _prepare(self, x: Tensor) -> Any:
        """The model's input for flat rows `x`, from a copy of them: every pass (baseline,
        each alpha) must see the same inputs, and a model may write into its input (a first
        nn.ReLU(inplace=True)); the sweep's passes drifted, alpha 0 included."""
        x = x.clone()
        if self.input_fn is not None:
            return self.input_fn(x)
        if self._as_images and self._image_shape is not None:
            return image_batch(self._image_shape, x)
        return x

    def _baseline(self, x: Tensor) -> Tensor:
        """The unedited probabilities of inputs `x`. The input layout is decided as in
        `collect_activations`: rows as they are, or, if the model rejects them and the
        inputs were a Dataset with images, image batches. The model's error is a
        ValueError naming inputs and input_fn (it escaped as torch's own)."""
        try:
            return self._run(self._prepare(x), None)[0]
        except Exception as err:
            if self.input_fn is not None or self._image_shape is None or self._as_images:
                if isinstance(err, (ValueError, TypeError)):
                    raise  # ours (the layer's rows against the SAE's width) or already named
                raise _model_error(err, x, self.input_fn is not None) from err
            flat_error = err
        self._as_images = True
        try:
            return self._run(self._prepare(x), None)[0]
        except Exception as err:
            self._as_images = False
            if isinstance(err, (ValueError, TypeError)):
                raise  # ours or already named (see above)
            raise _model_error(err, x, False, flat_error) from err

    def _run(self, batch: Any, intervention: Intervention | None) -> tuple[Tensor, Tensor]:
        """(probabilities (m, C), the layer's output rows as the rest of the model saw them).

        Forward hooks run in the order they were registered: the capture is registered after
        the intervention's hook, so it records the edited output."""
        width = self.sae_module.cfg.d_in
        with ExitStack() as stack:
            if intervention is not None:
                stack.enter_context(intervention)
            captured = stack.enter_context(capture_output(self.model, self.module, width))
            logits = model_logits(self.model(batch))
        return torch.softmax(logits.double().reshape(logits.shape[0], -1), -1), captured[0]

    @torch.no_grad()
    def sweep(
        self, unit: int, alphas: Sequence[float], samples: Any, mode: str = "steer"
    ) -> SteeringResult:
        """Class probabilities of `samples` as `unit` is pushed by each alpha (cached)."""
        if self.inputs is None:
            raise ValueError("sweep needs the classifier's inputs: pass inputs= to the Explorer")
        n_units = self.sae_module.cfg.n_units
        unit = check_index(unit, n_units, "unit")
        chosen = check_indices(samples, self.inputs.shape[0], "samples")
        if chosen.size == 0:
            raise ValueError("samples is empty: steer at least one sample")
        try:
            grid = np.asarray(alphas, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(
                f"alphas must be finite numbers, at least one; got {alphas!r:.80}"
            ) from None
        if grid.size == 0 or not np.isfinite(grid).all():
            raise ValueError(f"alphas must be finite numbers, at least one; got {alphas!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        key = (unit, mode, grid.tobytes(), chosen.tobytes())
        cached = self._sweeps.get(key)
        if cached is not None:
            self._sweeps.move_to_end(key)
            return cached
        modes = {m: m.training for m in self.model.modules()}
        self.model.eval()
        try:
            x = self._batch(chosen)
            baseline = self._baseline(x)
            probs, predicted, activation = [], [], []
            for alpha in grid:
                p, rows = self._run(self._prepare(x), self.intervention(unit, alpha, mode))
                codes = self.sae_module.encode(rows.to(self.sae_module.W_dec))
                probs.append(p.mean(0))
                counts = torch.bincount(p.argmax(1), minlength=p.shape[1]).double()
                predicted.append(counts / p.shape[0])
                activation.append(codes[:, unit].double().mean())
        finally:
            for m, training in modes.items():
                m.training = training
        result = SteeringResult(
            unit=unit,
            mode=mode,
            alphas=grid,
            samples=chosen,
            probabilities=torch.stack(probs).cpu().numpy(),
            predicted=torch.stack(predicted).cpu().numpy(),
            unit_activation=torch.stack(activation).cpu().numpy(),
            baseline=baseline.mean(0).cpu().numpy(),
        )
        self._sweeps[key] = result
        if len(self._sweeps) > _CACHE_SIZE:
            self._sweeps.popitem(last=False)
        return result

    # ----------------------------------------------------------------- language model
    @torch.no_grad()
    def continuation(
        self,
        unit: int,
        alpha: float,
        prompt: str,
        *,
        max_new_tokens: int = 20,
        mode: str = "steer",
    ) -> str:
        """The greedy continuation of `prompt` with `unit` pushed by `alpha` (cached).

        alpha 0 in "steer" mode is the unedited model.
        """
        return self._continue(unit, alpha, prompt, max_new_tokens, mode)[0]

    def continuation_activation(
        self,
        unit: int,
        alpha: float,
        prompt: str,
        *,
        max_new_tokens: int = 20,
        mode: str = "steer",
    ) -> float:
        """The unit's mean activation over the generated tokens, read (re-encoded by the
        SAE) from the edited layer output: how strongly the continuation carries the unit."""
        return self._continue(unit, alpha, prompt, max_new_tokens, mode)[1]

    @torch.no_grad()
    def _continue(
        self, unit: int, alpha: float, prompt: str, max_new_tokens: int, mode: str
    ) -> tuple[str, float]:
        if self.tokenizer is None:
            raise ValueError("continuation needs a tokenizer: pass tokenizer= to the Explorer")
        unit = check_index(unit, self.sae_module.cfg.n_units, "unit")
        alpha = check_float(alpha, "alpha")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt must be a non-empty string; got {prompt!r}")
        check_encodable([prompt], "prompt")
        max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
        limit = context_length(self.model)
        # Past the context the model has no positions left: refuse rather than run for ages.
        if limit is not None and max_new_tokens >= limit:
            raise ValueError(
                f"max_new_tokens must be below {limit}, the model's context; got {max_new_tokens}"
            )
        key = (unit, alpha, prompt, max_new_tokens, mode)
        cached = self._texts.get(key)
        if cached is not None:
            self._texts.move_to_end(key)
            return cached
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        # Another model's tokenizer: named here, not as an IndexError from the embedding.
        check_token_ids(prompt_ids, self.model, "tokenizer")
        if limit is not None:  # the prompt and its continuation must fit in the context
            n_prompt = len(prompt_ids)
            if n_prompt + max_new_tokens > limit:
                raise ValueError(
                    f"prompt is {counted(n_prompt, 'token')}: with {max_new_tokens} new ones "
                    f"that is past the model's context of {counted(limit, 'token')}; shorten the "
                    f"prompt (at most {counted(max(limit - max_new_tokens, 0), 'token')}) or ask "
                    "for fewer new tokens"
                )
        edit = self.intervention(unit, alpha, mode)
        modes = {m: m.training for m in self.model.modules()}
        self.model.eval()
        width = self.sae_module.cfg.d_in
        try:
            with edit, capture_output(self.model, self.module, width) as captured:
                text = greedy_continuation(self.model, self.tokenizer, prompt, max_new_tokens)
        finally:
            for m, training in modes.items():
                m.training = training
        # Each forward after the first brings one new (generated) token: its row is the last.
        rows = [step[-1:] for step in captured[1:]]
        activation = 0.0
        if rows:
            codes = self.sae_module.encode(torch.cat(rows).to(self.sae_module.W_dec))
            activation = float(codes[:, unit].double().mean())
        result = (text, activation)
        self._texts[key] = result
        if len(self._texts) > _CACHE_SIZE * 4:
            self._texts.popitem(last=False)
        return result


def greedy_continuation(model: nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    """The `max_new_tokens` most likely next tokens after `prompt`, one at a time, decoded.

    A Hugging Face model's own `generate` (greedy, with its key-value cache) when it has one;
    otherwise the whole sequence is run again for each new token.
    """
    ids = list(tokenizer(prompt)["input_ids"])
    device, _ = _device(model)
    prompt_length = len(ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    batch = torch.tensor([ids], dtype=torch.long, device=device)
    generate = getattr(model, "generate", None)
    if callable(generate) and hasattr(model, "generation_config"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # generation-config notes about unused flags
            out = generate(
                batch,
                attention_mask=torch.ones_like(batch),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=eos,
            )
        return str(tokenizer.decode(out[0, prompt_length:].tolist()))
    for _ in range(max_new_tokens):
        logits = model_logits(model(batch))
        token = int(logits[0, -1].argmax())
        ids.append(token)
        if eos is not None and token == eos:
            break
        batch = torch.tensor([ids], dtype=torch.long, device=device)
    return str(tokenizer.decode(ids[prompt_length:]))
