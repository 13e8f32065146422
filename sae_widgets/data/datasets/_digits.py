"""scikit-learn's 8x8 handwritten digits with image-space attributes (rotation, shift, ...)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
from scipy import ndimage

from sae_widgets.data.dataset import Attribute, Dataset

# (m, h, w) images in [0, 1], value -> transformed (m, h, w) images
ImageTransform = Callable[[np.ndarray, float], np.ndarray]


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate each image about its centre (counter-clockwise as displayed), same size."""
    return ndimage.rotate(images, degrees, axes=(2, 1), reshape=False, order=1, mode="constant")


def shift_images(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move each image `dx` pixels right and `dy` pixels down (bilinear, zero fill)."""
    return ndimage.shift(images, (0.0, dy, dx), order=1, mode="constant")


def scale_images(images: np.ndarray, factor: float) -> np.ndarray:
    """Zoom each image by `factor` about its centre, keeping the frame size."""
    if factor <= 0:
        raise ValueError(f"scale value must be > 0; got {factor}")
    h, w = images.shape[1:3]
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    # output pixel o samples input pixel centre + (o - centre) / factor
    offset = np.concatenate([[0.0], centre - centre / factor])
    matrix = np.array([1.0, 1.0 / factor, 1.0 / factor])
    return ndimage.affine_transform(images, matrix, offset=offset, order=1, mode="constant")


_CROSS = np.zeros((1, 3, 3), dtype=bool)
_CROSS[0, 1, :] = _CROSS[0, :, 1] = True


def thicken_images(images: np.ndarray, amount: float) -> np.ndarray:
    """Thicker strokes for amount > 0 (grey dilation), thinner for < 0 (grey erosion);
    fractional amounts blend with the original so the slider moves smoothly."""
    if amount == 0:
        return images.copy()
    morph = ndimage.grey_dilation if amount > 0 else ndimage.grey_erosion
    out = images
    remaining = abs(amount)
    # each whole unit is one full step; after height + width steps every image has reached
    # its fixed point, so absurd amounts (5000) cost no more than that (and never recurse)
    for _ in range(min(math.ceil(remaining), images.shape[-1] + images.shape[-2])):
        strength = min(remaining, 1.0)
        out = (1 - strength) * out + strength * morph(out, footprint=_CROSS)
        remaining -= 1.0
    return out


def image_attribute(
    name: str,
    images: np.ndarray,
    X: np.ndarray,
    transform: ImageTransform,
    values: np.ndarray,
    identity: float,
    description: str,
    limits: tuple[float, float] | None = None,
) -> Attribute:
    """An Attribute that transforms the stored images and flattens them back into X rows.
    At the identity value it returns the original rows exactly. Its function is a partial of
    module-level functions, so the Dataset pickles (when `transform` does)."""
    return Attribute(
        name,
        values,
        partial(_transformed_rows, images, X, transform, identity),
        identity=identity,
        n_samples=len(X),
        description=description,
        limits=limits,
    )


def _transformed_rows(
    images: np.ndarray,
    X: np.ndarray,
    transform: ImageTransform,
    identity: float,
    rows: np.ndarray,
    value: float,
) -> np.ndarray:
    if value == identity:
        return X[rows].copy()
    out = np.clip(transform(images[rows], value), 0.0, 1.0)
    return out.reshape(len(rows), -1).astype(np.float32)


def _shift_x(images: np.ndarray, dx: float) -> np.ndarray:
    return shift_images(images, dx, 0.0)


def _shift_y(images: np.ndarray, dy: float) -> np.ndarray:
    return shift_images(images, 0.0, dy)


def digits() -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8x8, shipped with scikit-learn).

    X: the 64 pixels scaled to [0, 1]; labels 0-9 named "0".."9"; images (n, 8, 8).
    Attributes: rotation (degrees, -45..45), shift_x / shift_y (pixels, -2..2), scale (zoom,
    0.6..1.4), thickness (-1 erode .. +1 dilate, fractional values blend).
    """
    from sklearn.datasets import load_digits  # heavy import, only when asked for

    raw = load_digits()
    images = (np.asarray(raw.images, dtype=np.float64) / 16.0).astype(np.float32)
    X = images.reshape(len(images), -1)
    img = images.astype(np.float64)  # ndimage works in float64; X stays float32
    attributes = {
        "rotation": image_attribute(
            "rotation",
            img,
            X,
            rotate_images,
            np.arange(-45.0, 46.0, 5.0),
            0.0,
            "rotation in degrees, counter-clockwise",
        ),
        "shift_x": image_attribute(
            "shift_x",
            img,
            X,
            _shift_x,
            np.arange(-2.0, 2.01, 0.5),
            0.0,
            "horizontal shift in pixels (right is positive)",
        ),
        "shift_y": image_attribute(
            "shift_y",
            img,
            X,
            _shift_y,
            np.arange(-2.0, 2.01, 0.5),
            0.0,
            "vertical shift in pixels (down is positive)",
        ),
        "scale": image_attribute(
            "scale",
            img,
            X,
            scale_images,
            np.round(np.arange(0.6, 1.41, 0.1), 6),
            1.0,
            "zoom factor about the image centre",
            (1e-30, 1e30),  # far past a dot or a full frame, yet 1 / scale stays finite
        ),
        "thickness": image_attribute(
            "thickness",
            img,
            X,
            thicken_images,
            np.arange(-1.0, 1.01, 0.25),
            0.0,
            "stroke thickness: negative erodes, positive dilates",
        ),
    }
    return Dataset(
        X,
        labels=np.asarray(raw.target, dtype=np.int64),
        label_names=[str(i) for i in range(10)],
        images=images,
        attributes=attributes,
        name="digits",
    )
