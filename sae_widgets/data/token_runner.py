"""Texts through a Hugging Face transformer up to one layer: `TokenRunner` tokenizes them
(fast tokenizers: character offsets, so views can show each token in its text) and returns
the layer's per-token hidden states of right-padded batches; a forward hook keeps the layer's
output (a decoder block's tuple gives its first element) and stops the pass there.

The probe attributes of token rows run through it too (`variant_attribute`): each row's
sentence re-rendered with another value of a variant, read at the aligned token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from sae_widgets.data.attribute import Attribute
from sae_widgets.data.corpus import Variant
from sae_widgets.data.layer_capture import (
    as_float32,
    capture_layer,
    run_to_layer,
)
from sae_widgets.data.tokens import TokenRows, aligned_position
from sae_widgets.language_inputs import check_token_ids
from sae_widgets.wording import counted

__all__ = ["EncodedTexts", "TokenRunner", "variant_attribute"]


class EncodedTexts:
    """Tokenized documents: ids, character offsets and which positions become rows."""

    def __init__(self) -> None:
        self.ids: list[NDArray[np.int64]] = []
        self.offsets: list[NDArray[np.int64]] = []
        self.kept: list[NDArray[np.int64]] = []


class TokenRunner:
    """Runs texts through `model` up to `module` and returns its per-token hidden states."""

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        layer_name: str,
        tokenizer: Any,
        device: torch.device,
        max_length: int,
        batch_size: int,
    ) -> None:
        self.model, self.module, self.layer_name = model, module, layer_name
        self.tokenizer, self.device = tokenizer, device
        self.max_length, self.batch_size = max_length, batch_size
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0  # masked out either way
        config = getattr(model, "config", None)
        self.extra: dict[str, Any] = {}
        if getattr(config, "use_cache", False):
            self.extra["use_cache"] = False  # no key/value cache for one pass
        self._captured: list[torch.Tensor] = []
        # special tokens by id (BOS, [CLS], <|im_end|>...): typed in a text (a chat template)
        # they are tokenized as themselves, but the tokenizer's mask marks only those it adds
        ids = getattr(tokenizer, "all_special_ids", None) or []
        self.special_names = {int(i): str(tokenizer.convert_ids_to_tokens(int(i))) for i in ids}

    def _literal_specials(
        self, text: str, ids: NDArray[np.int64], offsets: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Which positions are special tokens written out in `text` ("[SEP]", "<|im_end|>"):
        a special id whose characters are its own name. ([UNK] standing for other characters,
        an emoji, is text and stays.)"""
        found = np.zeros(len(ids), bool)
        for p in np.flatnonzero(np.isin(ids, list(self.special_names))):
            start, end = offsets[p]
            found[p] = text[start:end].strip() == self.special_names[int(ids[p])]
        return found

    def encode(
        self, texts: Sequence[str], drop_special: bool, drop_first: int, into: EncodedTexts
    ) -> None:
        encoding = self.tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        # An id the model cannot embed: the tokenizer is another model's (named here, not
        # as an IndexError from inside the embedding).
        check_token_ids(np.concatenate([[0], *encoding["input_ids"]]), self.model, "tokenizer")
        for text, ids, offsets, special in zip(
            texts,
            encoding["input_ids"],
            encoding["offset_mapping"],
            encoding["special_tokens_mask"],
        ):
            into.ids.append(np.asarray(ids, dtype=np.int64))
            into.offsets.append(np.asarray(offsets, dtype=np.int64).reshape(-1, 2))
            keep = np.ones(len(ids), bool)
            if drop_special:
                keep = (np.asarray(special) == 0) & ~self._literal_specials(
                    text, into.ids[-1], into.offsets[-1]
                )
            keep[:drop_first] = False
            into.kept.append(np.flatnonzero(keep).astype(np.int64))

    @contextmanager
    def hooked(self) -> Iterator[None]:
        self._captured.clear()
        with capture_layer(self.model, self.module, self.layer_name, self._captured):
            yield

    def forward(self, id_lists: Sequence[NDArray[np.int64]]) -> NDArray[np.float32]:
        """Hidden states (B, T, d) of right-padded token id lists (call inside `hooked`)."""
        width = max(len(ids) for ids in id_lists)
        ids = np.full((len(id_lists), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(id_lists), width), dtype=np.int64)
        for b, row in enumerate(id_lists):
            ids[b, : len(row)] = row
            mask[b, : len(row)] = 1
        out = run_to_layer(
            lambda: self.model(
                input_ids=torch.from_numpy(ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
                **self.extra,
            ),
            self._captured,
            self.layer_name,
            f"a batch of {counted(ids.shape[0], 'text')} of {counted(ids.shape[1], 'token')}",
        )
        if out.ndim != 3 or tuple(out.shape[:2]) != ids.shape:
            raise ValueError(
                f"layer {self.layer_name!r} output has shape {tuple(out.shape)}; expected "
                f"(batch, tokens, d) = ({ids.shape[0]}, {ids.shape[1]}, d): hook a layer that "
                "keeps one vector per token (e.g. a transformer block)"
            )
        return as_float32(out, self.layer_name).cpu().numpy()


def variant_attribute(variant: Variant, runner: TokenRunner, tokens: TokenRows) -> Attribute:
    """A probe attribute over token rows: each row's sentence re-rendered with the variant's
    value, run to the layer, read at the aligned token (`aligned_position`). Its functions
    are partials of module-level ones, not closures, so the dataset pickles."""
    return Attribute(
        variant.name,
        np.arange(len(variant.value_names), dtype=np.float64),
        partial(_apply_variant, variant, runner, tokens),
        sweep_fn=partial(_sweep_variant, variant, runner, tokens),
        description=variant.description or f"{variant.name}: " + ", ".join(variant.value_names),
    )


def _apply_variant(
    variant: Variant, runner: TokenRunner, tokens: TokenRows, rows: NDArray[np.int64], value: float
) -> NDArray[np.float32]:
    return _sweep_variant(variant, runner, tokens, rows, np.array([value]))[0]


def _sweep_variant(
    variant: Variant,
    runner: TokenRunner,
    tokens: TokenRows,
    rows: NDArray[np.int64],
    grid: NDArray[np.float64],
) -> NDArray[np.float32]:
    """(len(grid), len(rows), d): the rows with the variant set to each value of `grid`."""
    documents = tokens.documents
    n_values = len(variant.value_names)
    values = []
    for value in grid:
        index = round(float(value))
        if index != value or not 0 <= index < n_values:
            raise ValueError(
                f"value must be a value index in 0..{n_values - 1} for {variant.name!r} "
                f"({', '.join(variant.value_names)}); got {value}"
            )
        values.append(index)
    docs = np.unique(tokens.doc[rows])
    texts = [variant.render(int(d), v) for v in values for d in docs]
    encoded = EncodedTexts()
    runner.encode(texts, False, 0, encoded)
    where = {
        (v_i, int(d)): v_i * len(docs) + j for v_i in range(len(values)) for j, d in enumerate(docs)
    }
    out: NDArray[np.float32] | None = None
    with runner.hooked():
        for start in range(0, len(texts), runner.batch_size):
            chunk = encoded.ids[start : start + runner.batch_size]
            hidden = runner.forward(chunk)
            if out is None:
                out = np.empty((len(values), len(rows), hidden.shape[2]), np.float32)
            for v_i in range(len(values)):
                for r_i, row in enumerate(rows):
                    d = int(tokens.doc[row])
                    t = where[(v_i, d)]
                    if not start <= t < start + len(chunk):
                        continue
                    p = aligned_position(
                        documents.texts[d],
                        documents.offsets[d],
                        int(tokens.pos[row]),
                        texts[t],
                        encoded.offsets[t],
                    )
                    out[v_i, r_i] = hidden[t - start, p]
    assert out is not None
    return out
