"""Procedural dSprites-like images: one white shape on black, anti-aliased, from numpy alone.

Each shape is drawn from an analytic signed distance (negative inside) so edges get a soft
one-pixel ramp; rendering is vectorised over samples in chunks.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from sae_widgets.data.checks import check_int, check_memory, check_seed
from sae_widgets.data.dataset import Attribute, Dataset

SHAPE_NAMES = ["square", "ellipse", "triangle", "heart"]
FACTOR_NAMES = ["shape", "scale", "rotation", "x", "y"]
# radius (as a fraction of the image size) of a shape at scale 1; shapes fit in this circle
_RADIUS_FRACTION = 0.2
_SCALE_RANGE = (0.5, 1.0)
_CHUNK_PIXELS = 1 << 22  # samples per chunk * pixels per image: bounds temporary memory
# values an attribute accepts: far past the frame (x, y) or any visible size (scale), yet every
# pixel stays finite in float32; rotation takes any finite angle (whole turns are dropped)
_LIMITS: dict[str, tuple[float, float] | None] = {
    "shape": (0.0, len(SHAPE_NAMES) - 1.0),
    "scale": (1e-3, 1e3),
    "rotation": None,
    "x": (-1e3, 1e3),
    "y": (-1e3, 1e3),
}


def _length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y)


def _sd_square(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    half = 0.72  # corners at radius ~1
    qx, qy = np.abs(x) - half, np.abs(y) - half
    outside = _length(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sd_ellipse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, b = 1.0, 0.55
    # first-order distance estimate k0 (k0 - 1) / k1: exact enough within a pixel of the edge
    k0 = _length(x / a, y / b)
    k1 = np.maximum(_length(x / (a * a), y / (b * b)), 1e-6)
    return k0 * (k0 - 1) / k1


def _sd_triangle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = np.sqrt(3) / 2  # half the side of an equilateral triangle with circumradius 1
    k = np.sqrt(3)
    px = np.abs(x) - r
    py = y + r / k
    fold = px + k * py > 0  # reflect into the fundamental region of the triangle
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0)
    return -_length(px, py) * np.sign(py)


def _sd_heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # the classic heart spans y in [0, 1.1] with its tip at the origin; centre and enlarge it
    size = 1.1 / 1.8
    px = np.abs(x) * size
    py = y * size + 0.55
    lobe = _length(px - 0.25, py - 0.75) - np.sqrt(2) / 4
    t = 0.5 * np.maximum(px + py, 0)
    body = np.sqrt(np.minimum(px * px + (py - 1) ** 2, (px - t) ** 2 + (py - t) ** 2))
    body = body * np.sign(px - py)
    return np.where(px + py > 1, lobe, body) / size


_SDF = [_sd_square, _sd_ellipse, _sd_triangle, _sd_heart]


def _factor_array(value: Any, name: str) -> np.ndarray:
    """One factor of `render_shapes` as a finite float64 vector, or an error naming it."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers; got {value!r}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def render_shapes(
    shape: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int = 32,
) -> np.ndarray:
    """Draw one shape per sample: float32 (n, size, size) in [0, 1].

    shape: index into SHAPE_NAMES; scale: 0.5..1 (1 fills a circle of radius 0.2 * size);
    rotation: degrees counter-clockwise; x, y: 0..1, the centre from left to right and top to
    bottom, kept far enough from the border that the largest shape stays inside.
    """
    size = check_int(size, "size", 1)
    shape = _factor_array(shape, "shape")
    if not np.all(np.mod(shape, 1) == 0):
        raise ValueError(f"shape must hold integers (indices into SHAPE_NAMES); got {shape!r}")
    shape = shape.astype(np.int64)
    n = shape.shape[0]
    named = {"scale": scale, "rotation": rotation, "x": x, "y": y}
    params = [_factor_array(value, name) for name, value in named.items()]
    # whole turns dropped in float64: float32's cos(1e300 degrees) is NaN
    params[1] = np.mod(params[1], 360.0)
    params = [p.astype(np.float32) for p in params]
    if any(p.shape[0] != n for p in params):
        raise ValueError("shape, scale, rotation, x and y must have the same length")
    if n and params[0].min() <= 0:  # a radius of 0 divides by zero: NaN pixels
        raise ValueError(f"scale must be > 0; got {params[0].min()}")
    if n and (shape.min() < 0 or shape.max() >= len(SHAPE_NAMES)):
        raise ValueError(f"shape must be in 0..{len(SHAPE_NAMES) - 1}; got {shape.max()}")
    check_memory(4 * n * size * size, "render_shapes(size)")
    out = np.empty((n, size, size), dtype=np.float32)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        part = slice(start, stop)
        scale_c, rotation_c, x_c, y_c = (p[part] for p in params)
        out[part] = _render_chunk(shape[part], scale_c, rotation_c, x_c, y_c, size)
    return out


