"""Streaming training: fit(store) is fit(array) on the same rows; memory stays at the buffer."""

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.data.store import ActivationStore, StoreWriter
from sae_widgets.sae.batches import StreamBatches, TensorBatches, plan_epoch


def _store(path, X, shard_size=128):
    with StoreWriter(path, X.shape[1], shard_size=shard_size) as writer:
        writer.append(X)
    return ActivationStore(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X = sw.datasets.superposition(n=1500, n_features=48, dim=24, active=3.0, seed=0).X
    return X, _store(tmp_path_factory.mktemp("s") / "acts", X)


def _weights(sae):
    return {k: v.detach().clone() for k, v in sae.model_.state_dict().items()}


def _assert_same(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=0, msg=name)
    assert a.n_steps_ == b.n_steps_ and a.n_samples_seen_ == b.n_samples_seen_
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]


@pytest.mark.parametrize(
    ("activation", "buffer"), [("topk", 400), ("batchtopk", 400), ("topk", None), ("relu", 64)]
)
def test_fit_store_equals_fit_array(data, activation, buffer):
    X, store = data
    params = dict(n_units=64, activation=activation, k=4, epochs=2, batch_size=100, seed=3,
                  shuffle_buffer=buffer, dead_window=300)  # fmt: skip
    from_array = sw.SAE(**params).fit(X, progress=False)
    from_store = sw.SAE(**params).fit(store, progress=False)
    _assert_same(from_array, from_store)


def test_default_buffer_covers_small_data_with_one_full_permutation():
    generator = torch.Generator().manual_seed(5)
    plan = plan_epoch(1000, 64, True, 2**17, generator)
    expected = torch.randperm(1000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(plan.order, expected)  # what fit did before stores existed
    sizes = np.diff(plan.bounds)
    assert sizes.sum() == 1000 and sizes.max() - sizes.min() <= 1 and len(sizes) == 16


def test_windowed_order_is_a_permutation_that_stays_local():
    plan = plan_epoch(9920, 100, True, 1000, torch.Generator().manual_seed(0))
    assert torch.equal(plan.order.sort().values, torch.arange(9920))
    # each 1000-row window of the order is made of 32 whole blocks of 31 rows
    first = plan.order[:992]
    assert len(torch.unique(first // 31)) == 32


def test_partial_fit_over_chunks_of_a_store_equals_the_array(data):
    X, store = data
    params = dict(n_units=32, k=4, seed=1, batch_size=128)
    a, b = sw.SAE(**params), sw.SAE(**params)
    for lo in (0, 700):
        a.partial_fit(X[lo : lo + 700])
        b.partial_fit(store[lo : lo + 700])
    b2 = sw.SAE(**params).partial_fit(store)
    a2 = sw.SAE(**params).partial_fit(X)
    _assert_same(a, b)
    _assert_same(a2, b2)


class _CountingRows:
    """A row source that remembers the largest read (the store's X underneath)."""

    def __init__(self, rows):
        self.rows, self.shape, self.largest = rows, rows.shape, 0

    def take(self, indices):
        self.largest = max(self.largest, len(indices))
        return self.rows.take(indices)

    def chunks(self, size, start=0, stop=None):
        return self.rows.chunks(size, start, stop)


def test_streaming_reads_one_buffer_at_a_time_and_prefetches(data):
    X, store = data
    counting = _CountingRows(store.X)
    plan = plan_epoch(len(X), 50, True, 200, torch.Generator().manual_seed(0))
    streamed = list(StreamBatches(counting, torch.device("cpu")).batches(plan))
    in_memory = list(TensorBatches(torch.from_numpy(X)).batches(plan))
    assert len(streamed) == len(in_memory) == 30
    for s, m in zip(streamed, in_memory):
        assert torch.equal(s, m)
    assert counting.largest == 200  # never more than the buffer's rows at once
    sae = sw.SAE(n_units=16, k=2, epochs=1, batch_size=50, shuffle_buffer=200)
    sae.fit(store, progress=False)  # the store itself streams through the same path
    assert sae.n_samples_seen_ == len(X)


def test_batches_come_scaled_and_fresh(data):
    """Both sources hand out rows times the training scale, bit for bit X[rows] * scale,
    in tensors of their own: scaling in place never touches the caller's data."""
    X, store = data
    original = X.copy()
    plan = plan_epoch(len(X), 64, True, 256, torch.Generator().manual_seed(1))
    X_t = torch.from_numpy(X)
    expected = [
        X_t[plan.order[plan.bounds[b] : plan.bounds[b + 1]]] * 0.37 for b in range(plan.n_batches)
    ]
    for source in (TensorBatches(X_t), StreamBatches(store.X, torch.device("cpu"))):
        got = list(source.batches(plan, 0.37))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert torch.equal(g, e)
            g.mul_(0)  # the trainer may scale or edit a batch in place
        np.testing.assert_array_equal(X, original)


def test_a_read_error_in_the_prefetch_thread_reaches_the_caller(tmp_path, data):
    X, _ = data
    store = _store(tmp_path / "c", X, shard_size=300)
    raw = bytearray((tmp_path / "c" / "shard_00003.npy").read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / "c" / "shard_00003.npy").write_bytes(bytes(raw))
    with pytest.raises(sw.data.StoreError, match="corrupt"):
        sw.SAE(n_units=16, k=2, epochs=1, shuffle_buffer=300).fit(store, progress=False)


def test_transform_and_evaluate_stream_a_store(data):
    X, store = data
    sae = sw.SAE(n_units=32, k=4, epochs=1, seed=0).fit(X, progress=False)
    np.testing.assert_array_equal(sae.transform(store, chunk_size=100), sae.transform(X))
    assert (sae.encode_sparse(store, chunk_size=70) != sae.encode_sparse(X)).nnz == 0
    assert sw.metrics.evaluate(sae, store, chunk_size=90) == pytest.approx(
        sw.metrics.evaluate(sae, X), rel=1e-9
    )
    with pytest.raises(ValueError, match="shuffle_buffer must be None or a positive integer"):
        sw.SAE(shuffle_buffer=0).fit(store)


def test_cli_trains_on_a_store_folder(data, capsys, tmp_path):
    import json

    from sae_widgets.cli import main

    _, store = data
    argv = ["train", "--data", str(store.path), "--units", "16", "--k", "2", "--epochs", "1",
            "--quiet", "--json", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_samples"] == len(store) and printed["processes"] == 1
    assert sw.SAE.load(tmp_path / "run").components_.shape == (16, store.n_features)


def test_the_read_ahead_thread_runs_at_the_lowest_priority() -> None:
    # at equal priority its copies took CPU from the training step's threads (a streamed fit
    # ran at 0.83-0.85 of the in-memory speed; benchmarks/stream_throughput.py)
    import os
    import threading

    from sae_widgets.sae import batches

    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread priorities on this platform")
    seen: list[int] = []
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def probe() -> None:
        batches._lower_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # caller untouched
