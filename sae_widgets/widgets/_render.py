"""Turning numpy arrays into pictures the browser can draw cheaply.

Colour maps, thumbnail grids and PNG encoding (Pillow), so an Image mark gets one small PNG
instead of thousands of SVG elements.
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

# Anchor colours (0-255 RGB) of the colour maps; values in between are interpolated linearly.
# Diverging: blue (negative) - white (zero) - red (positive), close to ColorBrewer RdBu.
_DIVERGING_ANCHORS = np.array(
    [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]],
    dtype=np.float32,
)
# Sequential: white -> dark blue, so zero (the common case for sparse codes) stays blank.
_SEQUENTIAL_ANCHORS = np.array(
    [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]],
    dtype=np.float32,
)

# Ten distinct colours for labels (d3 category10), as hex strings for bqplot `colors`.
CATEGORY10 = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _interpolate(anchors: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (any shape) to uint8 RGB (shape + (3,)) along the anchor colours."""
    t = np.clip(np.nan_to_num(t, nan=0.5), 0.0, 1.0) * (len(anchors) - 1)
    lo = np.minimum(np.floor(t).astype(np.int64), len(anchors) - 2)
    frac = (t - lo)[..., None]
    rgb = anchors[lo] * (1.0 - frac) + anchors[lo + 1] * frac
    return np.rint(rgb).astype(np.uint8)


def diverging_rgb(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Zero-centred colours: 0 is white, +vmax full red, -vmax full blue.

    vmax defaults to max |values|, so the sign of each value is always readable.
    """
    values = np.asarray(values, dtype=np.float32)
    if vmax is None:
        vmax = float(np.max(np.abs(values))) if values.size else 0.0
    vmax = vmax if vmax > 0 else 1.0
    return _interpolate(_DIVERGING_ANCHORS, 0.5 + 0.5 * values / vmax)


def sequential_rgb(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Non-negative colours: 0 is white, vmax (default: the maximum) darkest blue."""
    values = np.asarray(values, dtype=np.float32)
    if vmax is None:
        vmax = float(np.max(values)) if values.size else 0.0
    vmax = vmax if vmax > 0 else 1.0
    return _interpolate(_SEQUENTIAL_ANCHORS, values / vmax)


def grayscale_rgb(images: np.ndarray, color: bool = False) -> np.ndarray:
    """Images scaled by their overall min/max to uint8 RGB.

    `images` is (..., h, w) grey, or (..., h, w, 3) with ``color=True`` (kept as colour).
    """
    images = np.asarray(images, dtype=np.float32)
    lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)
    scaled = (images - lo) / (hi - lo if hi > lo else 1.0)
    rgb = np.rint(scaled * 255).astype(np.uint8)
    return rgb if color else np.repeat(rgb[..., None], 3, axis=-1)


def thumbnail_grid(
    images_N: np.ndarray, n_cols: int, pad: int = 1, band: int = 0, background: int = 255
) -> np.ndarray:
    """Tile N uint8 RGB images (N, h, w, 3) into one picture, row-major, `n_cols` per row.

    Cells are (h + band) x w pixels, `pad` pixels apart; the `band` background rows under
    each image leave room for a caption. Shape: (rows*(h+band+pad)-pad, cols*(w+pad)-pad, 3).
    """
    images_N = np.asarray(images_N, dtype=np.uint8)
    if images_N.ndim != 4 or images_N.shape[-1] != 3:
        raise ValueError(f"images_N: expected shape (N, h, w, 3), got {images_N.shape}")
    if n_cols < 1:
        raise ValueError(f"n_cols: expected a positive int, got {n_cols}")
    n, h, w, _ = images_N.shape
    n_cols = min(n_cols, max(n, 1))
    n_rows = max(-(-n // n_cols), 1)
    cell_h = h + band + pad
    grid = np.full((n_rows * cell_h - pad, n_cols * (w + pad) - pad, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, n_cols)
        grid[r * cell_h : r * cell_h + h, c * (w + pad) : c * (w + pad) + w] = images_N[i]
    return grid


def encode_png(rgb_HW3: np.ndarray) -> bytes:
    """Encode uint8 RGB (h, w, 3), or RGBA (h, w, 4), as PNG bytes for an ipywidgets.Image /
    bqplot Image mark."""
    rgb_HW3 = np.ascontiguousarray(rgb_HW3, dtype=np.uint8)
    if rgb_HW3.ndim != 3 or rgb_HW3.shape[2] not in (3, 4) or 0 in rgb_HW3.shape:
        raise ValueError(
            f"rgb_HW3: expected a non-empty (h, w, 3) or (h, w, 4) array, got {rgb_HW3.shape}"
        )
    buffer = io.BytesIO()
    PIL.Image.fromarray(rgb_HW3).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Read PNG bytes back to uint8 RGB (h, w, 3); used by tests and benchmarks."""
    with PIL.Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


# Activation colours of scatter points: zero is light grey (not invisible), the unit's
# maximum is red, through orange.
_ACTIVATION_ANCHORS = np.array([[217, 217, 217], [253, 174, 97], [215, 25, 28]], dtype=np.float32)
_LEVELS = 256  # colours are quantised to this many steps, so hex strings come from a table


def _hex_table(anchors: np.ndarray) -> np.ndarray:
    rgb = _interpolate(anchors, np.linspace(0.0, 1.0, _LEVELS))
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb])


ACTIVATION_PALETTE: list[str] = _hex_table(_ACTIVATION_ANCHORS).tolist()
"""The activation scale quantised to 256 "#rrggbb" colours, zero first."""


def activation_levels(values: np.ndarray, vmax: float) -> np.ndarray:
    """Index into `ACTIVATION_PALETTE` of each value on the scale [0, vmax]."""
    values = np.asarray(values, dtype=np.float32)
    top = vmax if vmax > 0 else 1.0
    steps = np.rint(np.clip(np.nan_to_num(values / top), 0.0, 1.0) * (_LEVELS - 1))
    return steps.astype(np.int64)


def activation_gradient_css() -> str:
    """The activation scale as a CSS linear-gradient (for a colour bar)."""
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in _ACTIVATION_ANCHORS)
    return f"linear-gradient(to right, {stops})"


def sequential_gradient_css() -> str:
    """The heatmap's white-to-blue scale as a CSS linear-gradient."""
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in _SEQUENTIAL_ANCHORS)
    return f"linear-gradient(to right, {stops})"


def diverging_gradient_css() -> str:
    """The blue-white-red scale of signed weights as a CSS linear-gradient."""
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in _DIVERGING_ANCHORS)
    return f"linear-gradient(to right, {stops})"


def png_data_url(rgb_HW3: np.ndarray) -> str:
    """A data: URL of the picture, for an <img> inside an HTML widget (hover cards)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(encode_png(rgb_HW3)).decode("ascii")
