"""`TokenRows`: which token of which document each row of a token Dataset is.

A Dataset collected from a language model has one row per kept token. Its ``tokens`` field
keeps, per row, the document id, the position in that document's tokenization and the
token id; and, shared by every subset, the documents themselves: their texts, token ids and
character offsets. That is enough to show any row's token in its context without the model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.data._arrays import _normalise_indices, _to_numpy
from sae_widgets.data.checks import check_int
from sae_widgets.data.corpus import Variant
from sae_widgets.wording import counted

__all__ = ["Documents", "TokenRows", "aligned_character_span", "aligned_position"]


@dataclass(frozen=True, eq=False)
class Documents:
    """The documents token rows come from.

    texts: each document's text. token_ids, offsets: per document, its token ids (L,) and
    their character spans (L, 2) in the text (``(0, 0)`` for special tokens), as tokenized
    for collection (truncated to ``max_length``). tokenizer: what tokenized them (decodes
    vocabulary ids), or None. unembedding: (vocab, d) output embedding of a causal LM, for
    logit effects, or None; norm_weight: (d,) its final norm's scale, or None.
    variants: attribute name -> `Variant` for templated sentences.
    """

    texts: list[str]
    token_ids: list[NDArray[np.int64]]
    offsets: list[NDArray[np.int64]]
    tokenizer: Any = None
    unembedding: NDArray[np.float32] | None = None
    norm_weight: NDArray[np.float32] | None = None
    variants: Mapping[str, Variant] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def pieces(self, doc: int, positions: Any, own: int | None = None) -> list[str]:
        """The text of each token at `positions` (ascending, consecutive) of document `doc`
        with the whitespace before it, so that the pieces join into the document's text; ""
        for special tokens. Characters several tokens span (a byte-level BPE splits an emoji
        into tokens that each span all of it) go to the first of them, or to token `own` (the
        row a view marks) when it is one of them; the others get ""."""
        spans, text = self.offsets[doc], self.texts[doc]
        previous = int(positions[0]) - 1 if len(positions) else -1
        while previous >= 0 and spans[previous, 1] <= spans[previous, 0]:
            previous -= 1  # skip special tokens, which hold no text
        shown = int(spans[previous, 1]) if previous >= 0 else None  # text shown up to here
        claim = None  # where `own`'s characters begin: tokens before it stop there
        if own is not None and spans[own, 1] > spans[own, 0]:
            claim = int(spans[own, 0])
        out = []
        for p in positions:
            start, end = int(spans[p, 0]), int(spans[p, 1])
            if end <= start:
                out.append("")
                continue
            if claim is not None and own is not None and p < own:
                end = min(end, claim)
            if shown is None:
                low = start
            else:  # the gap since the text shown (whitespace), less what was shown already
                low = min(shown, start) if p == own else shown
            out.append(text[low:end] if end > low else "")
            shown = end if shown is None else max(shown, end)
        return out


class TokenRows:
    """Per row of a token Dataset: document id `doc`, position `pos`, token id `token_id`.

    `documents` (shared, never copied by subsets) holds the texts. ``rows[idx]`` is the
    TokenRows of those rows, as `Dataset.__getitem__` needs.
    """

    def __init__(self, doc: Any, pos: Any, token_id: Any, documents: Documents) -> None:
        arrays = []
        for value, name in ((doc, "doc"), (pos, "pos"), (token_id, "token_id")):
            array = _to_numpy(value, name)
            if array.size and not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"{name} must hold integers; got dtype {array.dtype}")
            arrays.append(array.astype(np.int64, copy=False))
        self.doc, self.pos, self.token_id = arrays
        if not (self.doc.ndim == self.pos.ndim == self.token_id.ndim == 1):
            raise ValueError("doc, pos and token_id must be 1-D arrays")
        if not (self.doc.shape == self.pos.shape == self.token_id.shape):
            raise ValueError(
                f"doc, pos and token_id must have one entry per row; got shapes "
                f"{self.doc.shape}, {self.pos.shape}, {self.token_id.shape}"
            )
        if not isinstance(documents, Documents):
            raise TypeError(f"documents must be a Documents; got {type(documents).__name__}")
        if len(self.doc):  # every row a token of a document (context() reads them)
            lengths = np.array([len(ids) for ids in documents.token_ids], dtype=np.int64)
            if self.doc.min() < 0 or self.doc.max() >= len(lengths):
                raise ValueError(f"doc must hold document ids in [0, {len(lengths)})")
            if self.pos.min() < 0 or np.any(self.pos >= lengths[self.doc]):
                raise ValueError("pos must hold token positions inside each row's document")
        self.documents = documents
        self._lookup: tuple[NDArray[np.int64], NDArray[np.int64], int] | None = None

    def __len__(self) -> int:
        return int(self.doc.shape[0])

    def __getitem__(self, index: Any) -> TokenRows:
        rows = np.arange(len(self))[index] if isinstance(index, slice) else index
        rows = _normalise_indices(rows, len(self), "index")
        subset = TokenRows.__new__(TokenRows)  # rows of checked rows: no second check
        subset.doc, subset.pos = self.doc[rows], self.pos[rows]
        subset.token_id, subset.documents = self.token_id[rows], self.documents
        subset._lookup = None
        return subset

    @property
    def texts(self) -> list[str]:
        return self.documents.texts

    @property
    def tokenizer(self) -> Any:
        return self.documents.tokenizer

    # ------------------------------------------------------------------------------- lookup

    def row_of(self, doc: Any, pos: Any) -> NDArray[np.int64]:
        """Row of each (doc, pos) pair, -1 where that token is not a row (dropped, cut by
        max_tokens, or outside this subset)."""
        if self._lookup is None:
            width = int(self.pos.max()) + 2 if len(self) else 1
            keys = self.doc * width + self.pos
            order = np.argsort(keys, kind="stable")
            self._lookup = (keys[order], order.astype(np.int64), width)
        sorted_keys, order, width = self._lookup
        doc_a, pos_a = np.asarray(doc, np.int64), np.asarray(pos, np.int64)
        if not len(sorted_keys):
            return np.full(np.shape(doc_a), -1, dtype=np.int64)
        inside = (pos_a >= 0) & (pos_a < width - 1)
        keys = doc_a * width + pos_a
        where = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        found = inside & (sorted_keys[where] == keys)
        return np.where(found, order[where], -1).astype(np.int64)

    def context(
        self, row: int, before: int = 8, after: int = 4
    ) -> tuple[list[str], NDArray[np.int64], int]:
        """Row `row`'s token with up to `before` tokens before it and `after` after it.

        Returns (pieces, rows, center): the text of each token in the window (whitespace
        included, special tokens left out), the row of each token (-1 if not a row), and
        the index of `row`'s own token in the lists.
        """
        row = check_int(row, "row", 0, len(self) - 1)
        before, after = check_int(before, "before", 0), check_int(after, "after", 0)
        doc, pos = int(self.doc[row]), int(self.pos[row])
        documents = self.documents
        length = len(documents.token_ids[doc])
        positions = np.arange(max(0, pos - before), min(length, pos + after + 1))
        pieces = documents.pieces(doc, positions, own=pos)
        keep = [i for i, (p, text) in enumerate(zip(positions, pieces)) if text or p == pos]
        positions = positions[keep]
        pieces = [pieces[i] for i in keep]
        if pieces and positions[0] == pos:  # the window starts at the row: no leading gap
            pieces[0] = pieces[0].lstrip()
        center = int(np.flatnonzero(positions == pos)[0])
        if not pieces[center]:  # a special token kept as a row: show its name
            pieces[center] = self.vocab_text([int(self.token_id[row])])[0]
        rows = self.row_of(np.full(len(positions), doc), positions)
        return pieces, rows, center

    def token_text(self, row: int) -> str:
        """The text of row `row`'s token as it appears in its document."""
        pieces, _, center = self.context(row, 0, 0)
        return pieces[center]

    def vocab_text(self, ids: Sequence[int]) -> list[str]:
        """Display text of vocabulary ids (logit effects): decoded by the tokenizer, so
        byte-level BPE markers (Ġ, Ċ) and SentencePiece's ▁ become spaces and newlines;
        WordPiece continuations keep their ##; a token of part of a character (one byte of
        an emoji) shows its bytes, "<0xF0>", not the "\ufffd" it decodes to."""
        tokenizer = self.documents.tokenizer
        size = len(tokenizer) if tokenizer is not None and hasattr(tokenizer, "__len__") else None
        high = None if size is None else size - 1  # decode() of an id past it gives "" or raises
        ids = [check_int(i, f"ids[{k}]", 0, high) for k, i in enumerate(ids)]
        if tokenizer is None:
            return [f"#{i}" for i in ids]
        out = []
        for i in ids:
            piece = tokenizer.convert_ids_to_tokens(int(i))
            if isinstance(piece, str) and piece.startswith("##"):
                out.append(piece)
                continue
            text = tokenizer.decode([int(i)], clean_up_tokenization_spaces=False)
            if "\ufffd" in text and isinstance(piece, str):  # bytes of part of a character
                text = _spelled_bytes(piece) or text
            out.append(text)
        return out

    def __repr__(self) -> str:
        rows, documents = counted(len(self), "row"), counted(len(self.documents), "document")
        return f"TokenRows({rows} from {documents})"


