"""The `sae-widgets` command line: its options, their checks and their help text."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from sae_widgets import __version__
from sae_widgets.sae import registry
from sae_widgets.sae.registry import ACTIVATIONS

PROG = "sae-widgets"


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


def _non_empty(text: str) -> str:
    """A name or path: an empty one (an unset shell variable) never meant the current folder
    or a default."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a non-empty value, got {text!r}")
    return text


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
        "--key",
        type=_non_empty,
        metavar="NAME",
        help="the array to use in a .npz/.safetensors with several",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--model",
        type=_non_empty,
        metavar="MODEL",
        help="run the data through a torch model and use one layer's output: digits-mlp "
        "(built in) or module:function returning an nn.Module",
    )
    parser.add_argument(
        "--layer",
        type=_non_empty,
        metavar="NAME",
        help="the model's submodule (default for digits-mlp: net.1)",
    )


def uses(what: str) -> list[str]:
    """Activations that use k ("k") or an L1 penalty ("l1"), from the registry."""
    rows = registry.REGISTRY.values()
    if what == "k":
        return [row.name for row in rows if row.k != "unused"]
    return [row.name for row in rows if row.penalty == what]


def build_parser(commands: dict[str, Callable[..., None]]) -> argparse.ArgumentParser:
    """The parser; each subcommand's `run` default is `commands[name]`."""
    parser = _Parser(
        prog=PROG,
        description="Train sparse autoencoders and inspect their checkpoints.",
        epilog="Run 'sae-widgets COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True

    train = subparsers.add_parser(
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
        help=f"active units per sample ({', '.join(uses('k'))}) (default: {TRAIN_DEFAULTS['k']})",
    )
    train.add_argument(
        "--l1-coeff",
        type=_positive_float,
        help=f"L1 sparsity weight ({', '.join(uses('l1'))}) "
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
        "--precision",
        choices=("fp32", "bf16"),
        help="bf16: mixed precision on a GPU (the encoder matmul in bfloat16; default fp32)",
    )
    train.add_argument(
        "--nproc",
        type=_positive_int,
        metavar="N",
        help="train on N local processes (DistributedDataParallel via torchrun: gloo on CPU, "
        "nccl on CUDA)",
    )
    train.add_argument(
        "--out", type=_non_empty, metavar="FOLDER", help="checkpoint folder to write"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the checkpoint in --out even if training is interrupted (by default an "
        "interrupted run saves beside it, in FOLDER.interrupted)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=commands["train"])

    evaluate = subparsers.add_parser(
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
    evaluate.set_defaults(run=commands["eval"])

    info = subparsers.add_parser(
        "info",
        help="architecture, shapes and training summary of a checkpoint",
        description="Describe a checkpoint folder: layout, architecture, tensor shapes, "
        "training summary and saved metrics.",
        epilog="example: sae-widgets info runs/digits",
    )
    info.add_argument("checkpoint", help="checkpoint folder")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=commands["info"])
    return parser
