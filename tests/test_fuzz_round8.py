"""Fuzz round 8: activation stores on disk, streaming fits from them, metrics of odd inputs,
save/load round trips and the scikit-learn contract. Each test pins a defect found in this
round (the fix is in the commit that added it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sae_widgets.data.store import ActivationStore, StoreError, StoreWriter


def _rows(n: int = 5, d: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((n, d)).astype(np.float32)


# ------------------------------------------------------------------ the store writer's info


@pytest.mark.parametrize(
    "key, value",
    [
        ("d", 7),
        ("n_samples", 99),
        ("dtype", "float16"),
        ("fields", {"x": "<i8"}),
        ("format", "other"),
        ("version", 2),
        ("shard_size", 1),
        ("shards", []),
        ("files", {}),
    ],
)
def test_info_naming_a_manifest_entry_is_refused_before_anything_is_written(
    tmp_path: Path, key: str, value: object
) -> None:
    # info={"d": 7} replaced the manifest's own "d": the store was published, and every
    # open of it failed (a raw KeyError for "fields"); the rows written were lost
    with pytest.raises(ValueError, match=f"info.*{key!r}"):
        StoreWriter(tmp_path / "s", 3, info={key: value})
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_field_missing_from_a_shard_is_a_store_error(tmp_path: Path) -> None:
    # a field the manifest lists but a shard does not raised a raw KeyError on open
    with StoreWriter(tmp_path / "s", 3) as writer:
        writer.append(_rows(), {"a": np.arange(5)})
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["fields"]["b"] = "<i8"
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="'b'"):
        ActivationStore(tmp_path / "s")


@pytest.mark.parametrize("labels", [[0.5, 1.7, 2, 3, 4], [0, 1, np.nan, 3, 4]])
def test_a_labels_field_must_hold_integers(tmp_path: Path, labels: list[float]) -> None:
    # float labels were stored as given and read back truncated to int64: 0.5 -> 0, 1.7 -> 1
    with pytest.raises(TypeError, match=r"fields\['labels'\].*integer"):
        with StoreWriter(tmp_path / "s", 3) as writer:
            writer.append(_rows(), {"labels": np.asarray(labels)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "first, later",
    [
        (np.array([2**63 + 5, 1], np.uint64), None),
        (np.array([1, 1]), np.array([2**64 - 1, 1], np.uint64)),
        (np.array([1, 1], np.float16), np.array([1e6, 1.0])),
        (np.array([1, 1], np.float32), np.array([1e300, 1.0])),
    ],
)
def test_field_values_its_dtype_cannot_hold_are_refused(
    tmp_path: Path, first: np.ndarray, later: np.ndarray | None
) -> None:
    # uint64 past int64 was stored wrapped to a negative number; a float64 past a float16 or
    # float32 field's range was stored as inf
    with pytest.raises(ValueError, match=r"fields\['v'\] holds .*beyond"):
        with StoreWriter(tmp_path / "s", 3) as writer:
            writer.append(_rows(2), {"v": first})
            if later is not None:
                writer.append(_rows(2), {"v": later})
    assert list(tmp_path.iterdir()) == []


def test_a_writer_without_overwrite_never_replaces_a_store_finished_meanwhile(
    tmp_path: Path,
) -> None:
    # two writers to one new folder: the second close() silently deleted the first's
    # complete store, though neither was given overwrite=True
    first, second = StoreWriter(tmp_path / "s", 3), StoreWriter(tmp_path / "s", 3)
    first.append(_rows(4))
    second.append(_rows(1))
    first.close()
    with pytest.raises(ValueError, match=r"out: .* was created while this store was written"):
        second.close()
    assert ActivationStore(tmp_path / "s").X.shape == (4, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_overwrite_replaces_only_a_store_even_one_made_meanwhile(tmp_path: Path) -> None:
    # overwrite=True checked the target when the writer was made; a folder of the user's
    # created at that path before close() was deleted with everything in it
    writer = StoreWriter(tmp_path / "s", 3, overwrite=True)
    writer.append(_rows(2))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is a folder that is not an activation store"):
        writer.close()
    assert (tmp_path / "s" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


@pytest.mark.parametrize(
    "labels, names, error, message",
    [
        (np.arange(5), ["a"], ValueError, "label_names must name every label"),
        (np.array([-2, 0, 1, 0, 1]), None, ValueError, "labels must be >= -1"),
        (np.arange(5) % 2, ["a", "a"], ValueError, "label_names must be distinct"),
        (np.arange(5) % 2, "ab", TypeError, "label_names must be a list of strings"),
    ],
)
def test_labels_a_dataset_refuses_are_refused_before_the_store_is_written(
    tmp_path: Path, labels: np.ndarray, names: object, error: type, message: str
) -> None:
    # the store was published and opened, and then Explorer, unit summaries and every
    # subset of it raised on its labels or label_names
    with pytest.raises(error, match=message):
        with StoreWriter(tmp_path / "s", 3, info={"label_names": names}) as writer:
            writer.append(_rows(), {"labels": labels})
    assert list(tmp_path.iterdir()) == []
