"""The lasso's anchor grid: a WebGL scatter reports which lattice cells a lasso enclosed, and
these map cells back to samples. Pure numpy, so the mapping is testable without a browser."""

from __future__ import annotations

from typing import Any

import numpy as np


def _grid_bounds(coords: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) around the points, never of zero width."""
    x0, y0 = (float(v) for v in coords[:, :2].min(axis=0))
    x1, y1 = (float(v) for v in coords[:, :2].max(axis=0))
    return x0, max(x1, x0 + 1e-6), y0, max(y1, y0 + 1e-6)


def grid_anchors(coords: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the centres of a grid x grid lattice over the points (cell i*grid + j is
    row i from the bottom, column j), as float32."""
    x0, x1, y0, y1 = _grid_bounds(coords)
    centres = (np.arange(grid) + 0.5) / grid
    xs, ys = np.meshgrid(x0 + centres * (x1 - x0), y0 + centres * (y1 - y0))
    return xs.ravel().astype(np.float32), ys.ravel().astype(np.float32)


def samples_in_cells(coords: np.ndarray, cells: Any, grid: int) -> np.ndarray:
    """Samples (ascending) whose point lies in one of `cells` of the `grid_anchors` lattice."""
    x0, x1, y0, y1 = _grid_bounds(coords)
    column = np.clip(((coords[:, 0] - x0) / (x1 - x0) * grid).astype(np.int64), 0, grid - 1)
    row = np.clip(((coords[:, 1] - y0) / (y1 - y0) * grid).astype(np.int64), 0, grid - 1)
    inside = np.zeros(grid * grid, dtype=bool)
    inside[np.asarray(cells, dtype=np.int64)] = True
    return np.flatnonzero(inside[row * grid + column])
