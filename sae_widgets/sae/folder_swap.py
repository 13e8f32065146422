"""Replace a folder by a fully written one so that, at every instant, the path holds the old
folder or the new one (never nothing, never a mix), whatever kills the process.

Linux: the new folder is staged beside the target and swapped in with one
``renameat2(RENAME_EXCHANGE)`` (both names always exist); the old folder, now under the
staging name, is removed afterwards. Elsewhere (or on file systems without the exchange): the
old folder is renamed aside to ``.NAME.old-PID-XXXX``, the new one renamed in, the old one
removed. A process killed between those two renames leaves the target missing for a moment;
`resolve_for_reading` then reads the aside copy, and the next save puts it back.

Leftovers carry the writer's PID in their name (``.NAME.saving-PID-XXXX``, ``.NAME.old-...``);
`clean_leftovers` (run before every save) removes those of processes that no longer run.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

# Test hook: called with the name of each step of a save ("staged", "aside", "swapped"), so
# fault tests can kill the process at an exact point. None in normal use.
fault_hook: Callable[[str], None] | None = None
# Set to False to force the rename-aside fallback (tests of the non-Linux path).
use_exchange = sys.platform.startswith("linux")
_libc_renameat2: Callable[..., int] | bool | None = False  # False: not looked up yet


def _hook(point: str) -> None:
    if fault_hook is not None:
        fault_hook(point)


def staging_name(target: Path, kind: str) -> Path:
    """A fresh sibling of `target` for a save in progress ("saving") or an old copy ("old")."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>saving|old)-(?:(?P<pid>\d+)-)?[0-9a-zA-Z_]+$")


def _leftovers(target: Path) -> list[tuple[str, int | None, Path]]:
    """(kind, writer pid or None, path) of every staging/aside sibling of `target`."""
    found = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match is None or match["name"] != target.name:
            continue
        pid = int(match["pid"]) if match["pid"] else None
        found.append((match["kind"], pid, Path(entry.path)))
    # newest first: of several aside copies, the most recent is the checkpoint to restore
    return sorted(found, key=lambda item: _mtime(item[2]), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: int | None) -> bool:
    """Whether another process that may still be writing has this pid."""
    if pid is None or pid == os.getpid():
        return False  # an old-style name, or ours from an earlier, finished or failed save
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def aside_copies(target: Path, is_complete: Callable[[Path], bool]) -> list[Path]:
    """Complete old copies of `target` left aside by an interrupted swap, newest first."""
    return [
        path
        for kind, _pid, path in _leftovers(target)
        if kind == "old" and path.is_dir() and is_complete(path)
    ]


def clean_leftovers(target: Path, is_complete: Callable[[Path], bool]) -> None:
    """Remove staging folders and aside copies of writers that no longer run; first put back
    the newest complete aside copy if the target itself is missing (a swap killed between
    its two renames)."""
    leftovers = [item for item in _leftovers(target) if not _alive(item[1])]
    if not (target.exists() or target.is_symlink()):
        for kind, _pid, path in leftovers:
            if kind == "old" and is_complete(path):
                try:
                    os.rename(path, target)
                except OSError:
                    continue
                break
    for _kind, _pid, path in leftovers:
        if path.exists() or path.is_symlink():
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        try:
            path.unlink()
        except OSError:
            pass
        return
    shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names a and b; False if this OS or file system cannot."""
    global _libc_renameat2
    if not use_exchange:
        return False
    if _libc_renameat2 is False:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            function = libc.renameat2
            function.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
            function.restype = ctypes.c_int
            _libc_renameat2 = function
        except (OSError, AttributeError):  # no libc symbol (musl, old glibc, not Linux)
            _libc_renameat2 = None
    if not callable(_libc_renameat2):
        return False
    result = _libc_renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # the file system does not support the exchange: fall back
    raise OSError(code, os.strerror(code), str(b))


def swap_into_place(staging: Path, target: Path) -> None:
    """Make the complete folder `staging` appear at `target` (see the module docstring)."""
    _hook("staged")
    if not target.exists():
        os.rename(staging, target)  # atomic; also replaces an empty folder
        _hook("swapped")
        return
    if _exchange(staging, target):
        _hook("swapped")
        _remove(staging)  # the old checkpoint, now under the staging name
        return
    aside = staging_name(target, "old")
    os.rename(target, aside)
    _hook("aside")
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)  # put the old checkpoint back
        raise
    _hook("swapped")
    _remove(aside)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file under the current umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux reports it without changing it (os.umask is not thread-safe to read)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
