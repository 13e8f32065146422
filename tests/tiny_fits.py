"""A tiny SAE fitted on one thread, for the widget and leftover tests (imported by name:
pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any

import torch

import sae_widgets as sw


def fit_tiny(X: Any, **options: Any) -> sw.SAE:
    """An 8-unit k=2 SAE of two epochs on X (options override), on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        settings = {"n_units": 8, "k": 2, "epochs": 2, "batch_size": 32, "seed": 0, **options}
        return sw.SAE(**settings).fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)
