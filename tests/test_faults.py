"""Fault injection in real processes: kill -9 during saves, Ctrl-C (SIGINT) during fit and
during `sae-widgets train`. The processes run tests/fault_child.py or the installed CLI.

Marked `faults` (`make test` runs them as their own suite; about a minute on 2 cores).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.sae.checkpoint import read_weights, write_weights

pytestmark = pytest.mark.faults

CHILD = Path(__file__).with_name("fault_child.py")
sys.path.insert(0, str(CHILD.parent))
import fault_child  # noqa: E402

KILLS = 12  # per strategy
N_UNITS_OF = {n_units for n_units, _seed in fault_child.RECORDS.values()}


class ForkServer:
    """tests/fault_child.py: one import of torch, then a fork per trial (a real process each)."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.tmp = tmp
        self.n = 0
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def start(self, job: dict[str, Any], wait_for: str = "ready") -> tuple[int, Path]:
        """Fork a trial; return its pid and output file once `wait_for` appears in it."""
        self.n += 1
        out = self.tmp / f"trial-{self.n}.txt"
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({**job, "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        kind, pid = self._line().split()
        assert kind == "pid"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and wait_for in out.read_text(errors="replace"):
                return int(pid), out
            time.sleep(0.005)
        raise AssertionError(f"trial did not start: {out.read_text() if out.exists() else ''}")

    def exit_status(self) -> int:
        kind, status = self._line().split()
        assert kind == "exit"
        return int(status)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    forks = ForkServer(tmp_path_factory.mktemp("trials"))
    yield forks
    forks.close()


def _leftovers(target: Path) -> list[str]:
    return sorted(
        p.name
        for p in target.parent.iterdir()
        if p.name.startswith(f".{target.name}.saving-") or p.name.startswith(f".{target.name}.old-")
    )


def _loads_as_a_or_b(target: Path) -> int:
    record = read_weights(target)  # the folder may be missing: a copy aside is read then
    assert record.n_units in N_UNITS_OF
    sae = sw.SAE.load(target)
    assert sae.n_features_in_ == fault_child.D_IN
    return record.n_units


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_kill_9_at_each_step_of_a_save_leaves_a_loadable_checkpoint(
    server: ForkServer, tmp_path: Path, exchange: bool
) -> None:
    target = tmp_path / "run"
    points = ["staged", "swapped"] + ([] if exchange else ["aside"])
    for point in points:
        server.start({"mode": "save", "target": str(target), "exchange": exchange, "point": point})
        assert server.exit_status() == -signal.SIGKILL
        assert _loads_as_a_or_b(target) in N_UNITS_OF, point
    # the next save puts a missing folder back, then cleans every leftover
    write_weights(fault_child.record(*fault_child.RECORDS["A"]), target)
    assert _leftovers(target) == []
    assert read_weights(target).n_units == fault_child.RECORDS["A"][0]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_kill_9_at_random_times_during_saves_never_loses_the_checkpoint(
    server: ForkServer, tmp_path: Path, exchange: bool
) -> None:
    rng = random.Random(14 + exchange)
    target = tmp_path / "run"
    seen = set()
    for _ in range(KILLS):
        pid, _ = server.start({"mode": "save", "target": str(target), "exchange": exchange})
        time.sleep(rng.uniform(0.0, 0.1))
        os.kill(pid, signal.SIGKILL)
        assert server.exit_status() == -signal.SIGKILL
        seen.add(_loads_as_a_or_b(target))
        # each new save cleans what the killed ones left: leftovers never pile up
        assert len(_leftovers(target)) <= 2, _leftovers(target)
    assert seen == N_UNITS_OF  # kills landed while either record was the current one
    write_weights(fault_child.record(*fault_child.RECORDS["B"]), target)
    assert _leftovers(target) == []


def _interrupt_fit(
    server: ForkServer, activation: str, delay: float, burst: int, handler: str
) -> dict[str, Any]:
    job = {"mode": "fit", "activation": activation, "handler": handler}
    pid, out = server.start(job)
    time.sleep(delay)
    for _ in range(burst):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:  # held down past the end: the trial already reported
            break
        time.sleep(0.003)
    status = server.exit_status()
    text = out.read_text()
    assert status == 0 and "Traceback" not in text, text
    report = json.loads(text.strip().splitlines()[-1])
    assert report["stop_reason"] == "interrupted", report
    assert report["finite"] and not report["training"], report
    # user space: a module left in training space (or b_dec never initialised) gives ~1e4
    assert report["fvu"] < 5.0, report
    return report


@pytest.mark.parametrize("activation", ["relu", "topk", "batchtopk", "jumprelu"])
def test_one_ctrl_c_at_a_random_point_of_fit_returns_a_usable_model(
    server: ForkServer, activation: str
) -> None:
    rng = random.Random(activation)
    for delay in (0.0, rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.5)):  # set-up, then loop
        _interrupt_fit(server, activation, delay, burst=1, handler="default")


@pytest.mark.parametrize("activation", ["topk", "jumprelu"])
def test_ctrl_c_held_down_during_fit_returns_a_usable_model(
    server: ForkServer, activation: str
) -> None:
    rng = random.Random(activation + "held")
    for delay in (0.0, rng.uniform(0.0, 0.5)):
        # "count": signals that outlive fit hit the script's own handler, not its report
        _interrupt_fit(server, activation, delay, burst=40, handler="count")


@pytest.mark.parametrize("overwrite", [False, True], ids=["kept", "--overwrite"])
def test_ctrl_c_during_cli_training_keeps_the_existing_checkpoint(
    server: ForkServer, tmp_path: Path, overwrite: bool
) -> None:
    X = fault_child.data()[:600]
    np.save(tmp_path / "x.npy", X)
    good = tmp_path / "good"
    sw.SAE(n_units=32, k=4, epochs=2, seed=0).fit(X, progress=False).save(good)
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    argv = ["train", "--data", str(tmp_path / "x.npy"), "--units", "32", "--k", "4"]
    argv += ["--epochs", "100000", "--out", str(good)] + (["--overwrite"] if overwrite else [])
    pid, out = server.start({"mode": "cli", "argv": argv}, wait_for="SAE training")
    os.kill(pid, signal.SIGINT)
    status = server.exit_status()
    message = out.read_text().strip().splitlines()[-1]
    assert status == 130, message
    assert "interrupted after" in message
    after = {p.name: p.read_bytes() for p in good.iterdir()}
    if overwrite:
        assert after != before and f"saved the interrupted model to {good}" in message
    else:
        assert after == before
        assert f"kept the existing checkpoint in {good}" in message
        beside = tmp_path / "good.interrupted"
        assert str(beside) in message
        assert sw.SAE.load(beside).n_units == 32  # the interrupted model (maybe 0 steps), loadable
    assert sw.SAE.load(good).n_units == 32
