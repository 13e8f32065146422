"""`sae-widgets`: train, evaluate and describe SAE checkpoints from a terminal.

    sae-widgets train --data digits --activation topk --units 256 --k 16 --out runs/digits
    sae-widgets eval runs/digits --data digits
    sae-widgets info runs/digits
    sae-widgets train --data digits --model digits-mlp --out runs/mlp    # a model's layer
    sae-widgets eval runs/mlp --data digits --model digits-mlp           # + spliced figures
    sae-widgets train --data acts/ --nproc 2 --out runs/acts     # a store, 2 processes (DDP)
    torchrun --nproc_per_node=2 -m sae_widgets train --data acts/ --out runs/acts

A user mistake (a missing file, a wrong shape, an unknown option value) prints one line,
``sae-widgets: error: ...``, to stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sae_widgets.cli_data import load_labels, load_vectors, model_vectors
from sae_widgets.cli_parser import PROG, UsageError, uses
from sae_widgets.cli_parser import build_parser as _build_parser
from sae_widgets.paths import WRITER_SPARE, check_name_lengths
from sae_widgets.sae import registry

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


# ---------------------------------------------------------------------------- output


def format_table(rows: Sequence[tuple[str, Any]]) -> str:
    """Two aligned columns; floats with 4 significant digits."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_format_value(value)}" for name, value in rows)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def _finite_or_null(value: Any) -> Any:
    """A copy with NaN/inf floats as None: strict JSON has no NaN (FVU of one sample is 0/0)."""
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _emit(
    payload: dict[str, Any], rows: Sequence[tuple[str, Any]], as_json: bool, out: TextIO
) -> None:
    if as_json:
        text = json.dumps(_finite_or_null(payload), indent=2, default=str, allow_nan=False)
        print(text, file=out)
    else:
        print(format_table(rows), file=out)


# ---------------------------------------------------------------------------- commands


def _check_device(device: str | None) -> None:
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"--device {device!r} is not a torch device ({err})") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device!r}: CUDA is not available on this machine")
    try:  # e.g. 'meta' parses but holds no data; 'mps' or 'xpu' may be absent
        (torch.ones(2, device=parsed) * 2).sum().cpu()
    except Exception as err:  # any failure means we cannot train there
        raise UsageError(
            f"--device {device!r} cannot run training ({type(err).__name__}: "
            f"{_one_line(str(err))[:200]}); use cpu or an available cuda device"
        ) from err


def _check_writable(folder: str) -> None:
    """UsageError now, not after training, if a checkpoint cannot be written to `folder`."""
    target = Path(os.path.realpath(folder))
    probe = target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {folder!r}: {str(probe)!r} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=probe, prefix=".sae-widgets-probe-").cleanup()
    except OSError as err:
        reason = err.strerror or str(err)
        raise UsageError(f"--out {folder!r}: cannot write in {str(probe)!r} ({reason})") from err


def _architecture(activation: str, k: int | None) -> str:
    return f"{activation} (k={k})" if k is not None else activation


class Interrupted(Exception):
    """Ctrl-C ended the command; the message says what was kept. Exit status 130."""


