"""Refusing an allocation larger than the machine: shared by data/ (generated datasets,
store buffers) and sae/ (an SAE's weights), which never import each other (DESIGN.md)."""

from __future__ import annotations

import os

__all__ = ["check_memory"]


def check_memory(
    nbytes: int, what: str, advice: str = "ask for fewer samples or dimensions"
) -> None:
    """Refuse (ValueError) to allocate more than this machine's physical memory: numpy would
    raise a MemoryError, or the kernel kill the process when the pages are touched."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX: let numpy decide
        return
    if nbytes > total:
        raise ValueError(
            f"{what} would need {nbytes / 2**30:.3g} GiB, more than this machine's "
            f"{total / 2**30:.3g} GiB of memory; {advice}"
        )
