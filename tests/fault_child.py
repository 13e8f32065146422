"""The processes the fault tests kill or interrupt.

`python tests/fault_child.py` is a fork server: it imports torch and sae_widgets once (the slow
part), prints "ready", then for each JSON line on stdin forks a trial process, prints
"pid N", waits for it and prints "exit STATUS" (negative: killed by that signal). A trial
writes its own lines (and, for the CLI, its stderr) to the file named by "out".

Trials ("mode"):
save: save records A and B to "target" in turn, forever; "ready" after the first save. With a
    "point" ("staged", "aside", "swapped"), the second save SIGKILLs itself at that step.
fit: train an SAE for far longer than the test waits; "ready" once fit has started (it has
    taken over SIGINT: a Ctrl-C before that is the caller's, not fit's), then one JSON
    line describing the model once fit returns. handler "count" installs a SIGINT handler
    that only counts (signals arriving after fit returns cannot end the report).
cli: run `sae-widgets` (sae_widgets.cli.main) with "argv"; exit status as the CLI's.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import sae_widgets as sw
from sae_widgets.sae import folder_swap
from sae_widgets.sae.checkpoint import write_weights
from sae_widgets.sae.formats import CheckpointWeights

D_IN = 64


def record(n_units: int, seed: int) -> CheckpointWeights:
    """Different n_units for A and B: a folder mixing their files cannot load."""
    gen = torch.Generator().manual_seed(seed)
    return CheckpointWeights(
        W_enc=torch.randn(D_IN, n_units, generator=gen),
        b_enc=torch.randn(n_units, generator=gen),
        W_dec=torch.randn(n_units, D_IN, generator=gen),
        b_dec=torch.randn(D_IN, generator=gen),
        activation="topk",
        k=4,
        metadata={"sae_widgets_version": "fault-test", "seed": seed},
    )


RECORDS = {"A": (2048, 1), "B": (1024, 2)}


def save_loop(target: str, exchange: bool, point: str | None, say: Callable[[str], None]) -> None:
    folder_swap.use_exchange = exchange
    records = [record(*RECORDS["A"]), record(*RECORDS["B"])]
    write_weights(records[0], target)
    say("ready")
    if point is not None:

        def die(at: str) -> None:
            if at == point:
                os.kill(os.getpid(), signal.SIGKILL)

        folder_swap.fault_hook = die
    i = 1
    while True:
        write_weights(records[i % 2], target)
        i += 1


def data() -> np.ndarray:
    """Far from the origin and from unit scale: a model left in training space (or with an
    uninitialised b_dec) reconstructs it with an FVU in the thousands; a usable one near 1."""
    rng = np.random.default_rng(0)
    return (5_000.0 + 50.0 * rng.standard_normal((2_000, D_IN))).astype(np.float32)


def fit(activation: str, handler: str, say: Callable[[str], None]) -> None:
    if handler == "count":
        signal.signal(signal.SIGINT, lambda signum, frame: None)
    X = data()
    sae = sw.SAE(n_units=64, activation=activation, k=4, epochs=10_000, batch_size=64, seed=0)
    before = signal.getsignal(signal.SIGINT)

    def announce() -> None:  # "ready" once fit has taken over SIGINT: it has started
        while signal.getsignal(signal.SIGINT) is before:
            time.sleep(0.0002)
        say("ready")

    threading.Thread(target=announce, daemon=True).start()
    sae.fit(X, progress=False)
    model = sae.model_
    weights = model.weights()
    X_hat = sae.inverse_transform(sae.transform(X))
    report = {
        "stop_reason": sae.stop_reason_,
        "n_steps": sae.n_steps_,
        "training": model.training,
        "finite": all(bool(torch.isfinite(w).all()) for w in weights.values()),
        "fvu": float(sw.metrics.fvu(X, X_hat)),
    }
    # Block, not SIG_IGN: swapping the handler while a burst is still arriving races with
    # CPython's pending-signal check, which then prints "Signal 2 ignored due to race
    # condition" (an unraisable warning, not our fault) into the report
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    say(json.dumps(report))


def trial(job: dict[str, Any]) -> int:
    """Runs in the forked process; returns its exit status."""
    out = open(job["out"], "w", buffering=1)

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    # the server's stdout carries the protocol: the trial writes only to its own file
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out
    mode = job["mode"]
    if mode == "save":
        save_loop(job["target"], job["exchange"], job.get("point"), say)
    elif mode == "fit":
        fit(job["activation"], job["handler"], say)
    elif mode == "cli":
        from sae_widgets.cli import main

        return main(job["argv"])
    return 0


def warm_up() -> None:
    """Run each code path once before forking: a trial's first torch op (kernel set-up, lazy
    imports) would otherwise cost seconds, and Ctrl-C would always land in it."""
    import tempfile

    from sae_widgets.cli import build_parser

    build_parser()
    X = data()[:256]
    for activation in ("relu", "topk", "batchtopk", "jumprelu"):
        sae = sw.SAE(n_units=8, activation=activation, k=2, epochs=1, batch_size=32)
        sae.fit(X, progress=False)
        sw.metrics.evaluate(sae, X)
    with tempfile.TemporaryDirectory() as tmp:
        sae.save(os.path.join(tmp, "run"))
        sw.SAE.load(os.path.join(tmp, "run"))


def serve() -> None:
    # Ctrl-C as an interactive Python has it: a runner started in the background (a
    # non-interactive shell's `&`) hands its children SIGINT ignored, and fit leaves an
    # ignored SIGINT alone, so no trial could be interrupted
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)  # before any op: no thread pool for the forks to inherit
    warm_up()
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the trial: never returns into the server loop
            code = 1
            try:
                code = trial(job)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
