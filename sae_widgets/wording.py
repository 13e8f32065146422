"""Words in user-facing text: counts ("1 unit", "2 units", "1,024 samples") and names
shortened to a fixed room ("a very long na…").

Shared by every layer that writes a sentence with a count in it (views' captions, reprs,
error messages), so that none of them says "the 1 units".
"""

from __future__ import annotations

__all__ = ["counted", "noun_for", "shortened", "shortened_apart"]

from collections.abc import Sequence


def noun_for(n: int, noun: str, plural: str | None = None) -> str:
    """`noun` when `n` is one, else its plural (`plural`, or `noun` + "s")."""
    if n == 1:
        return noun
    return plural if plural is not None else noun + "s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with thousands separators and its noun in the right number: "1 unit", "2,048
    units", "0 samples"."""
    return f"{n:,} {noun_for(n, noun, plural)}"


def shortened(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its start and "…" in `limit`
    characters: a name cut where the reader sees that it is (views pair it with the whole
    name in a tooltip)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1; got {limit}")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shortened_apart(names: Sequence[str], limit: int) -> list[str]:
    """Each name `shortened`, unless two different names would then read the same (label
    names that differ only at their ends: "handwritten digit, class 3"): then every long
    one keeps its start and its end around a middle "…" ("handw…ss 3"), in `limit`."""
    cut = [shortened(name, limit) for name in names]
    if len(set(cut)) == len(set(names)):
        return cut
    head = (limit - 1) // 2
    tail = limit - 1 - head
    return [
        name if len(name) <= limit else name[:head] + "…" + (name[-tail:] if tail else "")
        for name in names
    ]