def cmd_train(args: argparse.Namespace, out: TextIO) -> None:
    from sae_widgets.sae.checkpoint import check_replaceable

    spec = registry.get(args.activation)
    if args.k is not None and spec.k == "unused":
        raise UsageError(f"--k applies to {', '.join(uses('k'))}, not {args.activation}")
    if args.l1_coeff is not None and spec.coeff != "l1_coeff":
        raise UsageError(f"--l1-coeff applies to {', '.join(uses('l1'))}, not {args.activation}")
    _check_device(args.device)
    if args.out is not None:  # named as typed: --out
        check_name_lengths(Path(args.out), "--out", WRITER_SPARE)
    if args.nproc is not None and args.nproc > 1 and "RANK" not in os.environ:
        if args.out is not None:
            check_replaceable(args.out)
            _check_writable(args.out)
        raise _Launched(launch_torchrun(args.nproc, args.argv))
    from sae_widgets.sae.distributed import setup_from_env

    rank, world = setup_from_env(args.device or "cpu")
    if rank == 0 and args.out is not None:  # before training, not after
        check_replaceable(args.out)
        _check_writable(args.out)
    try:
        _train(args, out, rank, world)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Run this same command under torchrun on `nproc` local processes; its exit status."""
    import subprocess

    rest = [a for i, a in enumerate(argv) if not _is_nproc(argv, i)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", "-m", "sae_widgets", *rest]
    return subprocess.run(command, check=False).returncode


def _is_nproc(argv: Sequence[str], i: int) -> bool:
    arg = argv[i]
    return arg == "--nproc" or arg.startswith("--nproc=") or (i > 0 and argv[i - 1] == "--nproc")


class _Launched(Exception):
    """The command ran under torchrun in child processes; carries their exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _train(args: argparse.Namespace, out: TextIO, rank: int, world: int) -> None:
    from sae_widgets.sae.checkpoint_sae import save_sae
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.metrics import evaluate

    X = load_vectors(args.data, args.n_samples, args.seed, args.key)
    layer = None
    if args.model is not None:
        _model, layer, X = model_vectors(args, X)
    elif args.layer is not None:
        raise UsageError("--layer needs --model")
    given = {
        "k": args.k,
        "l1_coeff": args.l1_coeff,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "precision": args.precision,
    }
    if world > 1 and (args.device or "cpu").startswith("cuda"):
        given["device"] = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU per process
    params = {name: value for name, value in given.items() if value is not None}
    sae = SAE(n_units=args.units, activation=args.activation, seed=args.seed, **params)
    sae.fit(X, progress=not args.quiet)  # Ctrl-C stops training; fit returns the model
    if rank != 0:  # only rank 0 evaluates, writes and prints
        return
    interrupted = sae.stop_reason_ == "interrupted"
    folder = args.out
    if folder is not None and interrupted and not args.overwrite and _holds_checkpoint(folder):
        folder = _beside(folder)  # never replace a finished checkpoint by an interrupted one
    try:
        metrics = evaluate(sae, X)
        saved = str(save_sae(sae, folder, metrics=metrics)) if folder is not None else None
    except KeyboardInterrupt:
        kept = f"; {args.out} is unchanged" if args.out is not None else ""
        raise Interrupted(f"interrupted before the checkpoint was saved{kept}") from None
    k = sae.model_.cfg.k
    n, d = (int(s) for s in getattr(X, "X", X).shape)
    payload = {
        "data": args.data,
        "model": args.model,
        "layer": layer,
        "n_samples": n,
        "d_in": d,
        "processes": world,
        "activation": args.activation,
        "k": k,
        "n_units": args.units,
        "n_steps": sae.n_steps_,
        "stop_reason": sae.stop_reason_,
        "metrics": metrics,
        "out": saved,
    }
    source = args.data if layer is None else f"{args.data} -> {args.model} {layer}"
    rows = [
        ("data", f"{source} ({n} x {d})"),
        ("processes", world),
        ("architecture", f"{_architecture(args.activation, k)}, {args.units} units"),
        (
            "steps",
            sae.n_steps_ if sae.stop_reason_ is None else f"{sae.n_steps_} ({sae.stop_reason_})",
        ),
        *metrics.items(),
        ("saved to", saved if saved is not None else "(not saved: no --out)"),
    ]
    _emit(payload, rows, args.json, out)
    if interrupted:
        if saved is None:
            kept = "nothing saved (no --out)"
        elif folder != args.out:
            kept = f"kept the existing checkpoint in {args.out}; saved the interrupted model to "
            kept += f"{saved} (pass --overwrite to replace it)"
        else:
            kept = f"saved the interrupted model to {saved}"
        raise Interrupted(f"training interrupted after {sae.n_steps_} steps: {kept}")


def _holds_checkpoint(folder: str) -> bool:
    path = Path(folder)
    return path.is_dir() and any(path.iterdir())  # check_replaceable: then it is a checkpoint


def _beside(folder: str) -> str:
    """A sibling folder for an interrupted run: FOLDER.interrupted (or -2, -3, ...)."""
    from sae_widgets.sae.checkpoint import check_replaceable

    base = str(Path(folder)) + ".interrupted"
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else f"{base}-{attempt}"
        try:
            check_replaceable(candidate)
        except ValueError:
            continue
        return candidate
    raise UsageError(f"no free folder beside {folder!r} for the interrupted model")


