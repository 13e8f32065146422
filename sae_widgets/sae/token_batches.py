"""A language model's evaluation data as token id batches: texts (tokenized), an int array of
token ids, or a token Dataset (scored on its documents with its own tokenizer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from sae_widgets.language_inputs import check_encodable, check_tokenizer

__all__ = ["texts_of_tokens", "token_batches"]


def token_batches(data: Any, tokenizer: Any, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) int64 arrays (n, T) of token sequences: `data` is an int array of token
    ids (n, T), or texts tokenized by `tokenizer` (truncated to max_length, right-padded)."""
    if isinstance(data, str):
        data = [data]
    if isinstance(data, Sequence) and data and all(isinstance(t, str) for t in data):
        if tokenizer is None:
            raise ValueError("tokenizer is required to score texts with a language model")
        check_tokenizer(tokenizer)
        check_encodable(data)
        encoded = [
            list(tokenizer(text, truncation=True, max_length=max_length)["input_ids"])
            for text in data
        ]
        encoded = [ids for ids in encoded if len(ids) >= 2]
        if not encoded:
            raise ValueError("data: every text is shorter than two tokens; nothing to score")
        width = max(len(ids) for ids in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(encoded):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return ids, mask
    array = np.asarray(data.detach().cpu() if isinstance(data, Tensor) else data)
    if array.ndim != 2 or array.dtype.kind not in "iu" or array.shape[1] < 2:
        raise ValueError(
            "data for a language model must be texts (with tokenizer=) or an integer array "
            f"of token ids (n_sequences, n_tokens >= 2); got {type(data).__name__} "
            f"with shape {array.shape}"
        )
    return array.astype(np.int64), np.ones(array.shape, dtype=np.int64)


def texts_of_tokens(data: Any, tokenizer: Any) -> tuple[Any, Any]:
    """A token Dataset (`collect_activations(..., tokenizer=)`) is scored on the documents
    its rows come from (all of them for the whole collection, only a subset's own for
    ``ds[rows]``), in document order, with the tokenizer that made it; anything else passes
    through."""
    tokens = getattr(data, "tokens", None)
    texts = getattr(tokens, "texts", None)
    if not isinstance(texts, list) or not texts:
        return data, tokenizer
    docs = getattr(tokens, "doc", None)
    if isinstance(docs, np.ndarray) and docs.ndim == 1 and docs.size:
        texts = [texts[int(d)] for d in np.unique(docs)]
    return texts, tokenizer if tokenizer is not None else getattr(tokens, "tokenizer", None)
