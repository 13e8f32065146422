"""Counts in user-facing text: "1 unit", "2 units", "1,024 samples".

Shared by every layer that writes a sentence with a count in it (views' captions, reprs,
error messages), so that none of them says "the 1 units".
"""

from __future__ import annotations

__all__ = ["counted", "noun_for"]


def noun_for(n: int, noun: str, plural: str | None = None) -> str:
    """`noun` when `n` is one, else its plural (`plural`, or `noun` + "s")."""
    if n == 1:
        return noun
    return plural if plural is not None else noun + "s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with thousands separators and its noun in the right number: "1 unit", "2,048
    units", "0 samples"."""
    return f"{n:,} {noun_for(n, noun, plural)}"
