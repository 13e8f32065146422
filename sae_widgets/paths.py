"""Folder and file arguments as `pathlib.Path`: shared by data/ (stores), sae/ (checkpoints)
and explore/ (code folders), which never import each other (DESIGN.md layering).

What `open` and `pathlib` take is taken: str, bytes (decoded as the file system does,
`os.fsdecode`) and any os.PathLike; anything else is a TypeError naming the argument.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["as_path", "check_not_working_folder"]


def as_path(value: Any, name: str, what: str = "a folder path") -> Path:
    """`value` (str, bytes or os.PathLike) as a Path, or a TypeError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, str | bytes | os.PathLike):
        raise TypeError(
            f"{name} must be {what} (str, bytes or os.PathLike); got {type(value).__name__} "
            f"{value!r:.60}"
        )
    try:
        text = os.fsdecode(value)  # a PathLike may give bytes too; bytes decode as os does
    except TypeError as err:  # a PathLike whose __fspath__ returns neither str nor bytes
        raise TypeError(f"{name} must be {what}; got {type(value).__name__}: {err}") from None
    if "\0" in text:  # os would say only "embedded null byte"
        raise ValueError(f"{name} must be a path without NUL characters; got {text!r:.80}")
    return Path(text)


def check_not_working_folder(path: Path, name: str) -> None:
    """ValueError naming `name` if `path` is the working folder or one above it: a save that
    replaces the folder by renaming would leave the process in a deleted folder (every
    relative path then fails, os.getcwd() included)."""
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the working folder is already gone: nothing to protect
        return
    target = path.resolve()
    if target == cwd or target in cwd.parents:
        raise ValueError(
            f"{name}: {str(path)!r} is the working folder or one above it, which a save "
            "replaces; name a new folder (e.g. a subfolder)"
        )
