"""Token activation collection: tokens/s, and peak memory for 200k tokens.

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own. Figures printed:

- tokens/s of `collect_activations(model, layer, data=texts, tokenizer=tok)`, and the same
  tokens through a plain full forward pass of the model in the same process (the baseline:
  the hook stops the pass at the layer, so collection should be faster);
- peak memory (ru_maxrss) of collecting `--tokens` rows (default 200,000) in memory, and
  straight into an on-disk store (`out=`), from a corpus of N documents and from one 4x
  larger: with `max_tokens`, documents past the limit are never tokenized, and a store holds
  one group of rows and one shard at a time, so the peak must not grow with the corpus (nor,
  for a store, with the tokens: compare with `--tokens` 4x smaller). Target: under 2 GiB.

    python benchmarks/collect_tokens.py                 # MiniLM, 200k tokens
    python benchmarks/collect_tokens.py --model smollm2 --tokens 20000

The machine is shared: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

LAYERS = {"minilm": "encoder.layer.3", "smollm2": "model.layers.15"}
LIMIT_MB = 2048


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _corpus(scale: int) -> list[str]:
    import sae_widgets as sw

    paragraphs = list(sw.datasets.python_docstrings(20_000))
    return paragraphs * scale  # repeats are fine: only the count of documents matters here


def child(
    model_name: str, n_tokens: int, scale: int, baseline: bool, store: bool
) -> dict[str, float]:
    import tempfile

    import torch

    import sae_widgets as sw

    texts = _corpus(scale)
    model, tokenizer = sw.load_language_model(model_name)
    loaded_mb = _rss_mb()
    folder = tempfile.TemporaryDirectory(prefix="collect_tokens_")
    start = time.perf_counter()
    ds = sw.collect_activations(
        model,
        LAYERS[model_name],
        data=texts,
        tokenizer=tokenizer,
        max_tokens=n_tokens,
        out=f"{folder.name}/acts" if store else None,
    )
    seconds = time.perf_counter() - start
    if store:  # what a later session does: reopen it and read the tokens back
        reopened = sw.ActivationStore(f"{folder.name}/acts")
        assert len(reopened) == len(ds) and reopened.tokens is not None
    out = {
        "documents": len(texts),
        "tokens": len(ds),
        "collect_s": seconds,
        "collect_tok_s": len(ds) / seconds,
        "rss_after_load_mb": loaded_mb,
        "peak_rss_mb": _rss_mb(),
    }
    if baseline:  # the same documents, full forward, same batch size, no hook
        n_docs = int(ds.tokens.doc.max()) + 1
        docs = sorted(texts[: min(n_docs, 256)], key=len)  # little padding, as collection does
        encoded = tokenizer(
            docs, padding=True, truncation=True, max_length=512, return_tensors="pt"
        )
        n_real = int(encoded["attention_mask"].sum())
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(docs), 16):
                batch = {k: v[i : i + 16] for k, v in encoded.items()}
                model(**batch)
        out["full_forward_tok_s"] = n_real / (time.perf_counter() - start)
    folder.cleanup()
    return out


def run_child(
    model_name: str, n_tokens: int, scale: int, baseline: bool = False, store: bool = False
) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--model", model_name]
    command += ["--tokens", str(n_tokens), "--scale", str(scale)]
    if baseline:
        command.append("--baseline")
    if store:
        command.append("--store")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(LAYERS), default="minilm")
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-store", action="store_true", help="skip the on-disk store runs")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.tokens, args.scale, args.baseline, args.store)))
        return
    print(f"{args.model} ({LAYERS[args.model]}), {args.tokens:,} tokens; shared machine")
    small = run_child(args.model, args.tokens, 1, baseline=True)
    large = run_child(args.model, args.tokens, 4, baseline=False)
    ratio = small["collect_tok_s"] / small["full_forward_tok_s"]
    print(
        f"collect: {small['collect_tok_s']:,.0f} tokens/s ({small['tokens']:,} tokens in "
        f"{small['collect_s']:.1f} s); full forward baseline {small['full_forward_tok_s']:,.0f} "
        f"tokens/s; ratio {ratio:.2f}x"
    )
    runs = [("in memory, corpus x1", small), ("in memory, corpus x4", large)]
    if not args.no_store:
        quarter = max(1, args.tokens // 4)
        runs += [
            ("store, corpus x1", run_child(args.model, args.tokens, 1, store=True)),
            ("store, corpus x4", run_child(args.model, args.tokens, 4, store=True)),
            (f"store, {quarter:,} tokens", run_child(args.model, quarter, 1, store=True)),
        ]
    for name, figures in runs:
        verdict = "OK" if figures["peak_rss_mb"] < LIMIT_MB else "OVER 2 GiB"
        print(
            f"{name}: {figures['tokens']:,} tokens of {figures['documents']:,} documents, "
            f"{figures['collect_tok_s']:,.0f} tokens/s, peak RSS {figures['peak_rss_mb']:,.0f} "
            f"MB (after model load {figures['rss_after_load_mb']:,.0f} MB; target < "
            f"{LIMIT_MB:,} MB) {verdict}"
        )
    print(f"peak ratio in memory x4/x1 corpus: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}")
    if not args.no_store:
        store_x1, store_x4, store_quarter = (figures for _, figures in runs[2:])
        corpus_ratio = store_x4["peak_rss_mb"] / store_x1["peak_rss_mb"]
        print(
            f"peak ratio store x4/x1 corpus: {corpus_ratio:.2f};"
            f" store {args.tokens:,}/{quarter:,} tokens: "
            f"{store_x1['peak_rss_mb'] / store_quarter['peak_rss_mb']:.2f} (flat = bounded)"
        )


if __name__ == "__main__":
    main()
