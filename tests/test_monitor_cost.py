"""What a TrainingMonitor redraw sends to the browser: few, small, binary messages, and no
axis re-render unless a curve leaves its axes. (No timing here: the machines are noisy;
benchmarks/monitor_browser.py measures the cost in a real browser.)"""

from __future__ import annotations

import json
from collections import Counter

import ipywidgets
import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.widgets._monitor_curves import round_up
from sae_widgets.widgets.training_monitor import MAX_POINTS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture
def sent(monkeypatch):
    """Every widget message the kernel sends: (model class, state keys, JSON bytes, buffer
    bytes)."""
    messages: list[tuple[str, tuple[str, ...], int, int]] = []
    original = ipywidgets.Widget._send

    def send(widget, msg, buffers=None):
        state = msg.get("state", {}) if isinstance(msg, dict) else {}
        binary = sum(memoryview(buffer).nbytes for buffer in buffers or [])
        messages.append((type(widget).__name__, tuple(state), len(json.dumps(msg)), binary))
        return original(widget, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", send)
    return messages


def entry(step: int, dead: float = 0.1) -> dict[str, float]:
    return {
        "step": step,
        "loss": 1.0 / step,
        "fvu": 0.5 / step**0.5,
        "l0": 4.0,
        "dead_fraction": dead,
    }


def monitor_of(steps: int, total: int) -> sw.TrainingMonitor:
    now = [0.0]
    monitor = sw.TrainingMonitor(
        sw.SAE(n_units=8, k=2), min_interval=0.0, trailing=False, clock=lambda: now[0]
    )
    monitor.total_steps = total
    monitor.history = [entry(step) for step in range(1, steps + 1)]
    now[0] = 0.01 * steps
    return monitor


def test_a_redraw_of_a_long_run_sends_float32_buffers_of_at_most_max_points(sent):
    monitor = monitor_of(5_000, 10_000)
    sent.clear()
    monitor.draw()
    lines = [m for m in sent if m[0] == "Lines"]
    assert len(lines) == 4  # one message per curve: x and y together
    # binary float32 buffers (not JSON lists of float64), decimated to MAX_POINTS
    assert all(binary <= 2 * 4 * MAX_POINTS for *_, binary in lines)
    assert sum(binary for *_, binary in sent) <= 4 * 2 * 4 * MAX_POINTS
    assert sum(size for _, _, size, _ in sent) < 4_000  # the rest is small JSON
    assert len(sent) <= 4 + 8 + 2  # curves, their scales (first draw), progress, status


def test_a_later_redraw_inside_the_axes_rerenders_no_axis(sent):
    monitor = monitor_of(1_000, 10_000)
    monitor.draw()
    # a dead fraction creeping up (0.1 -> 0.1002) stays inside its axis' rounded top (0.11)
    rising = [entry(step, dead=0.1 + 1e-5 * (step - 1_000)) for step in range(1_001, 1_021)]
    monitor.history += rising
    sent.clear()
    monitor.draw()
    by_model = Counter(name for name, *_ in sent)
    assert "LinearScale" not in by_model and "Axis" not in by_model
    assert by_model["Lines"] <= 4 and by_model["IntProgress"] == 1 and by_model["HTML"] == 1


def test_a_status_only_redraw_sends_one_small_message(sent):
    monitor = monitor_of(1_000, 10_000)
    monitor.draw()
    monitor.history.append(entry(1_001))
    sent.clear()
    monitor.draw(curves=False)
    assert [(name, keys) for name, keys, *_ in sent] == [("HTML", ("value",))]
    assert sent[0][2] < 400


def test_the_dead_fraction_axis_shrinks_only_when_the_line_would_use_under_half_of_it():
    monitor = monitor_of(10, 100)
    scale = monitor.lines["dead_fraction"].scales["y"]
    monitor.draw()
    assert scale.max == pytest.approx(0.11)  # 5% above 0.1, rounded up to 2 digits
    monitor.history = [entry(step, dead=0.08) for step in range(1, 20)]
    monitor.draw()
    assert scale.max == pytest.approx(0.11)  # 0.08 still fills most of the axis: kept
    monitor.history = [entry(step, dead=0.02) for step in range(1, 30)]
    monitor.draw()
    assert scale.max == pytest.approx(0.05)  # under half: the axis follows (at least 5%)
    assert np.isclose(scale.min, 0.0)


def test_round_up_keeps_two_significant_digits():
    assert [round_up(v) for v in (0.21, 0.2013, 1234.0, 8.4, 0.999)] == [
        0.21,
        0.21,
        1300.0,
        8.4,
        1.0,
    ]
    assert round_up(0.0) == 0.0


def test_the_monitor_axes_ask_for_few_ticks():
    monitor = sw.TrainingMonitor(sw.SAE(n_units=8, k=2))
    for figure in monitor.figures.values():
        assert all(axis.num_ticks is not None and axis.num_ticks <= 5 for axis in figure.axes)
