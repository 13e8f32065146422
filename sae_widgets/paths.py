"""Folder and file arguments as `pathlib.Path`: shared by data/ (stores), sae/ (checkpoints)
and explore/ (code folders), which never import each other (DESIGN.md layering).

What `open` and `pathlib` take is taken: str, bytes (decoded as the file system does,
`os.fsdecode`) and any os.PathLike; anything else is a TypeError naming the argument.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["WRITER_SPARE", "as_path", "check_name_lengths", "check_not_working_folder"]

WRITER_SPARE = 32
"""Bytes a writer adds to a name for its temporary sibling (".NAME.saving-PID-XXXXXXXX")."""
_NAME_MAX, _PATH_MAX = 255, 4096  # where the file system does not say (Linux, macOS, Windows)


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
    path = Path(text)
    check_name_lengths(path, name)
    return path


def _limits(path: Path) -> tuple[int, int]:
    """(longest name, longest path) in bytes on the file system of `path`'s nearest folder."""
    try:
        probe = path.absolute()
        while probe != probe.parent and not _exists(probe):
            probe = probe.parent
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), an odd mount
        return _NAME_MAX, _PATH_MAX


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, a loop of links
        return False


def check_name_lengths(path: Path, name: str, spare: int = 0) -> None:
    """ValueError naming `name` when a file or folder name in `path` is longer than the file
    system takes (ENAMETOOLONG; the last name less `spare` bytes, for the temporary sibling
    a writer makes first), or the whole path is; the message shows the name shortened."""
    parts = [part for part in path.parts if part not in (path.anchor, "")]
    sizes = [len(os.fsencode(part)) for part in parts]
    total = len(os.fsencode(str(path)))
    spares = [0] * (len(parts) - 1) + [spare]
    if max(sizes, default=0) + spare <= 128 and total + spare < 1024:
        return  # far below any file system's limits: no query
    name_max, path_max = _limits(path)
    for part, size, room_left in zip(parts, sizes, spares):
        if size + room_left > name_max:
            why = (
                f" (the file system takes {name_max}, less room for the temporary name a save "
                "writes first)"
                if room_left
                else ""
            )
            raise ValueError(
                f"{name}: the name {_shortened(part)} is {size} bytes long; expected at most "
                f"{name_max - room_left} bytes{why}: choose a shorter name"
            )
    try:
        size = len(os.fsencode(str(path.absolute())))
    except OSError:  # the working folder is gone
        size = total
    if size + spare >= path_max:
        raise ValueError(
            f"{name}: the path {_shortened(str(path))} is {size} bytes long; expected at most "
            f"{path_max - spare - 1} bytes: choose a shorter path"
        )


def _shortened(text: str) -> str:
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}...{text[-12:]!r}"


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
