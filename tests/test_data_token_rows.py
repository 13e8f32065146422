"""TokenRows and Documents without a model: context windows, row lookup, subsets."""

from __future__ import annotations

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.data.tokens import Documents, TokenRows

TEXTS = ["Hi there you", "<b>bold</b> x"]
# token spans as a fast tokenizer gives them, a special token (0, 0) first
OFFSETS = [
    np.array([[0, 0], [0, 2], [2, 8], [8, 12]]),
    np.array([[0, 0], [0, 3], [3, 7], [7, 11], [11, 13]]),
]
IDS = [np.array([1, 10, 11, 12]), np.array([1, 20, 21, 22, 23])]


def rows() -> TokenRows:
    documents = Documents(texts=TEXTS, token_ids=IDS, offsets=OFFSETS)
    doc = np.array([0, 0, 0, 1, 1, 1, 1])
    pos = np.array([1, 2, 3, 1, 2, 3, 4])
    token_id = np.array([10, 11, 12, 20, 21, 22, 23])
    return TokenRows(doc, pos, token_id, documents)


def test_context_pieces_join_into_the_text_and_skip_special_tokens() -> None:
    tokens = rows()
    pieces, found_rows, center = tokens.context(1, before=5, after=5)
    assert "".join(pieces) == TEXTS[0]
    assert pieces[center] == " there"
    np.testing.assert_array_equal(found_rows, [0, 1, 2])
    assert tokens.token_text(6) == "x"  # the token alone, without the space before it
    assert tokens.context(0, 0, 0)[0] == ["Hi"]


def test_row_of_finds_rows_and_marks_missing_tokens() -> None:
    tokens = rows()
    np.testing.assert_array_equal(
        tokens.row_of([0, 1, 1, 0, 2], [2, 4, 0, 9, 1]), [1, 6, -1, -1, -1]
    )
    sub = tokens[np.array([6, 0])]
    np.testing.assert_array_equal(sub.row_of([1, 0, 0], [4, 1, 2]), [0, 1, -1])


def test_dataset_carries_tokens_through_indexing() -> None:
    ds = sw.Dataset(np.arange(14, dtype=np.float32).reshape(7, 2), tokens=rows())
    sub = ds[1:4]
    np.testing.assert_array_equal(sub.tokens.doc, [0, 0, 1])
    assert sub.tokens.token_text(2) == "<b>"
    mask = np.zeros(7, bool)
    mask[[2, 5]] = True
    np.testing.assert_array_equal(ds[mask].tokens.pos, [3, 3])


def test_bad_token_rows() -> None:
    with pytest.raises(ValueError, match="every row"):
        sw.Dataset(np.zeros((3, 2)), tokens=rows())
    with pytest.raises(TypeError, match="TokenRows"):
        sw.Dataset(np.zeros((3, 2)), tokens={"doc": [0]})
    with pytest.raises(ValueError, match="one entry per row"):
        TokenRows([0, 0], [1], [5, 6], rows().documents)
