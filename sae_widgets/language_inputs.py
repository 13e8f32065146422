"""What a language model may be given: shared by data/ (collecting token rows), sae/ (the
spliced next-token figures) and explore/ (steering), which never import each other
(DESIGN.md layering). Each check names the argument, the value and what was expected, so no
tokenizer or torch error (an IndexError deep in an embedding) reaches the user."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence, Set
from typing import Any

import numpy as np

__all__ = [
    "check_encodable",
    "check_max_length",
    "check_token_ids",
    "check_tokenizer",
    "context_length",
    "holds_texts",
    "listed",
    "special_count",
    "text_list",
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


def text_list(texts: Any, name: str = "data") -> list[str]:
    """A non-empty list of str from a list, tuple, pandas Series, 1-D numpy array or iterator
    of texts, else an error naming `name` (and the first item that is not a str)."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of texts; got one str (wrap it in a list)")
    if isinstance(texts, bytes | bytearray | memoryview):
        raise TypeError(
            f"{name} must be a list of texts; got {type(texts).__name__} (decode it to a str "
            "and wrap it in a list)"
        )
    if isinstance(texts, Mapping | Set):  # a dict's keys, or a set's run-to-run order
        raise TypeError(
            f"{name} must be an ordered list of texts (documents keep their positions); got "
            f"{type(texts).__name__} (pass list(...) of the texts in the order wanted)"
        )
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise TypeError(
            f"{name} must be a 1-D list of texts; got a numpy array of shape {texts.shape}"
        )
    try:
        items = list(texts)
    except TypeError as err:
        raise TypeError(f"{name} must be a list of texts; got {type(texts).__name__}") from err
    if not items:
        raise ValueError(f"{name} holds no texts: at least one is needed")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            missing = item is None or type(item).__name__ == "NAType" or item != item  # NaN
            raise TypeError(
                f"{name}[{i}] must be a str; got {type(item).__name__}"
                + (" (a missing text)" if missing else "")
            )
    return [str(item) for item in items]  # numpy's str_ items become plain str


def holds_texts(data: Any) -> bool:
    """Whether `data` is meant as texts (then `text_list` reads it or names what is wrong):
    a str or bytes, or a list, tuple, pandas Series or numpy array holding a str or bytes."""
    if isinstance(data, str | bytes | bytearray):
        return True
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "US":
            return True
        items: Any = data.reshape(-1) if data.dtype.kind == "O" else ()
    elif isinstance(data, list | tuple) or type(data).__name__ == "Series":
        items = data
    else:
        return False
    return any(isinstance(item, str | bytes) for item in items)


def listed(data: Any) -> Any:
    """An iterator (a generator of texts) as a list, read once; anything else as it is."""
    return list(data) if isinstance(data, Iterator) else data


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
