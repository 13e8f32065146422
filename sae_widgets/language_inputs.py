"""What a language model may be given: shared by data/ (collecting token rows), sae/ (the
spliced next-token figures) and explore/ (steering), which never import each other
(DESIGN.md layering). Each check names the argument, the value and what was expected, so no
tokenizer or torch error (an IndexError deep in an embedding) reaches the user."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_encodable",
    "check_max_length",
    "check_token_ids",
    "check_tokenizer",
    "context_length",
    "special_count",
    "vocab_size",
]


def check_tokenizer(tokenizer: Any, name: str = "tokenizer", decodes: bool = False) -> Any:
    """A Hugging Face tokenizer (callable; with `decodes`, it also decodes ids), else a
    TypeError naming `name`."""
    if not callable(tokenizer) or (decodes and not hasattr(tokenizer, "decode")):
        raise TypeError(
            f"{name} must be a Hugging Face tokenizer (e.g. the one sw.models.smollm2() "
            f"returns); got {type(tokenizer).__name__}"
        )
    return tokenizer


def check_encodable(texts: Sequence[str], name: str = "data") -> None:
    """Refuse a text the tokenizer cannot take: a lone surrogate is not valid Unicode."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            label = name if len(texts) == 1 and name == "prompt" else f"{name}[{i}]"
            raise ValueError(
                f"{label} is not valid Unicode: character {err.start} is "
                f"{text[err.start]!r} (a lone surrogate); the tokenizer needs UTF-8 text"
            ) from None


def context_length(model: Any) -> int | None:
    """The model's context (config.max_position_embeddings), or None when it has none."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def special_count(tokenizer: Any) -> int:
    """Special tokens the tokenizer adds to one text (BERT's [CLS] and [SEP]: 2)."""
    counter = getattr(tokenizer, "num_special_tokens_to_add", None)
    try:
        count = counter() if callable(counter) else 0
    except (TypeError, ValueError, NotImplementedError):
        return 0
    return int(count) if isinstance(count, int) else 0


def check_max_length(value: Any, model: Any, name: str = "max_length", low: int = 1) -> int:
    """Tokens per sequence: an int in [low, the model's context]. (A tokenizer silently skips
    truncation to fewer tokens than its special tokens: callers pass `low` above those.)"""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int (tokens per sequence); got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low} tokens; got {value}")
    limit = context_length(model)
    if limit is not None and value > limit:
        raise ValueError(
            f"{name} must be at most {limit}, the model's context "
            f"(config.max_position_embeddings); got {value}"
        )
    return value


def vocab_size(model: Any) -> int | None:
    """Rows of the model's input embedding (the ids it can read), or None if unknown."""
    getter = getattr(model, "get_input_embeddings", None)
    try:
        embedding = getter() if callable(getter) else None
    except NotImplementedError:  # a PreTrainedModel subclass without embeddings
        return None
    size = getattr(embedding, "num_embeddings", None)
    return int(size) if isinstance(size, int) else None


def check_token_ids(ids: Any, model: Any, name: str = "data") -> None:
    """Token ids the model can embed: in [0, vocabulary size). An id beyond it means the
    tokenizer belongs to another model (the embedding would raise an IndexError)."""
    array = np.asarray(ids)
    if array.size == 0:
        return
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise ValueError(f"{name}: token id {low} is negative; token ids are >= 0")
    size = vocab_size(model)
    if size is not None and high >= size:
        raise ValueError(
            f"{name}: token id {high} is beyond the model's vocabulary of {size}: the "
            "tokenizer does not match the model"
        )
