"""How a TrainingMonitor words its status line: the latest step, rate and ETA, or a run's
outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_widgets.wording import noun_for

__all__ = ["duration", "outcome", "status_line"]


def status_line(
    latest: Mapping[str, float], total_steps: int | None, rate: float | None, elapsed: float
) -> str:
    """step i / n · loss · FVU · L0 · dead % · steps/s · ETA · seconds so far."""
    total = f" / {total_steps}" if total_steps else ""
    parts = [f"step {int(latest['step'])}{total}"]
    for key, fmt in (("loss", "loss {:.4g}"), ("fvu", "FVU {:.3f}"), ("l0", "L0 {:.1f}")):
        if key in latest:
            parts.append(fmt.format(latest[key]))
    if "dead_fraction" in latest:
        parts.append(f"dead {100 * latest['dead_fraction']:.1f}%")
    if rate is not None:
        parts.append(f"{rate:.1f} steps/s")
        if total_steps and rate > 0:
            left = max(0, total_steps - int(latest["step"])) / rate
            parts.append(f"ETA {duration(left)}")
    parts.append(f"{elapsed:.1f} s")
    return " · ".join(parts)


def outcome(n: int, stop_reason: Any, error: BaseException | None) -> str:
    """How a run that logged `n` steps ended (`stop_reason` as in ``sae.stop_reason_``)."""
    if error is not None:
        return f"failed at step {n}: {type(error).__name__}: {error}"
    if stop_reason == "callback":
        return f"stopped at step {n}"
    if stop_reason == "interrupted":
        return f"interrupted at step {n}"
    return f"done: {n} {noun_for(n, 'step')}"


def duration(seconds: float) -> str:
    """12 s, 3 min 20 s, 1 h 05 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
