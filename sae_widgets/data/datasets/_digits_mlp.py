"""`digits_mlp()`: a small classifier of the 8x8 digits, trained on the spot, deterministically.

A built-in model to collect activations from and to splice SAEs into (tests, the CLI's
`--model digits-mlp`, tutorials). Full-batch Adam on a fixed 75 % split of
`digits()` takes about a second on a CPU; the same arguments give the same weights on the
same machine and thread count.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from sae_widgets.data.checks import check_seed
from sae_widgets.data.datasets._digits import digits

__all__ = ["DigitMLP", "digits_mlp"]


class DigitMLP(nn.Module):
    """64 pixels -> hidden -> 64 -> 10 logits; layers in `net` ("net.1": the first ReLU).

    Accepts flat (b, 64) rows or (b, 1, 8, 8) / (b, 8, 8) images.
    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, 10)
        )
        self.train_indices = np.zeros(0, dtype=np.int64)
        self.test_indices = np.zeros(0, dtype=np.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def digits_mlp(hidden: int = 128, steps: int = 300, seed: int = 0) -> DigitMLP:
    """A DigitMLP trained on 75 % of `digits()` (stratified, fixed split), in eval mode.

    The split is kept on the model: `model.train_indices`, `model.test_indices` (indices
    into `digits()`). Test accuracy is about 95 % with the defaults.
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive integer; got {hidden!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    seed = check_seed(seed)  # torch.manual_seed overflows past 2**64 with its own message
    key = (hidden, steps, seed)
    if key not in _TRAINED:  # deterministic: train once per process, hand out fresh copies
        _TRAINED[key] = _train(hidden, steps, seed)
    weights, train_idx, test_idx = _TRAINED[key]
    model = DigitMLP(hidden)
    model.load_state_dict(weights)
    model.train_indices, model.test_indices = train_idx.copy(), test_idx.copy()
    return model.eval()


_TRAINED: dict[tuple[int, int, int], tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]] = {}


def _train(
    hidden: int, steps: int, seed: int
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    ds = digits()
    assert ds.labels is not None
    train_idx, test_idx = train_test_split(
        np.arange(len(ds)), test_size=0.25, random_state=0, stratify=ds.labels
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = DigitMLP(hidden)
    finally:
        torch.random.set_rng_state(state)
    X = torch.from_numpy(ds.X[train_idx])
    y = torch.from_numpy(ds.labels[train_idx]).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return weights, np.sort(train_idx), np.sort(test_idx)
