"""Fuzz round 8: activation stores on disk, streaming fits from them, metrics of odd inputs,
save/load round trips and the scikit-learn contract. Each test pins a defect found in this
round (the fix is in the commit that added it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sae_widgets.data.store import StoreWriter


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