def cmd_eval(args: argparse.Namespace, out: TextIO) -> None:
    from sae_widgets.sae.checkpoint_sae import load_sae
    from sae_widgets.sae.metrics import evaluate

    check_name_lengths(Path(args.checkpoint), "checkpoint")  # named as typed
    sae = load_sae(args.checkpoint)
    X = load_vectors(args.data, args.n_samples, args.seed, args.key)
    n, d = (int(s) for s in getattr(X, "X", X).shape)  # a store is a Dataset: its X has them
    layer = None
    if args.model is not None:
        from sae_widgets.cli_models import load_model

        model, layer = load_model(args.model, args.layer)
        if getattr(X, "tokens", None) is not None:  # a language model's store: next tokens
            labels = None
        else:
            labels = load_labels(args.data, args.n_samples, args.seed)
            if labels is None:
                raise UsageError(
                    f"--model scores a classifier against labels; {args.data} has none (use "
                    "a built-in dataset, an .npz file with a 'labels' array or an activation "
                    "store written with labels)"
                )
        metrics = evaluate(
            sae, X, model=model, layer=layer, labels=labels, batch_size=args.batch_size
        )
    else:
        if args.layer is not None:
            raise UsageError("--layer needs --model")
        if d != sae.n_features_in_:
            raise UsageError(
                f"{args.data} has {d} features per sample but the checkpoint expects "
                f"d_in={sae.n_features_in_}"
            )
        metrics = evaluate(sae, X)
    payload = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "model": args.model,
        "layer": layer,
        "n_samples": n,
        "metrics": metrics,
    }
    source = args.data if layer is None else f"{args.data} -> {args.model} {layer}"
    rows = [("checkpoint", args.checkpoint), ("data", f"{source} ({n} samples)")]
    _emit(payload, [*rows, *metrics.items()], args.json, out)


def cmd_info(args: argparse.Namespace, out: TextIO) -> None:
    from sae_widgets.sae.checkpoint import describe_checkpoint

    check_name_lengths(Path(args.checkpoint), "checkpoint")  # named as typed
    info = describe_checkpoint(args.checkpoint)
    rows: list[tuple[str, Any]] = [
        ("checkpoint", info["checkpoint"]),
        ("layout", info["layout"]),
        ("architecture", _architecture(info["activation"], info["k"])),
        ("d_in", info["d_in"]),
        ("n_units", info["n_units"]),
        *((f"shape {name}", " x ".join(map(str, shape))) for name, shape in info["shapes"].items()),
    ]
    if info["sae_widgets_version"] is not None:
        rows.append(("saved by", f"sae_widgets {info['sae_widgets_version']}"))
    params = info["params"] or {}
    coeff = registry.get(info["activation"]).coeff
    shown = ("epochs", "batch_size", "lr", "seed") + ((coeff,) if coeff else ())
    for name in shown:
        if params.get(name) is not None:
            rows.append((f"param {name}", params[name]))
    for name, value in (info["training"] or {}).items():
        rows.append((f"training {name}", value))
    for name, value in (info["metrics"] or {}).items():
        rows.append((f"metric {name}", value))
    _emit(info, rows, args.json, out)


def build_parser() -> argparse.ArgumentParser:
    """The `sae-widgets` parser, its subcommands bound to the functions here."""
    return _build_parser({"train": cmd_train, "eval": cmd_eval, "info": cmd_info})


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sae-widgets`; returns the exit status."""
    from sklearn.exceptions import NotFittedError

    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        args.run(args, sys.stdout)
    except _Launched as launched:
        return launched.status
    except SystemExit as done:  # --help, or argparse giving up on its own
        return done.code if isinstance(done.code, int) else 0
    except (UsageError, ValueError, TypeError, OSError, NotFittedError) as err:
        print(f"{PROG}: error: {_one_line(str(err))}", file=sys.stderr)
        return USAGE_ERROR
    except Interrupted as stop:
        print(f"{PROG}: {stop}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
