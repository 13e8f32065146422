"""`sentences()`: templated English sentences whose attributes are known by construction.

Every sentence is "The <subject> <verb> the <adjective> <object>." built from a small
lexicon. Four attributes are chosen per sentence, and each is a `Variant` a ProbeSlider can
walk (the sentence re-rendered with another value, grammar kept):

- tense: past, present, future ("kicked", "kicks"/"kick", "will kick");
- number: singular, plural (the subject noun, and the verb agrees in the present);
- sentiment: terrible, bad, plain, good, wonderful (the adjective, an ordered scale);
- subject: which noun is the subject (in the sentence's number).

The remaining choices (verb, object) are factors too, but not variants.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from sae_widgets.data.checks import check_choice, check_seed
from sae_widgets.data.corpus import TextCorpus, Variant

__all__ = ["SENTENCE_ATTRIBUTES", "sentences"]

SUBJECTS = (
    ("dog", "dogs"),
    ("cat", "cats"),
    ("teacher", "teachers"),
    ("child", "children"),
    ("doctor", "doctors"),
    ("bird", "birds"),
    ("farmer", "farmers"),
    ("student", "students"),
)
VERBS = (  # base, third person singular present, past
    ("find", "finds", "found"),
    ("see", "sees", "saw"),
    ("like", "likes", "liked"),
    ("watch", "watches", "watched"),
    ("carry", "carries", "carried"),
    ("paint", "paints", "painted"),
)
OBJECTS = ("house", "garden", "book", "song", "river", "letter", "car", "cake")
TENSES = ("past", "present", "future")
NUMBERS = ("singular", "plural")
SENTIMENTS = ("terrible", "bad", "plain", "good", "wonderful")

SENTENCE_ATTRIBUTES = ("tense", "number", "sentiment", "subject")
"""The attributes of `sentences()` a probe can vary, in the order of its factors."""


def _render(subject: int, number: int, verb: int, tense: int, sentiment: int, obj: int) -> str:
    base, third, past = VERBS[verb]
    if tense == 0:
        verb_form = past
    elif tense == 1:
        verb_form = third if number == 0 else base
    else:
        verb_form = f"will {base}"
    noun = SUBJECTS[subject][number]
    return f"The {noun} {verb_form} the {SENTIMENTS[sentiment]} {OBJECTS[obj]}."


def _render_variant(table: np.ndarray, column: int, doc: int, value: int) -> str:
    """Sentence `doc` of `table` with its factor `column` set to `value`."""
    row = [int(v) for v in table[doc]]
    row[column] = value
    return _render(*row)


def sentences(n: int = 2000, *, seed: int = 0, label: str = "sentiment") -> TextCorpus:
    """`n` distinct templated sentences (at most 11,520 exist) as a `TextCorpus`.

    Factors: subject, number, verb, tense, sentiment, object (value indices). Variants
    (probe attributes): `SENTENCE_ATTRIBUTES`. `label` picks which of tense, number,
    sentiment or subject also serves as the class label (colours in the PCA view).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int; got {type(n).__name__}")
    sizes = (len(SUBJECTS), len(NUMBERS), len(VERBS), len(TENSES), len(SENTIMENTS), len(OBJECTS))
    total = int(np.prod(sizes))
    if not 1 <= n <= total:
        raise ValueError(f"n must be in [1, {total}] (the distinct sentences); got {n}")
    names = {"tense": TENSES, "number": NUMBERS, "sentiment": SENTIMENTS}
    names["subject"] = tuple(singular for singular, _ in SUBJECTS)
    check_choice(label, "label", tuple(sorted(names)))
    picked = np.random.default_rng(check_seed(seed)).choice(total, size=n, replace=False)
    table = np.stack(np.unravel_index(picked, sizes), axis=1)  # (n, 6)
    columns = ("subject", "number", "verb", "tense", "sentiment", "object")
    factors = {name: table[:, i].copy() for i, name in enumerate(columns)}
    texts = [_render(*map(int, row)) for row in table]

    # partials of a module-level function, not closures: the corpus (and the token datasets
    # collected from it, whose attributes re-render) pickle
    variants = {
        name: Variant(name, names[name], partial(_render_variant, table, columns.index(name)))
        for name in SENTENCE_ATTRIBUTES
    }
    return TextCorpus(
        texts,
        labels=factors[label],
        label_names=list(names[label]),
        factors=factors,
        variants=variants,
        name="templated sentences",
    )