def _render_chunk(
    shape: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int,
) -> np.ndarray:
    radius_px = (_RADIUS_FRACTION * size * scale)[:, None, None]  # (m, 1, 1)
    margin = _RADIUS_FRACTION * size * _SCALE_RANGE[1] + 1.0
    centre_x = (margin + x * (size - 2 * margin))[:, None, None]
    centre_y = (margin + y * (size - 2 * margin))[:, None, None]
    grid = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    dx = grid[None, None, :] - centre_x
    dy = centre_y - grid[None, :, None]  # image rows go down; shape space goes up
    theta = np.deg2rad(rotation)[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    # rotate the sampling grid by -theta so the shape turns by +theta; unit-radius coordinates
    u = (cos * dx + sin * dy) / radius_px
    v = (-sin * dx + cos * dy) / radius_px
    distance = np.empty(u.shape, dtype=np.float32)
    for kind, sdf in enumerate(_SDF):
        members = np.flatnonzero(shape == kind)
        if members.size:
            distance[members] = sdf(u[members], v[members])
    # signed distance in pixels -> coverage with a one-pixel soft edge
    return np.clip(0.5 - distance * radius_px, 0.0, 1.0)


def _render_factors(factors: dict[str, np.ndarray], size: int) -> np.ndarray:
    return render_shapes(
        factors["shape"], factors["scale"], factors["rotation"], factors["x"], factors["y"], size
    )


def _with_factor(
    name: str, factors: dict[str, np.ndarray], size: int, rows: np.ndarray, value: float
) -> np.ndarray:
    """The images of samples `rows` redrawn with factor `name` set to `value`, flattened."""
    if name == "shape" and (value != round(value) or not 0 <= value < len(SHAPE_NAMES)):
        raise ValueError(
            f"shape value must be an integer in 0..{len(SHAPE_NAMES) - 1}; got {value!r}"
        )
    if name == "scale" and value <= 0:
        raise ValueError(f"scale value must be > 0; got {value}")
    changed = {k: v[rows] for k, v in factors.items()}
    changed[name] = np.full(len(rows), value, dtype=changed[name].dtype)
    images = _render_factors(changed, size)
    return images.reshape(len(rows), -1)


def _factor_attribute(
    name: str, factors: dict[str, np.ndarray], size: int, values: np.ndarray, description: str
) -> Attribute:
    return Attribute(  # a partial of a module-level function: the Dataset pickles
        name,
        values,
        partial(_with_factor, name, factors, size),
        n_samples=len(factors["shape"]),
        description=description,
        limits=_LIMITS[name],
    )


def shapes(n: int = 20_000, size: int = 32, seed: int = 0) -> Dataset:
    """dSprites-like images: a square, ellipse, triangle or heart, anti-aliased.

    Factors (in `factors`, drawn uniformly and independently): shape (0..3, also the labels,
    named in `label_names`), scale (0.5..1), rotation (degrees, 0..360), x and y (0..1, the
    centre left to right and top to bottom). X is the flattened image, in [0, 1].
    Attributes, one per factor, redraw the same sample with that one factor changed.
    """
    for value, name, low, wanted in (
        (n, "n", 1, "a positive integer"),
        (size, "size", 8, "an integer >= 8 pixels"),
    ):
        is_int = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
        if not is_int or value < low:  # a bool is refused, not read as 0 or 1 sample
            error = ValueError if is_int or isinstance(value, float | str) else TypeError
            raise error(f"{name} must be {wanted}; got {value!r}")
    check_memory(4 * int(n) * int(size) ** 2, "shapes(n, size)")  # the float32 images
    rng = np.random.default_rng(check_seed(seed))
    factors = {
        "shape": rng.integers(0, len(SHAPE_NAMES), n),
        "scale": rng.uniform(*_SCALE_RANGE, n),
        "rotation": rng.uniform(0.0, 360.0, n),
        "x": rng.uniform(0.0, 1.0, n),
        "y": rng.uniform(0.0, 1.0, n),
    }
    images = _render_factors(factors, int(size))
    grids = {
        "shape": (np.arange(len(SHAPE_NAMES), dtype=float), "shape: " + ", ".join(SHAPE_NAMES)),
        "scale": (np.linspace(*_SCALE_RANGE, 11), "size of the shape"),
        "rotation": (np.linspace(0.0, 360.0, 25), "rotation in degrees, counter-clockwise"),
        "x": (np.linspace(0.0, 1.0, 11), "horizontal position, left to right"),
        "y": (np.linspace(0.0, 1.0, 11), "vertical position, top to bottom"),
    }
    attributes = {
        k: _factor_attribute(k, factors, int(size), grid, text) for k, (grid, text) in grids.items()
    }
    return Dataset(
        images.reshape(n, -1),  # a view: X and images share memory
        labels=factors["shape"],
        label_names=list(SHAPE_NAMES),
        images=images,
        factors=factors,
        attributes=attributes,
        name="shapes",
    )
