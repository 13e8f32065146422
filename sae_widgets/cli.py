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
from typing import Any, NoReturn, TextIO

import numpy as np

from sae_widgets.sae import registry
from sae_widgets.sae.registry import ACTIVATIONS

PROG = "sae-widgets"
BUILTIN_DATA = ("digits", "shapes", "superposition")
VECTOR_FILES = (".npy", ".npz", ".safetensors")
USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class UsageError(Exception):
    """A mistake in what the user typed or pointed us at: one line, exit status 2."""


# sae_widgets.SAE's defaults for the options `train` shows them for (a test pins them equal).
TRAIN_DEFAULTS: dict[str, Any] = {"k": 16, "l1_coeff": 1.0, "epochs": 5, "batch_size": 4096}


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' after each option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text:
            return help_text
        return super()._get_help_string(action) or help_text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage lines first
        raise UsageError(message)


# ---------------------------------------------------------------------------- data


def load_vectors(spec: str, n_samples: int | None, seed: int, key: str | None) -> Any:
    """(n, d) float32 vectors: a built-in dataset's X, the array in a .npy/.npz/.safetensors,
    or an activation store folder (opened memory-mapped, streamed by training)."""
    if Path(spec).is_dir():
        from sae_widgets.data.store import ActivationStore

        store = ActivationStore(spec)
        return store if n_samples is None else store[: min(n_samples, len(store))].X
    if spec in BUILTIN_DATA:
        from sae_widgets.data import datasets

        if spec == "digits":  # fixed data: --n-samples takes the first n
            return _first(datasets.digits().X, n_samples, spec)
        maker = datasets.shapes if spec == "shapes" else datasets.superposition
        kwargs: dict[str, Any] = {} if n_samples is None else {"n": n_samples}
        return maker(seed=seed, **kwargs).X
    path = Path(spec)
    if path.suffix not in VECTOR_FILES:
        raise UsageError(
            f"--data must be one of {', '.join(BUILTIN_DATA)} or a {'/'.join(VECTOR_FILES)} "
            f"file of vectors; got {spec!r}"
        )
    if not path.is_file():
        raise UsageError(f"data file {spec!r} does not exist")
    array = _read_array(path, key)
    if array.dtype.kind not in "fiub":
        raise UsageError(f"{spec}: expected numbers; got an array of dtype {array.dtype}")
    if array.ndim != 2:
        raise UsageError(
            f"{spec}: expected a 2-D array (samples, features); got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UsageError(f"{spec}: the array is empty (shape {array.shape})")
    vectors = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise UsageError(f"{spec}: the vectors hold NaN or infinite values")
    return _first(vectors, n_samples, spec)


def _first(vectors: np.ndarray, n_samples: int | None, spec: str) -> np.ndarray:
    """The first n_samples rows; asking for more than there are is a mistake, not a quiet cap."""
    if n_samples is None:
        return vectors
    if n_samples > vectors.shape[0]:
        raise UsageError(
            f"--n-samples {n_samples}: {spec} has only {vectors.shape[0]} samples "
            "(leave --n-samples out to use them all)"
        )
    return vectors[:n_samples]


def load_labels(spec: str, n_samples: int | None, seed: int) -> np.ndarray | None:
    """The labels of a built-in dataset, or the `labels` array of an .npz file, or None."""
    if spec in BUILTIN_DATA:
        from sae_widgets.data import datasets

        if spec == "digits":
            labels = datasets.digits().labels
            return None if labels is None else labels[:n_samples]
        maker = datasets.shapes if spec == "shapes" else datasets.superposition
        kwargs: dict[str, Any] = {} if n_samples is None else {"n": n_samples}
        return maker(seed=seed, **kwargs).labels
    path = Path(spec)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "labels" in archive:
                return np.asarray(archive["labels"])[:n_samples]
    return None


def _model_vectors(args: argparse.Namespace, X: np.ndarray) -> tuple[Any, str, np.ndarray]:
    """(model, layer, the layer's activations over X) for --model/--layer."""
    from sae_widgets.cli_models import load_model
    from sae_widgets.data.activations import collect_activations

    model, layer = load_model(args.model, args.layer)
    return model, layer, collect_activations(model, layer, X).X


def _read_array(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return _pick(dict(archive.items()), key, path)
        from safetensors.numpy import load_file

        return _pick(load_file(str(path)), key, path)
    except UsageError:
        raise
    except Exception as err:  # any reader failure means the file is not what we need
        raise UsageError(f"{path}: cannot read vectors ({type(err).__name__}: {err})") from err


def _pick(arrays: dict[str, np.ndarray], key: str | None, path: Path) -> np.ndarray:
    """The array named `key`, else the only array, else the one named X."""
    if key is not None:
        if key not in arrays:
            raise UsageError(f"{path}: no array named {key!r}; it holds {', '.join(arrays)}")
        return arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if "X" in arrays:
        return arrays["X"]
    raise UsageError(f"{path}: holds {', '.join(arrays) or 'no arrays'}; choose one with --key")


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


def _uses(what: str) -> list[str]:
    """Activations that use k ("k") or an L1 penalty ("l1"), from the registry."""
    rows = registry.REGISTRY.values()
    if what == "k":
        return [row.name for row in rows if row.k != "unused"]
    return [row.name for row in rows if row.penalty == what]


def _architecture(activation: str, k: int | None) -> str:
    return f"{activation} (k={k})" if k is not None else activation


class Interrupted(Exception):
    """Ctrl-C ended the command; the message says what was kept. Exit status 130."""


def cmd_train(args: argparse.Namespace, out: TextIO) -> None:
    from sae_widgets.sae.checkpoint import check_replaceable

    spec = registry.get(args.activation)
    if args.k is not None and spec.k == "unused":
        raise UsageError(f"--k applies to {', '.join(_uses('k'))}, not {args.activation}")
    if args.l1_coeff is not None and spec.coeff != "l1_coeff":
        raise UsageError(f"--l1-coeff applies to {', '.join(_uses('l1'))}, not {args.activation}")
    _check_device(args.device)
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
    from sae_widgets.sae.checkpoint import save_sae
    from sae_widgets.sae.estimator import SAE
    from sae_widgets.sae.metrics import evaluate

    X = load_vectors(args.data, args.n_samples, args.seed, args.key)
    layer = None
    if args.model is not None:
        _model, layer, X = _model_vectors(args, X)
    elif args.layer is not None:
        raise UsageError("--layer needs --model")
    given = {
        "k": args.k,
        "l1_coeff": args.l1_coeff,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
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
    from sae_widgets.sae.checkpoint import load_sae
    from sae_widgets.sae.metrics import evaluate

    sae = load_sae(args.checkpoint)
    X = load_vectors(args.data, args.n_samples, args.seed, args.key)
    layer = None
    if args.model is not None:
        from sae_widgets.cli_models import load_model

        model, layer = load_model(args.model, args.layer)
        labels = load_labels(args.data, args.n_samples, args.seed)
        if labels is None:
            raise UsageError(
                f"--model scores a classifier against labels; {args.data} has none (use a "
                "built-in dataset or an .npz file with a 'labels' array)"
            )
        metrics = evaluate(
            sae, X, model=model, layer=layer, labels=labels, batch_size=args.batch_size
        )
    else:
        if args.layer is not None:
            raise UsageError("--layer needs --model")
        if X.shape[1] != sae.n_features_in_:
            raise UsageError(
                f"{args.data} has {X.shape[1]} features per sample but the checkpoint expects "
                f"d_in={sae.n_features_in_}"
            )
        metrics = evaluate(sae, X)
    payload = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "model": args.model,
        "layer": layer,
        "n_samples": int(X.shape[0]),
        "metrics": metrics,
    }
    source = args.data if layer is None else f"{args.data} -> {args.model} {layer}"
    rows = [("checkpoint", args.checkpoint), ("data", f"{source} ({X.shape[0]} samples)")]
    _emit(payload, [*rows, *metrics.items()], args.json, out)


def cmd_info(args: argparse.Namespace, out: TextIO) -> None:
    from sae_widgets.sae.checkpoint import describe_checkpoint

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


# ---------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_data_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--data",
        required=required,
        metavar="SOURCE",
        help="digits | shapes | superposition | a .npy/.npz/.safetensors file of vectors "
        "(n_samples x n_features) | an activation store folder",
    )
    parser.add_argument(
        "--n-samples", type=_positive_int, metavar="N", help="use N samples (built-ins: generate N)"
    )
    parser.add_argument(
        "--key", metavar="NAME", help="the array to use in a .npz/.safetensors with several"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="run the data through a torch model and use one layer's output: digits-mlp "
        "(built in) or module:function returning an nn.Module",
    )
    parser.add_argument(
        "--layer", metavar="NAME", help="the model's submodule (default for digits-mlp: net.1)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train sparse autoencoders and inspect their checkpoints.",
        epilog="Run 'sae-widgets COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train",
        formatter_class=_DefaultsFormatter,
        help="train an SAE and save a checkpoint folder",
        description="Train an SAE on vectors, print its final metrics, save a checkpoint "
        "folder (SAELens layout: cfg.json + sae_weights.safetensors).",
        epilog="example: sae-widgets train --data digits --activation topk --units 256 --k 16 "
        "--out runs/digits",
    )
    _add_data_options(train)
    train.add_argument("--activation", choices=ACTIVATIONS, default="topk", help="unit activation")
    train.add_argument("--units", type=_positive_int, default=256, help="number of units")
    train.add_argument(
        "--k",
        type=_positive_int,
        help=f"active units per sample ({', '.join(_uses('k'))}) (default: {TRAIN_DEFAULTS['k']})",
    )
    train.add_argument(
        "--l1-coeff",
        type=_positive_float,
        help=f"L1 sparsity weight ({', '.join(_uses('l1'))}) "
        f"(default: {TRAIN_DEFAULTS['l1_coeff']})",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=TRAIN_DEFAULTS["epochs"],
        help="passes over the data",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=TRAIN_DEFAULTS["batch_size"],
        help="samples per step (shrunk for small data to get enough steps per epoch)",
    )
    train.add_argument("--lr", type=_positive_float, help="learning rate (default: automatic)")
    train.add_argument(
        "--device", help="torch device, e.g. cpu or cuda (default: cpu)", metavar="DEVICE"
    )
    train.add_argument(
        "--nproc",
        type=_positive_int,
        metavar="N",
        help="train on N local processes (DistributedDataParallel via torchrun: gloo on CPU, "
        "nccl on CUDA)",
    )
    train.add_argument("--out", metavar="FOLDER", help="checkpoint folder to write")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the checkpoint in --out even if training is interrupted (by default an "
        "interrupted run saves beside it, in FOLDER.interrupted)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser(
        "eval",
        help="metrics of a checkpoint on data",
        description="Print fvu, mse, l0 and dead_fraction of a checkpoint folder (ours, "
        "SAELens, sparsify or dictionary_learning) on data. With --model, the data are the "
        "model's inputs and the spliced-model figures are added: cross-entropy and accuracy "
        "original / with the SAE spliced in / zero- and mean-ablated, loss_recovered, KL.",
        epilog="example: sae-widgets eval runs/mlp --data digits --model digits-mlp",
    )
    evaluate.add_argument("checkpoint", help="checkpoint folder")
    _add_data_options(evaluate)
    evaluate.add_argument(
        "--batch-size", type=_positive_int, default=64, help="model batch size with --model"
    )
    evaluate.set_defaults(run=cmd_eval)

    info = commands.add_parser(
        "info",
        help="architecture, shapes and training summary of a checkpoint",
        description="Describe a checkpoint folder: layout, architecture, tensor shapes, "
        "training summary and saved metrics.",
        epilog="example: sae-widgets info runs/digits",
    )
    info.add_argument("checkpoint", help="checkpoint folder")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=cmd_info)
    return parser


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
