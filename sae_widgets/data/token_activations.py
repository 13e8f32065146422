"""Token activations of a Hugging Face transformer: one Dataset row per kept token.

`collect_activations(model, layer, data=texts, tokenizer=tok)` lands here. Documents are
tokenized (fast tokenizers only: their character offsets let views show each token in its
text), run in groups of consecutive documents, each sorted by length and run in right-padded
batches, so a token sees exactly what it sees when its document runs alone (the tokenizing
and the model pass to the layer are `token_runner.TokenRunner`'s).
Padding, and by default special tokens (BOS, [CLS], [SEP]), are dropped; rows are written
into one preallocated array, so memory is the rows asked for plus one group; with `out`, into
an on-disk `ActivationStore` instead, and memory is one group, one shard and the token ids.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from sae_widgets.data.corpus import TextCorpus, as_texts
from sae_widgets.data.dataset import Dataset
from sae_widgets.data.token_runner import EncodedTexts, TokenRunner, variant_attribute
from sae_widgets.data.tokens import Documents, TokenRows
from sae_widgets.language_inputs import (
    check_encodable,
    check_max_length,
    special_count,
)
from sae_widgets.wording import counted

__all__ = ["collect_token_activations"]

_TOKENIZE_CHUNK = 512  # documents tokenized at a time (stops early once max_tokens is met)
_GROUP_ROWS = 8192  # rows run and handed on at a time (documents sorted by length within)


def _check_count(value: Any, name: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return int(value)


def _default_max_length(model: nn.Module, tokenizer: Any) -> int:
    limits = [512]
    config = getattr(model, "config", None)
    for limit in (
        getattr(config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ):
        if isinstance(limit, int) and limit > 0:
            limits.append(limit)
    return min(limits)


def _unembedding(model: nn.Module) -> tuple[NDArray[np.float32] | None, NDArray[np.float32] | None]:
    """(vocab, d) output embedding and (d,) final-norm scale of a causal LM, else Nones."""
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        return None, None
    matrix = weight.detach().float().cpu().numpy()  # shares memory when already float32 on CPU
    norm = getattr(getattr(model, "model", None), "norm", None)
    scale = getattr(norm, "weight", None)
    if isinstance(scale, torch.Tensor) and scale.shape == (matrix.shape[1],):
        return matrix, scale.detach().float().cpu().numpy()
    return matrix, None


def collect_token_activations(
    model: nn.Module,
    layer_name: str,
    module: nn.Module,
    data: Any,
    tokenizer: Any,
    device: torch.device,
    *,
    batch_size: int = 16,
    max_tokens: int | None = None,
    max_length: int | None = None,
    drop_special: bool = True,
    drop_first: int = 0,
    out: str | os.PathLike[str] | None = None,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> Dataset:
    """One row per kept token of `data` (a list of texts or a `TextCorpus`); see
    `sae_widgets.collect_activations` for the arguments. With `out`, the rows stream into
    an `ActivationStore` there (with the documents), group by group."""
    texts = as_texts(data)
    check_encodable(texts)
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise TypeError(
            f"tokenizer must be a Hugging Face tokenizer; got {type(tokenizer).__name__}"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "tokenizer must be a fast tokenizer (AutoTokenizer's default): its character "
            "offsets are what lets views show each token in its text"
        )
    batch_size = _check_count(batch_size, "batch_size", False) or 1
    max_tokens = _check_count(max_tokens, "max_tokens", True)
    if max_length is None:
        max_length = _default_max_length(model, tokenizer)
    max_length = check_max_length(max_length, model, low=special_count(tokenizer) + 1)
    if not isinstance(drop_special, bool):
        raise TypeError(f"drop_special must be True or False; got {drop_special!r}")
    if isinstance(drop_first, bool) or not isinstance(drop_first, (int, np.integer)):
        raise TypeError(f"drop_first must be an int (token positions); got {drop_first!r}")
    if drop_first < 0:
        raise ValueError(f"drop_first must be >= 0 token positions; got {drop_first}")
    drop_first = int(drop_first)

    runner = TokenRunner(model, module, layer_name, tokenizer, device, max_length, batch_size)
    encoded = EncodedTexts()
    n_rows = 0
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        runner.encode(texts[start : start + _TOKENIZE_CHUNK], drop_special, drop_first, encoded)
        n_rows = sum(len(kept) for kept in encoded.kept)
        if max_tokens is not None and n_rows >= max_tokens:
            break
    counts = np.array([len(kept) for kept in encoded.kept], dtype=np.int64)
    if max_tokens is not None and n_rows > max_tokens:  # later documents are left out
        ends = np.cumsum(counts)
        n_docs = int(np.searchsorted(ends, max_tokens)) + 1  # the last one may be cut short
        counts = counts[:n_docs]
        counts[-1] -= int(ends[n_docs - 1]) - max_tokens
        n_rows = max_tokens
        for field in (encoded.ids, encoded.offsets, encoded.kept):
            del field[n_docs:]
    n_docs = len(counts)
    if n_rows == 0:
        raise ValueError(
            "data: no tokens left to collect (empty texts, only special tokens, or texts no "
            "longer than drop_first)"
        )
    row_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    doc = np.repeat(np.arange(n_docs), counts)
    pos = np.concatenate([encoded.kept[d][: counts[d]] for d in range(n_docs)])
    token_id = np.concatenate([encoded.ids[d][encoded.kept[d][: counts[d]]] for d in range(n_docs)])
    unembedding, norm_weight = _unembedding(model)
    corpus = data if isinstance(data, TextCorpus) else None
    documents = Documents(
        texts=texts[:n_docs],
        token_ids=encoded.ids,
        offsets=encoded.offsets,
        tokenizer=tokenizer,
        unembedding=unembedding,
        norm_weight=norm_weight,
        variants={} if corpus is None else dict(corpus.variants),
    )
    tokens = TokenRows(doc, pos, token_id, documents)
    attributes = {}
    if corpus is not None:
        for name, variant in corpus.variants.items():
            attributes[name] = variant_attribute(variant, runner, tokens)
    labels = None if corpus is None or corpus.labels is None else corpus.labels[doc]
    factors = None if corpus is None else {k: v[doc] for k, v in corpus.factors.items()}
    name = f"{(corpus.name if corpus else '') or counted(n_docs, 'text')} -> {layer_name}"
    chunks = _row_chunks(runner, encoded, counts, row_start)
    if out is not None:
        from sae_widgets.data.store import write_token_store

        info = {
            "model": type(model).__name__,
            "layer": layer_name,
            "name": name,
            "label_names": None if corpus is None else corpus.label_names,
        }
        store = write_token_store(
            chunks, out, tokens, labels, factors, info, shard_size=shard_size, overwrite=overwrite
        )
        store.tokens = tokens  # the live documents: with the variants the attributes render
        store.attributes = attributes
        return store
    X: NDArray[np.float32] | None = None
    for lo, rows in chunks:
        if X is None:
            X = np.empty((n_rows, rows.shape[1]), dtype=np.float32)
        X[lo : lo + rows.shape[0]] = rows
    assert X is not None
    return Dataset(
        X,
        labels=labels,
        label_names=None if corpus is None else corpus.label_names,
        factors=factors,
        attributes=attributes,
        name=name,
        tokens=tokens,
    )


def _row_chunks(
    runner: TokenRunner,
    encoded: EncodedTexts,
    counts: NDArray[np.int64],
    row_start: NDArray[np.int64],
) -> Generator[tuple[int, NDArray[np.float32]], None, None]:
    """(first row, rows) of consecutive groups of documents, in row order. Each group (about
    `_GROUP_ROWS` rows) runs longest document first, so batches of similar lengths pad
    little; memory is one group and one batch. The rows array is reused: copy it."""
    buffer: NDArray[np.float32] | None = None
    n_docs = len(counts)
    first = 0
    with runner.hooked():
        while first < n_docs:
            last = first
            total = 0
            while last < n_docs and (last == first or total + counts[last] <= _GROUP_ROWS):
                total += int(counts[last])
                last += 1
            group = [d for d in range(first, last) if counts[d] > 0]
            group.sort(key=lambda d: -len(encoded.ids[d]))
            base = int(row_start[first])
            for start in range(0, len(group), runner.batch_size):
                batch = group[start : start + runner.batch_size]
                hidden = runner.forward([encoded.ids[d] for d in batch])
                if buffer is None or buffer.shape[0] < total:
                    buffer = np.empty((max(total, _GROUP_ROWS), hidden.shape[2]), np.float32)
                for b, d in enumerate(batch):
                    lo = int(row_start[d]) - base
                    buffer[lo : lo + counts[d]] = hidden[b, encoded.kept[d][: counts[d]]]
            if total:
                assert buffer is not None
                yield base, buffer[:total]
            first = last
