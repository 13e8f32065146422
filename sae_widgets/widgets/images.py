"""`image_grid`: sample images tiled into one picture, for notebooks that show a gallery."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from sae_widgets.analysis.checks import check_positive_int
from sae_widgets.widgets._render import encode_png, thumbnail_grid

__all__ = ["image_grid"]

MAX_ZOOM = 64
"""Screen pixels per image pixel, at most (a larger zoom only makes a huge PNG)."""


def image_grid(images: np.ndarray, n_cols: int = 12, zoom: int = 3) -> widgets.Image:
    """Tile images into one PNG widget, row-major, `n_cols` per row, each pixel `zoom` x `zoom`.

    `images` is grey (n, h, w) (or (n, h, w, 1)) or colour (n, h, w, 3) with values in
    [0, 1] (clipped), or uint8 in [0, 255] (as matplotlib reads them); numpy, a torch tensor
    or nested lists.
    Grey images are drawn with dark ink on white, as digits and shapes are usually shown.
    """
    n_cols = check_positive_int(n_cols, "n_cols")
    zoom = check_positive_int(zoom, "zoom")
    if zoom > MAX_ZOOM:
        raise ValueError(f"zoom: expected at most {MAX_ZOOM} screen pixels per pixel, got {zoom}")
    if hasattr(images, "detach"):  # a torch tensor: bfloat16 has no numpy dtype
        images = images.detach().cpu()
        images = (images.float() if images.is_floating_point() else images).numpy()
    if np.iscomplexobj(images):  # float32 would silently drop the imaginary part
        raise TypeError("images: expected real pixel values, got complex numbers")
    try:
        raw = np.asarray(images)
        if raw.ndim == 0:  # None, one number: numpy makes None a NaN "image"
            raise TypeError
        # float64 first: a float64 1e300 is a white pixel, not float32's inf
        pixels = raw.astype(np.float64)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        raise TypeError(f"images: expected an array of pixel values, got {images!r:.80}") from None
    if not np.isfinite(pixels).all():
        raise ValueError("images: contains NaN or infinite values")
    if raw.dtype == np.uint8:  # 0..255, not 0..1: 1 and up was all ink
        pixels /= 255.0
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    if pixels.ndim == 4 and pixels.shape[-1] == 1:  # one channel, channels last: grey
        pixels = pixels[..., 0]
    if pixels.ndim == 3:
        ink = np.rint(255 * (1.0 - pixels)).astype(np.uint8)
        rgb = np.repeat(ink[..., None], 3, axis=-1)
    elif pixels.ndim == 4 and pixels.shape[-1] == 3:
        rgb = np.rint(255 * pixels).astype(np.uint8)
    else:
        raise ValueError(f"images: expected shape (n, h, w) or (n, h, w, 3), got {pixels.shape}")
    if len(rgb) == 0:
        raise ValueError("images: expected at least one image, got none")
    if rgb.shape[1] == 0 or rgb.shape[2] == 0:
        raise ValueError(f"images: expected images at least 1 x 1 pixel, got {pixels.shape}")
    grid = thumbnail_grid(rgb, n_cols, pad=1, background=200)  # grey lines between images
    grid = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
    return widgets.Image(value=encode_png(grid), format="png")
