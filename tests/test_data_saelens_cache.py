"""SAELensCache: a SAELens activation cache (datasets' save_to_disk layout) read as a Dataset.

The fixture is written with pyarrow exactly as `datasets` writes it (datasets is not a
dependency): Arrow IPC stream files of several record batches, the hook's column as datasets'
Array2D extension type (storage list<list<float32>>, metadata json [shape, dtype]),
token_ids as fixed-size lists of int32, the features in the schema metadata and in
dataset_info.json, and state.json listing the files (SAELens' CacheActivationsRunner layout).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import sae_widgets as sw
from sae_widgets.data.store_arrow import SAELensCache
from sae_widgets.data.store_files import StoreError

HOOK = "blocks.0.hook_mlp_out"
CONTEXT, D = 4, 6


class Array2D(pa.ExtensionType):
    """datasets' Array2DExtensionType, as it appears in the files (name and metadata)."""

    def __init__(self, shape, dtype):
        self.shape, self.value_type = tuple(shape), dtype
        super().__init__(
            pa.list_(pa.list_(pa.float32())), "datasets.features.features.Array2DExtensionType"
        )

    def __arrow_ext_serialize__(self):
        return json.dumps((self.shape, self.value_type)).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls(*json.loads(serialized))


def write_cache(folder, acts, token_ids, files=2, batch=3):
    """acts: (sequences, CONTEXT, D) float32; written as datasets' save_to_disk would."""
    folder.mkdir()
    features = {
        HOOK: {"shape": [CONTEXT, D], "dtype": "float32", "_type": "Array2D"},
        "token_ids": {"feature": {"dtype": "int32", "_type": "Value"}, "length": CONTEXT,
                      "_type": "Sequence"},
    }  # fmt: skip
    kind = Array2D((CONTEXT, D), "float32")
    schema = pa.schema(
        [pa.field(HOOK, kind), pa.field("token_ids", pa.list_(pa.int32(), CONTEXT))],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    names = []
    for f, part in enumerate(np.array_split(np.arange(len(acts)), files)):
        name = f"data-{f:05d}-of-{files:05d}.arrow"
        names.append({"filename": name})
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
            for lo in range(0, len(part), batch):
                rows = part[lo : lo + batch]
                nested = pa.array(
                    [a.tolist() for a in acts[rows]], pa.list_(pa.list_(pa.float32()))
                )
                ids = pa.array(token_ids[rows].tolist(), pa.list_(pa.int32(), CONTEXT))
                w.write_batch(pa.record_batch([pa.ExtensionArray.from_storage(kind, nested), ids],
                                              schema=schema))  # fmt: skip
    info = {"citation": "", "description": "", "features": features, "homepage": "", "license": ""}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    state = {"_data_files": names, "_fingerprint": "f00d", "_format_columns": None,
             "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": None}  # fmt: skip
    (folder / "state.json").write_text(json.dumps(state))


@pytest.fixture
def cache(tmp_path):
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((11, CONTEXT, D)).astype(np.float32)
    token_ids = rng.integers(0, 50_000, size=(11, CONTEXT)).astype(np.int32)
    write_cache(tmp_path / "cache", acts, token_ids)
    return tmp_path / "cache", acts, token_ids


def test_cache_reads_as_token_rows_equal_to_what_was_written(cache):
    folder, acts, token_ids = cache
    ds = sw.SAELensCache(folder)
    flat = acts.reshape(-1, D)
    assert ds.X.shape == flat.shape and ds.hook_name == HOOK and ds.context_size == CONTEXT
    assert ds.X.n_shards == 2 + 2  # record batches of at most 3 sequences: 6 + 5 per file
    np.testing.assert_array_equal(np.asarray(ds.X), flat)
    np.testing.assert_array_equal(ds.X[[5, 0, 43]], flat[[5, 0, 43]])
    np.testing.assert_array_equal(np.concatenate(list(ds.X.chunks(7))), flat)
    np.testing.assert_array_equal(ds.token_id, token_ids.ravel())
    np.testing.assert_array_equal(ds.sequence, np.repeat(np.arange(11), CONTEXT))
    np.testing.assert_array_equal(ds.position, np.tile(np.arange(CONTEXT), 11))
    assert "n=44, d=6" in repr(ds)


def test_an_sae_fits_and_explores_the_cache_as_the_array_it_holds(cache):
    folder, acts, _ = cache
    ds = SAELensCache(folder, hook_name=HOOK)
    flat = acts.reshape(-1, D)
    a = sw.SAE(n_units=8, k=2, epochs=2, batch_size=16, seed=0).fit(ds, progress=False)
    b = sw.SAE(n_units=8, k=2, epochs=2, batch_size=16, seed=0).fit(flat, progress=False)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-5, atol=1e-6)
    ex = sw.Explorer(a, ds)
    assert ex.codes.n_samples == len(flat)


def test_not_a_cache_or_a_wrong_hook_is_refused_naming_the_path(cache, tmp_path):
    folder = cache[0]
    with pytest.raises(ValueError, match=r"hook_name must be one of .*blocks\.0\.hook_mlp_out"):
        SAELensCache(folder, hook_name="blocks.1.hook_resid_pre")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match=r"'.*empty' is not a SAELens activation cache"):
        SAELensCache(empty)
    with pytest.raises(StoreError, match="is not a folder"):
        SAELensCache(tmp_path / "missing")
    (folder / "data-00001-of-00002.arrow").write_bytes(b"not arrow")
    with pytest.raises(StoreError, match=r"data-00001-of-00002\.arrow' is not an Arrow stream"):
        SAELensCache(folder)
    with pytest.raises(TypeError, match="path must be a folder path"):
        SAELensCache(3)


def test_ragged_rows_are_refused(tmp_path):
    folder = tmp_path / "ragged"
    write_cache(folder, np.zeros((2, CONTEXT, D), np.float32), np.zeros((2, CONTEXT), np.int32))
    info = json.loads((folder / "dataset_info.json").read_text())
    info["features"][HOOK]["shape"] = [CONTEXT, D + 1]  # the files hold D values per token
    (folder / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(StoreError, match="not 7 values long"):
        SAELensCache(folder)


def test_missing_pyarrow_is_a_clear_error(cache, monkeypatch):
    import sys

    folder, _, _ = cache
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    with pytest.raises(
        ImportError, match=r"'.*cache' needs pyarrow: pip install 'sae_widgets\[saelens\]'"
    ):
        SAELensCache(folder)


def test_a_process_where_datasets_registered_its_array_type_reads_the_same(cache):
    folder, acts, _ = cache
    pa.register_extension_type(Array2D((CONTEXT, D), "float32"))  # what importing datasets does
    try:
        ds = SAELensCache(folder)
    finally:
        pa.unregister_extension_type("datasets.features.features.Array2DExtensionType")
    np.testing.assert_array_equal(np.asarray(ds.X), acts.reshape(-1, D))
