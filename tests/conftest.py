"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
import torch

import sae_widgets as sw
from sae_widgets.sae import bf16_preacts


@pytest.fixture(scope="session")
def digits_sae() -> tuple[sw.SAE, sw.Dataset]:
    """A tiny TopK SAE on digits, trained once per session (about 150 steps)."""
    ds = sw.datasets.digits()
    sae = sw.SAE(n_units=40, k=5, epochs=10, batch_size=128, min_steps_per_epoch=8, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        sae.fit(ds.X, progress=False)
    finally:
        torch.set_num_threads(threads)
    return sae, ds


@pytest.fixture(scope="session")
def wider_digits_sae(digits_sae):
    """A second, wider TopK SAE on the same digits (80 units against the shared 40)."""
    _, ds = digits_sae
    sae = sw.SAE(n_units=80, k=5, epochs=10, batch_size=128, min_steps_per_epoch=8, seed=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae.fit(ds.X, progress=False)
    finally:
        torch.set_num_threads(threads)
    return sae


@pytest.fixture(scope="module")
def float32_lanes():
    """The CPU lanes multiply in float32 for a module (tests/test_lanes.py and the
    selections' tests hold them to the whole matrix's bits); the bfloat16 products of AMX
    machines are held to the float32 recomputation in tests/test_bf16_preacts.py."""
    saved = bf16_preacts.FORCED
    bf16_preacts.FORCED = False
    yield
    bf16_preacts.FORCED = saved