@functools.cache
def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's (GPT-2's) spelling of each byte as a printable character -> the byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    kept += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in kept]
    spelled = [chr(b) for b in kept] + [chr(256 + n) for n in range(len(others))]
    return dict(zip(spelled, [*kept, *others]))


def _spelled_bytes(token: str) -> str | None:
    """A token holding part of a character (it decodes to "\ufffd"), spelled as its text
    with each byte that is no whole character written "<0xF0>" (SentencePiece's own
    spelling); None when `token` is not a byte-level BPE token or byte-fallback bytes."""
    fallback = re.findall(r"<0x([0-9A-Fa-f]{2})>", token)
    if fallback and "".join(f"<0x{h}>" for h in fallback) == token:
        data = bytes(int(h, 16) for h in fallback)
    else:
        alphabet = _byte_level_alphabet()
        if not token or any(c not in alphabet for c in token):
            return None
        data = bytes(alphabet[c] for c in token)
    text = data.decode("utf-8", errors="surrogateescape")  # bad bytes -> U+DC80..U+DCFF
    return "".join(f"<0x{ord(c) - 0xDC00:02X}>" if "\udc80" <= c <= "\udcff" else c for c in text)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _align(old: str, span: Any, new: str) -> tuple[int, int, bool]:
    """(start, end, inside): where character span `span` of `old` lies in `new`, a
    re-rendering of it; `inside` when the span overlaps the changed words (then start, end
    are the new words' span)."""
    prefix = _common_prefix(old, new)
    suffix = min(_common_prefix(old[::-1], new[::-1]), min(len(old), len(new)) - prefix)
    old_end, new_end = len(old) - suffix, len(new) - suffix
    start, end = int(span[0]), int(span[1])
    if end <= prefix:
        return start, end, False
    if start >= old_end:
        return start + new_end - old_end, end + new_end - old_end, False
    return prefix, max(new_end, prefix + 1), True


