"""`TextCorpus`: documents for a language model, with what is known about each of them.

A plain list of strings is a corpus too; a TextCorpus adds per-document labels and factors
(carried over to every token row of the document) and `Variant`s: attributes of templated
sentences that can be re-rendered, which `collect_activations` turns into probe attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from sae_widgets.data.checks import is_int
from sae_widgets.label_codes import check_label_names, encode_labels
from sae_widgets.language_inputs import text_list
from sae_widgets.wording import counted

__all__ = ["TextCorpus", "TextIndexError", "Variant", "as_texts"]


@dataclass(frozen=True)
class Variant:
    """An attribute of templated sentences: ``render(doc, value)`` is document `doc`'s text
    with the attribute set to value index `value` (0 <= value < len(value_names))."""

    name: str
    value_names: tuple[str, ...]
    render: Callable[[int, int], str]
    description: str = ""


class TextIndexError(IndexError, ValueError):
    """A text index out of range: an IndexError (the sequence protocol) and a ValueError."""


class TextCorpus(Sequence[str]):
    """Documents (strings) plus optional per-document labels, factors and variants.

    Parameters
    ----------
    texts: the documents.
    labels, label_names: the class of each document and the class names, or None; labels
        that are names (strings, ...) are numbered as `sae_widgets.Dataset` numbers them.
    factors: name -> (n_docs,) numbers known about each document (e.g. a tense index).
    variants: name -> `Variant`, the attributes a probe can vary by re-rendering.
    name: short description.
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        labels: Any = None,
        label_names: Sequence[str] | None = None,
        factors: Mapping[str, Any] | None = None,
        variants: Mapping[str, Variant] | None = None,
        name: str = "",
    ) -> None:
        self.texts = as_texts(texts, "texts")
        n = len(self.texts)
        self.labels: np.ndarray | None = None
        self.label_names: list[str] | None = check_label_names(label_names)
        if labels is not None:  # names (strings, bools, ...) become codes, as in Dataset
            self.labels, self.label_names = encode_labels(labels, n, label_names)
        self.factors = {str(k): np.asarray(v) for k, v in (factors or {}).items()}
        for key, value in self.factors.items():
            if value.shape != (n,):
                raise ValueError(f"factors[{key!r}] must have one entry per text (n={n})")
        self.variants = dict(variants or {})
        for key, variant in self.variants.items():
            if not isinstance(variant, Variant):
                raise TypeError(f"variants[{key!r}] must be a Variant")
        self.name = str(name)

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self.texts[index]
        if not is_int(index):
            raise TypeError(f"index must be an int or a slice; got {index!r:.80}")
        n = len(self.texts)
        if not -n <= index < n:  # an IndexError too: iteration by index stops here
            raise TextIndexError(
                f"index must be in [-{n}, {n}) for {counted(n, 'text')}; got {index}"
            )
        return self.texts[int(index)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    def __repr__(self) -> str:
        parts = [counted(len(self), "text")]
        if self.name:
            parts.insert(0, repr(self.name))
        if self.variants:
            parts.append("variants=[" + ", ".join(self.variants) + "]")
        return "TextCorpus(" + ", ".join(parts) + ")"


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_texts(texts: Any, name: str = "data") -> list[str]:
    """A non-empty list of strings from any sequence of strings, or a clear error."""
    if isinstance(texts, TextCorpus):
        return texts.texts
    return text_list(texts, name)
