"""ActivationStore: shards + manifest on disk, reopened equal, atomic, checksummed."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import sae_widgets as sw
from sae_widgets.data.sharded import ShardedArray
from sae_widgets.data.store import ActivationStore, StoreError, StoreWriter


def _write(path, X, shard_size=7, **fields):
    with StoreWriter(path, X.shape[1], shard_size=shard_size) as writer:
        for lo in range(0, len(X), 5):  # appends that straddle shard boundaries
            writer.append(X[lo : lo + 5], {k: v[lo : lo + 5] for k, v in fields.items()})
    return ActivationStore(path)


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(33, 6)).astype(np.float32)


def test_store_reopened_equals_the_array_it_came_from(tmp_path, X):
    labels = np.arange(33) % 4
    store = _write(tmp_path / "acts", X, labels=labels, positions=np.arange(33) * 3)
    assert isinstance(store, sw.Dataset) and len(store) == 33 and store.n_features == 6
    assert store.X.shape == (33, 6) and store.X.n_shards == 5  # 7+7+7+7+5 rows
    np.testing.assert_array_equal(np.asarray(store.X), X)
    np.testing.assert_array_equal(store.labels, labels)
    np.testing.assert_array_equal(store.positions, np.arange(33) * 3)
    files = sorted(p.name for p in (tmp_path / "acts").iterdir())
    assert files[0] == "manifest.json" and "shard_00004.npy" in files
    # every shard is a plain .npy that numpy memory-maps
    shard = np.load(tmp_path / "acts" / "shard_00001.npy", mmap_mode="r")
    assert isinstance(shard, np.memmap)
    np.testing.assert_array_equal(shard, X[7:14])


def test_sharded_reads_match_numpy_indexing(tmp_path, X):
    A = _write(tmp_path / "acts", X).X
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 33, size=50)
    np.testing.assert_array_equal(A[rows], X[rows])
    np.testing.assert_array_equal(A[5:30], X[5:30])
    np.testing.assert_array_equal(A[::4], X[::4])
    np.testing.assert_array_equal(A[-1], X[-1])
    np.testing.assert_array_equal(A[X[:, 0] > 0], X[X[:, 0] > 0])
    np.testing.assert_array_equal(A[rows, 2], X[rows, 2])
    np.testing.assert_array_equal(np.concatenate(list(A.chunks(8))), X)
    np.testing.assert_array_equal(A.read(6, 15), X[6:15])
    with pytest.raises(ValueError, match="index out of range"):
        A[np.array([40])]
    with pytest.raises(IndexError, match="out of range"):
        A[33]


def test_store_is_a_dataset_everywhere(tmp_path):
    ds = sw.datasets.digits()
    store = _write(tmp_path / "acts", ds.X, shard_size=500, labels=ds.labels)
    sub = store[np.array([3, 1000, 1500])]
    assert isinstance(sub, sw.Dataset)
    np.testing.assert_array_equal(sub.X, ds.X[[3, 1000, 1500]])
    np.testing.assert_array_equal(sub.labels, ds.labels[[3, 1000, 1500]])
    sae = sw.SAE(n_units=32, k=4, epochs=1, seed=0).fit(store, progress=False)
    np.testing.assert_allclose(sae.transform(store), sae.transform(ds.X), atol=1e-6)
    assert sw.metrics.evaluate(sae, store) == pytest.approx(sw.metrics.evaluate(sae, ds.X))
    ex = sw.Explorer(sae, store)
    assert ex.codes.n_samples == len(ds)
    np.testing.assert_array_equal(ex.codes.csr.toarray(), sae.encode_sparse(ds.X).toarray())


def test_collect_activations_streams_to_a_store(tmp_path):
    ds = sw.datasets.digits()[:300]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))
    in_memory = sw.collect_activations(model, layer="1", data=ds)
    store = sw.collect_activations(model, layer="1", data=ds, out=tmp_path / "acts", shard_size=64)
    assert isinstance(store, sw.ActivationStore)
    reopened = sw.ActivationStore(tmp_path / "acts")
    np.testing.assert_array_equal(np.asarray(reopened.X), in_memory.X)
    np.testing.assert_array_equal(reopened.labels, ds.labels)
    assert reopened.label_names == ds.label_names
    assert (reopened.model, reopened.layer) == ("Sequential", "1")
    assert reopened.shard_rows.tolist() == [64, 64, 64, 64, 44]
    with pytest.raises(ValueError, match="already exists"):
        sw.collect_activations(model, layer="1", data=ds, out=tmp_path / "acts")
    again = sw.collect_activations(model, layer="1", data=ds[:10], out=tmp_path / "acts",
                                   overwrite=True)  # fmt: skip
    assert len(sw.ActivationStore(tmp_path / "acts")) == 10 == len(again)


def test_an_interrupted_write_is_never_read_as_whole(tmp_path, X):
    target = tmp_path / "acts"
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(target, 6, shard_size=4) as w:
        w.append(X[:20])
        raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())  # staging removed
    # a process killed mid-write leaves only its staging folder: the store does not open
    script = textwrap.dedent(f"""
        import os, numpy as np
        from sae_widgets.data.store import StoreWriter
        w = StoreWriter({str(target)!r}, 6, shard_size=4)
        w.append(np.ones((20, 6), np.float32))
        os._exit(1)
    """)
    subprocess.run([sys.executable, "-c", script], check=False)
    (staging,) = tmp_path.iterdir()
    assert staging.name.startswith(".acts.partial-")
    assert (staging / "shard_00000.npy").exists() and not (staging / "manifest.json").exists()
    with pytest.raises(StoreError, match=r"interrupted write"):
        ActivationStore(target)
    with pytest.raises(StoreError, match=r"no manifest\.json"):
        ActivationStore(staging)


def test_corruption_is_caught_by_the_checksums(tmp_path, X):
    _write(tmp_path / "acts", X)
    shard = tmp_path / "acts" / "shard_00002.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="corrupt"):
        ActivationStore(tmp_path / "acts", verify="open")
    lazy = ActivationStore(tmp_path / "acts")  # opens: shard 2 is checked when first read
    np.testing.assert_array_equal(lazy.X[:14], X[:14])
    with pytest.raises(StoreError, match=r"shard_00002.npy .* is corrupt"):
        lazy.X[15]
    os.remove(tmp_path / "acts" / "shard_00003.npy")
    with pytest.raises(StoreError, match="missing"):
        ActivationStore(tmp_path / "acts")


def test_bad_input_names_the_argument(tmp_path, X):
    with pytest.raises(StoreError, match="no activation store"):
        ActivationStore(tmp_path / "nothing")
    with pytest.raises(ValueError, match="verify must be one of"):
        ActivationStore(tmp_path, verify="sometimes")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StoreError, match="not an activation store manifest"):
        ActivationStore(tmp_path / "bad")
    with pytest.raises(ValueError, match="shape \\(m, 6\\)"):
        StoreWriter(tmp_path / "w", 6).append(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        StoreWriter(tmp_path / "w2", 6).append(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        StoreWriter(tmp_path / "w3", 6, shard_size=0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        StoreWriter(tmp_path / "w4", 6, dtype="int8")


def test_float16_shards_read_as_float32(tmp_path, X):
    with StoreWriter(tmp_path / "h", 6, shard_size=10, dtype="float16") as writer:
        writer.append(X)
    A = ActivationStore(tmp_path / "h").X
    assert isinstance(A, ShardedArray) and A.dtype == np.float32
    np.testing.assert_allclose(A[:], X.astype(np.float16).astype(np.float32))


def test_float16_store_refuses_values_it_would_store_as_infinity(tmp_path, X):
    # 1e5 is a finite float32 but beyond float16: it was stored as inf, and fit(store) then
    # failed at its first step with a non-finite loss
    rows = X.copy()
    rows[3, 1] = 1e5
    with pytest.raises(ValueError, match=r"X holds 1e\+05, beyond what dtype='float16'"):
        with StoreWriter(tmp_path / "h", 6, dtype="float16") as writer:
            writer.append(rows)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_token_rows_of_language_model_activations_are_kept(tmp_path):
    from sae_widgets.data.store import write_store
    from sae_widgets.data.tokens import Documents, TokenRows

    docs = Documents(
        texts=["a b", "c"],
        token_ids=[np.array([5, 6]), np.array([7])],
        offsets=[np.array([[0, 1], [2, 3]]), np.array([[0, 1]])],
    )
    rows = TokenRows(doc=[0, 0, 1], pos=[0, 1, 0], token_id=[5, 6, 7], documents=docs)
    ds = sw.Dataset(np.eye(3, dtype=np.float32), tokens=rows)
    store = write_store(lambda x: x, ds, tmp_path / "tok", shard_size=2)
    np.testing.assert_array_equal(store.token_doc, [0, 0, 1])
    np.testing.assert_array_equal(store.token_pos, [0, 1, 0])
    np.testing.assert_array_equal(store.token_id, [5, 6, 7])


def test_overwrite_replaces_only_a_store_and_refuses_other_targets(X, tmp_path, monkeypatch):
    """overwrite=True never deletes a user's other folder or file, nor tries to rename the
    working folder away; each refusal names `out` and leaves the target as it was."""
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("important")
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    for out, expected in [
        (project, "not an activation store"),
        (a_file, "a file, not an activation store"),
        ("", "must name a new folder"),
        (".", "must name a new folder"),
        ("..", "the working folder or one above it"),
        (a_file / "sub", "cannot create a folder"),
    ]:
        with pytest.raises(ValueError, match=expected) as err:
            StoreWriter(out, X.shape[1], overwrite=True)
        assert str(err.value).startswith("out")
    assert (project / "notes.txt").read_text() == "important"
    assert a_file.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "project"]  # no leftovers
    _write(tmp_path / "store", X)
    with StoreWriter(tmp_path / "store", X.shape[1], overwrite=True) as writer:
        writer.append(X[:10])  # a store is replaced
    assert len(ActivationStore(tmp_path / "store")) == 10