def aligned_character_span(old: str, span: Any, new: str) -> tuple[int, int]:
    """Where the text of character span `span` of `old` is in `new`, a re-rendering of it:
    unchanged before the changed words, shifted after them, and the new words themselves
    for a span that overlaps the change."""
    start, end, _ = _align(old, span, new)
    return start, end


def aligned_position(
    old: str, old_offsets: NDArray[np.int64], pos: int, new: str, new_offsets: NDArray[np.int64]
) -> int:
    """The token of `new` (a re-rendering of `old`) that plays the part of token `pos` of
    `old`: tokens before the changed words keep their text, tokens after them keep their
    distance from the end, and a token inside the changed words maps to the last token of
    the new words."""
    start, end = int(old_offsets[pos, 0]), int(old_offsets[pos, 1])
    if end <= start:  # a special token: same place counted from its end of the sequence
        half = len(old_offsets) // 2
        return pos if pos < half else len(new_offsets) - (len(old_offsets) - pos)
    new_start, new_end, inside = _align(old, (start, end), new)
    char = max(new_end - 1, 0) if inside else new_start
    spans = new_offsets
    real = spans[:, 1] > spans[:, 0]
    holding = np.flatnonzero(real & (spans[:, 0] <= char) & (spans[:, 1] > char))
    if holding.size:
        return int(holding[0])
    after = np.flatnonzero(real & (spans[:, 0] > char))
    return int(after[0]) if after.size else int(np.flatnonzero(real)[-1])
