"""TrainingMonitor: fed by the real SAE's fit callbacks, throttled, stoppable from its button."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.widgets.training_monitor import MIN_DEAD_SPAN

# bqscales (bqplot's scales) emits a traitlets DeprecationWarning when first imported, and
# pyproject's filter list does not name that module yet: bqplot is first imported in a test.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture(scope="module")
def X():
    return sw.datasets.digits().X


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny SAEs gain nothing from more threads, and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_sae(**params):
    defaults = dict(n_units=32, k=4, epochs=4, batch_size=128, min_steps_per_epoch=8, seed=0)
    return sw.SAE(**{**defaults, **params})


def test_blocking_fit_with_the_monitor_as_callback_draws_every_logged_step(X):
    sae = small_sae(log_every=2)
    monitor = sw.TrainingMonitor(sae)
    sae.fit(X, callbacks=[monitor], progress=False)
    monitor.draw()  # what the trailing timer does min_interval after the last step
    history = sae.history_
    assert [h["step"] for h in monitor.history] == [h["step"] for h in history]
    np.testing.assert_array_equal(monitor.lines["fvu"].x, [h["step"] for h in history])
    for key in ("loss", "fvu", "l0", "dead_fraction"):
        expected = np.array([h[key] for h in history], dtype=np.float32)
        np.testing.assert_array_equal(monitor.lines[key].y, expected)
        assert monitor.lines[key].y.dtype == np.float32
    assert monitor.progress.value == history[-1]["step"]
    assert f"step {history[-1]['step']}" in monitor.status.value
    assert type(monitor.figure).__name__ == "Figure"


def test_redraws_are_throttled_to_min_interval():
    sae = small_sae()
    now = [0.0]
    monitor = sw.TrainingMonitor(sae, min_interval=1.0, trailing=False, clock=lambda: now[0])
    for i in range(100):  # one logged step every 0.25 s (binary fractions: exact times)
        now[0] = 0.25 * i
        assert monitor({"step": i + 1, "loss": 1.0 / (i + 1), "fvu": 0.5, "l0": 4.0}) is True
    # Drawn at t = 0, 1, 2, ... 24 s: 25 redraws for 100 steps.
    assert monitor.n_draws == 25
    assert len(monitor.lines["loss"].y) == 97  # the steps logged up to the last redraw
    monitor.draw()
    np.testing.assert_allclose(monitor.lines["loss"].y, 1.0 / np.arange(1, 101), rtol=1e-6)
    # Missing metrics are gaps (NaN), not errors.
    assert np.isnan(monitor.lines["dead_fraction"].y).all()


def test_by_default_the_browser_is_asked_to_redraw_every_2_s_at_most():
    """Each redraw costs a browser ~0.1 s of CPU (benchmarks/monitor_browser.py): a default
    monitor on a 10 s run of 400 logged steps redraws 6 times, curves included, not 400."""
    now = [0.0]
    monitor = sw.TrainingMonitor(small_sae(), trailing=False, clock=lambda: now[0])
    monitor.total_steps = 400
    for i in range(399):  # one logged step every 1/40 s; the 400th ends the run
        now[0] = i / 40
        monitor({"step": i + 1, "loss": 1.0, "fvu": 0.5, "l0": 4.0, "dead_fraction": 0.0})
    assert monitor.n_draws == 5  # at 0, 2, 4, 6 and 8 s
    assert monitor.n_curve_draws == 5  # the first, of one point, draws no line yet
    now[0] = 10.0
    monitor({"step": 400, "loss": 1.0, "fvu": 0.5, "l0": 4.0, "dead_fraction": 0.0})
    assert monitor.n_draws == 6 and monitor.lines["loss"].x[-1] == 400  # the end is drawn


def test_trailing_redraw_shows_the_last_steps_without_being_asked():
    now = [0.0]
    monitor = sw.TrainingMonitor(
        small_sae(), min_interval=0.05, curve_interval=0.1, clock=lambda: now[0]
    )
    monitor({"step": 1, "loss": 1.0})  # drawn at once (the status; a line needs two points)
    assert monitor.n_draws == 1 and monitor.progress.value == 1
    monitor({"step": 2, "loss": 0.5})  # throttled: a timer will draw it
    timer = monitor._timer
    assert timer is not None and len(monitor.lines["loss"].y) == 0
    timer.join()  # the status line's timer: the curves' own interval has not passed
    assert "step 2 ·" in monitor.status.value and len(monitor.lines["loss"].y) == 0
    curve_timer = monitor._curve_timer
    assert curve_timer is not None
    curve_timer.join()  # the curves' timer shows the last step too
    assert monitor.lines["loss"].y.tolist() == [1.0, 0.5] and monitor.progress.value == 2


def test_long_runs_are_decimated_but_keep_the_latest_point():
    from sae_widgets.widgets.training_monitor import MAX_POINTS

    monitor = sw.TrainingMonitor(small_sae(), min_interval=0.0)
    for i in range(3 * MAX_POINTS):
        monitor.history.append({"step": float(i + 1), "loss": float(i)})
    monitor.draw()
    assert len(monitor.lines["loss"].x) == MAX_POINTS
    assert monitor.lines["loss"].x[-1] == 3 * MAX_POINTS


def test_background_fit_runs_to_the_end_and_reports_it(X):
    from sae_widgets.sae.training import planned_steps

    sae = small_sae(epochs=3)
    monitor = sw.TrainingMonitor(sae)
    thread = monitor.fit(X)
    assert monitor.join(timeout=120) is sae
    assert not thread.is_alive() and not monitor.running
    last = sae.history_[-1]["step"]
    assert monitor.total_steps == planned_steps(sae, len(X)) == last
    assert monitor.progress.max == last and monitor.progress.value == last
    assert monitor.status.value.startswith(f"done: {last} steps")
    assert monitor.stop_button.disabled


def test_stop_button_ends_background_training_cleanly(X):
    sae = small_sae(epochs=50, log_every=1)
    monitor = sw.TrainingMonitor(sae)

    def press_stop_at_step_10(metrics):
        if metrics["step"] == 10:
            monitor.stop_button.click()  # as a user would, while training runs

    monitor.fit(X, callbacks=[press_stop_at_step_10])
    monitor.join(timeout=120)
    assert sae.history_[-1]["step"] == 10 < monitor.total_steps
    assert monitor.status.value.startswith("stopped at step 10")
    assert sae.transform(X[:5]).shape == (5, 32)  # the model stays usable
    assert monitor.progress.value == 10 and monitor.stop_button.disabled


def test_join_raises_what_training_raised(X):
    monitor = sw.TrainingMonitor(small_sae())
    bad = X.copy()
    bad[3, 2] = np.nan
    monitor.fit(bad)
    with pytest.raises(ValueError, match=r"NaN|finite"):
        monitor.join(timeout=60)
    assert monitor.status.value.startswith("failed at step 0")


def test_monitor_validates_its_arguments(X):
    with pytest.raises(TypeError, match="sae"):
        sw.TrainingMonitor(X)
    with pytest.raises(ValueError, match="min_interval"):
        sw.TrainingMonitor(small_sae(), min_interval=-1)


def test_dead_fraction_axis_starts_at_zero_and_grows_with_the_data():
    monitor = sw.TrainingMonitor(small_sae(), min_interval=0.0, trailing=False)
    scale = monitor.lines["dead_fraction"].scales["y"]
    monitor({"step": 1, "loss": 1.0, "dead_fraction": 0.0})
    monitor({"step": 2, "loss": 0.5, "dead_fraction": 0.0})
    # No dead unit: a line along the bottom of a 0..5% axis, not a lone 0 mid-height.
    assert (scale.min, scale.max) == (0.0, MIN_DEAD_SPAN)
    monitor({"step": 3, "loss": 0.4, "dead_fraction": 0.2})
    assert scale.min == 0.0 and scale.max == pytest.approx(0.21)
    monitor({"step": 4, "loss": 0.4, "dead_fraction": 1.0})
    assert scale.max == 1.0  # a share never needs more
    dead_axis = monitor.figures["dead_fraction"].axes[1]
    assert dead_axis.tick_format == ".1~%"


def test_status_shows_steps_per_second_and_eta():
    now = [0.0]
    monitor = sw.TrainingMonitor(
        small_sae(), min_interval=0.0, trailing=False, clock=lambda: now[0]
    )
    monitor.total_steps = 100
    for i in range(1, 11):  # 10 logged steps, one every 0.5 s: 2 steps/s, 90 left -> 45 s
        now[0] = 0.5 * (i - 1)
        monitor({"step": i, "loss": 1.0})
    assert monitor.steps_per_s == pytest.approx(2.0)
    assert "2.0 steps/s" in monitor.status.value and "ETA 45 s" in monitor.status.value


def test_throttle_widens_when_a_redraw_is_slow():
    """A redraw that takes >= 0.25 s (on the monitor's clock) may use at most 5% of the time."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.25  # every reading advances: a draw (two readings) costs 0.25 s
        return now[0]

    monitor = sw.TrainingMonitor(small_sae(), min_interval=0.1, trailing=False, clock=clock)
    monitor({"step": 1, "loss": 1.0})
    assert monitor.n_draws == 1 and monitor.interval >= 0.25 / 0.05
    for i in range(2, 12):  # 10 more steps over 2.5 s of this clock: no second redraw yet
        monitor({"step": i, "loss": 1.0})
    assert monitor.n_draws == 1


def test_the_monitor_says_what_its_dead_fraction_means():
    monitor = sw.TrainingMonitor(sw.SAE(n_units=8, k=2, dead_window=1000))
    assert "1,000 training samples" in monitor.dead_note.value
    assert "sw.metrics.evaluate" in monitor.dead_note.value


def test_a_plain_fit_callback_learns_the_run_length_and_shows_an_eta(X):
    """sae.fit(X, callbacks=[monitor]) plans its steps before the first one (fit_steps_),
    so a monitor attached that way (not through monitor.fit) shows "step i / n" and an ETA
    as it trains; callbacks and history_ see the same entries."""
    sae = small_sae(log_every=1)
    monitor = sw.TrainingMonitor(sae, min_interval=0.0, trailing=False)
    seen = []
    sae.fit(X, callbacks=[monitor, lambda entry: seen.append(monitor.status.value)])
    assert monitor.total_steps == sae.n_steps_
    assert f"step 1 / {sae.n_steps_}" in seen[0]
    assert all("steps/s" in status and "ETA" in status for status in seen[1:])
    assert monitor.history == sae.history_
    sae.partial_fit(X, callbacks=[monitor])  # not planned: past the fit's total, no ETA
    assert monitor.total_steps is None
    assert f"step {sae.n_steps_} ·" in monitor.status.value and "ETA" not in monitor.status.value
