"""`ShardedArray`: a read-only (n, d) float32 array over fixed-size `.npy` shards.

Each shard is memory-mapped on first use (numpy's `np.load(mmap_mode="r")`), so opening a
store of any size costs nothing and reading rows costs only those rows. Reads return float32
numpy arrays; the shards may hold float16 to halve the disk.

It is what `ActivationStore.X` holds, and it speaks the small protocol the SAE and the
analysis layer stream over (`shape`, `read(start, stop)`, `chunks(size)`), so a store never
has to fit in memory. Anything else that asks for a plain array (`np.asarray(store.X)`) gets
one, at the cost of reading everything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data._arrays import _normalise_indices

__all__ = ["ShardedArray"]

_OPEN_SHARDS = 64  # memory maps kept open at once (each holds a file descriptor)


class ShardedArray:
    """Read-only rows of `paths` (each an (rows_i, d) `.npy` file), as one (n, d) array.

    on_open: called with a shard's number the first time it is opened (checksum checks).
    """

    ndim = 2

    def __init__(
        self,
        paths: Sequence[Path],
        rows: Sequence[int],
        d: int,
        stored_dtype: Any = np.float32,
        on_open: Callable[[int], None] | None = None,
    ) -> None:
        if len(paths) != len(rows) or not paths:
            raise ValueError("ShardedArray needs one row count per shard and at least one shard")
        self.paths = [Path(p) for p in paths]
        self.rows = np.asarray(rows, dtype=np.int64)
        self.starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(self.rows, out=self.starts[1:])
        self.shape = (int(self.starts[-1]), int(d))
        self.dtype = np.dtype(np.float32)
        self.stored_dtype = np.dtype(stored_dtype)
        self._on_open = on_open
        self._opened: set[int] = set()
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()

    # ---------------------------------------------------------------- shards
    @property
    def n_shards(self) -> int:
        return len(self.paths)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the rows (what reading everything would cost)."""
        return self.size * self.stored_dtype.itemsize

    def shard(self, i: int) -> np.ndarray:
        """Shard `i` as a read-only memory map of its stored dtype."""
        cached = self._maps.get(i)
        if cached is not None:
            self._maps.move_to_end(i)
            return cached
        if i not in self._opened and self._on_open is not None:
            self._on_open(i)
        self._opened.add(i)
        try:
            array = np.load(self.paths[i], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"shard {self.paths[i]} cannot be read: {err}") from err
        expected = (int(self.rows[i]), self.shape[1])
        if array.shape != expected or array.dtype != self.stored_dtype:
            raise ValueError(
                f"shard {self.paths[i]} holds {array.dtype} {array.shape}; the manifest says "
                f"{self.stored_dtype} {expected}"
            )
        self._maps[i] = array
        if len(self._maps) > _OPEN_SHARDS:
            self._maps.popitem(last=False)
        return array

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        """Shard number holding each of `rows` (int64 indices in [0, n))."""
        return np.searchsorted(self.starts, rows, side="right") - 1

    # ---------------------------------------------------------------- reads
    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start:stop (clipped to [0, n]) as one float32 array."""
        n = self.shape[0]
        start, stop = max(0, min(int(start), n)), max(0, min(int(stop), n))
        out = np.empty((max(0, stop - start), self.shape[1]), dtype=np.float32)
        if stop <= start:
            return out
        first = int(self.shard_of(np.array([start]))[0])
        i, pos = first, start
        while pos < stop:
            lo = pos - int(self.starts[i])
            hi = min(stop, int(self.starts[i + 1])) - int(self.starts[i])
            out[pos - start : pos - start + hi - lo] = self.shard(i)[lo:hi]
            pos += hi - lo
            i += 1
        return out

    def chunks(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive float32 blocks of at most `size` rows covering rows start:stop."""
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"size must be a positive integer; got {size!r}")
        stop = self.shape[0] if stop is None else min(int(stop), self.shape[0])
        for lo in range(int(start), stop, int(size)):
            yield self.read(lo, min(lo + int(size), stop))

    def take(self, rows: Any) -> np.ndarray:
        """Rows at the given indices (any order, repeats allowed) as one float32 array."""
        idx = _normalise_indices(rows, self.shape[0], "index")
        out = np.empty((idx.size, self.shape[1]), dtype=np.float32)
        if idx.size == 0:
            return out
        shard_ids = self.shard_of(idx)
        order = np.argsort(shard_ids, kind="stable")
        sorted_shards = shard_ids[order]
        bounds = np.flatnonzero(np.diff(sorted_shards)) + 1
        for group in np.split(order, bounds):
            i = int(shard_ids[group[0]])
            out[group] = self.shard(i)[idx[group] - self.starts[i]]
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        columns: Any = slice(None)
        if isinstance(key, tuple):
            if len(key) != 2:
                raise IndexError(f"too many indices for a 2-D array: {key!r}")
            key, columns = key
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            n = self.shape[0]
            if not -n <= int(key) < n:
                raise IndexError(f"index {key} is out of range for {n} rows")
            row = int(key) % n
            result: np.ndarray = self.read(row, row + 1)[0][columns]
            return result
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            rows = self.read(start, stop) if step == 1 else self.take(np.arange(start, stop, step))
        else:
            rows = self.take(key)
        whole = isinstance(columns, slice) and columns == slice(None)
        return rows if whole else rows[:, columns]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row in memory (reads the whole store)."""
        full = self.read(0, self.shape[0])
        return full if dtype is None else full.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, shards={self.n_shards}, {self.stored_dtype})"
