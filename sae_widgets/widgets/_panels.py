"""Drawing blocks that several views share.

- `ImagePair`: two pictures side by side in one figure (decoder | encoder, input | its
  reconstruction), as one PNG in a bqplot Image mark.
- `BarPair`: two vectors as grouped bars over chosen input dimensions (the same two things
  when the inputs are not images).
- `LinePair`: two vectors as lines over every input dimension.
- `SampleGallery`: a few samples drawn small, each with a number (its activation):
  thumbnails when the dataset has images, else rows of a colour-coded matrix.

Each block owns a `.figure` and is updated by `show(...)`; none of them knows the Selection.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Bars, Image, Label, LinearScale, Lines, OrdinalScale

from sae_widgets.widgets._render import (
    diverging_rgb,
    encode_png,
    grayscale_rgb,
    thumbnail_grid,
)
from sae_widgets.widgets._view import (
    TITLE_ROOM,
    Indices,
    axis,
    event_number,
    figure,
    pixel_shape,
    set_lines,
    set_ticks,
)

__all__ = ["BarPair", "ImagePair", "LinePair", "SampleGallery", "png_widget", "set_picture"]

_BLANK = np.zeros((1, 1, 4), dtype=np.uint8)  # transparent: nothing drawn yet
# Pictures need no axes, only room for the title above them.
_TIGHT = {"top": TITLE_ROOM, "bottom": 5, "left": 5, "right": 5}
# Pairs name their colours in the title: bqplot draws a legend inside the plot, over the data.
# "#7f7f7f" (grey), not near-black: it must read on JupyterLab's light and dark themes alike.
_COLOR_NAMES = {"#d62728": "red", "#1f77b4": "blue", "#7f7f7f": "grey"}


def _pair_title(names: tuple[str, str], colors: tuple[str, str]) -> str:
    return " · ".join(
        f"{name} ({_COLOR_NAMES[color]})" if color in _COLOR_NAMES else name
        for name, color in zip(names, colors)
    )


def png_widget(rgb: np.ndarray = _BLANK) -> widgets.Image:
    """An ipywidgets.Image holding `rgb` as PNG (what a bqplot Image mark displays)."""
    return widgets.Image(value=encode_png(rgb), format="png")


def set_picture(mark: Image, rgb: np.ndarray) -> None:
    """Show `rgb` in a bqplot Image mark (nothing is sent when it shows that picture already).

    The browser redraws an Image mark only when its `image` trait points to another
    ipywidgets.Image (bqplot's Image view listens to ``change:image`` of the mark, never to
    the value of the picture widget). So each mark owns two picture widgets and alternates:
    the hidden one gets the new PNG, then the mark points to it. Two small messages, where a
    new widget per picture cost four and a widget to build in the browser each time (JupyterLab
    applies a kernel's messages in order, so the new value is there before the mark reads it).
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    key = (rgb.shape, hashlib.blake2b(rgb.data, digest_size=16).digest())
    if getattr(mark, "_sw_picture_key", None) == key:
        return  # e.g. a unit change redraws a view whose pictures do not depend on the unit
    shown = mark.image
    spare = getattr(mark, "_sw_spare_picture", None)
    if spare is None or spare is shown:
        spare = png_widget(rgb)
    else:
        spare.value = encode_png(rgb)
    mark._sw_spare_picture = shown  # type: ignore[attr-defined]
    mark._sw_picture_key = key  # type: ignore[attr-defined]
    mark.image = spare


def picture_height(width: float, aspect: float, rows: int = 1) -> int:
    """Figure height (pixels) for `rows` rows of pictures `width` pixels wide, `aspect` times
    as high as wide in all: each row follows the aspect ratio between 24 pixels (a strip one
    pixel high stays visible) and twice the width (a 400 x 1 image is not 32,000 pixels
    tall; past that the pictures are stretched, pixels kept sharp)."""
    row = min(max(width * aspect / rows, 24.0), 2.0 * width)
    return int(row * rows) + _TIGHT["top"] + _TIGHT["bottom"]


def _is_color(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[-1] == 3


class ImagePair:
    """Two arrays of one image shape drawn side by side, as one figure.

    Parameters
    ----------
    names:
        Titles of the left and right picture.
    shape:
        Image shape, (h, w) or (h, w, 3); vectors given to `show` are reshaped to it.
    width:
        Figure width in pixels; the height follows the images' aspect ratio.
    """

    GAP = 0.1  # gap between the two pictures, in picture widths

    def __init__(self, names: tuple[str, str], shape: tuple[int, ...], width: int = 300) -> None:
        self.shape = tuple(shape)
        h, w = self.shape[0], self.shape[1]
        # Both pictures in one PNG (one mark, one picture to send), a transparent gap between.
        self._gap = max(1, round(self.GAP * w))
        span = 2 + self._gap / w  # the mark's x extent, in picture widths
        x_scale = LinearScale(min=0.0, max=span, allow_padding=False)
        y_scale = LinearScale(min=0.0, max=1.0, allow_padding=False)
        scales = {"x": x_scale, "y": y_scale}
        self.mark = Image(image=png_widget(), scales=scales, x=(0.0, span), y=(0.0, 1.0))
        height = picture_height(width, h / (w * span))
        self.figure = figure(
            [self.mark],
            title=f"{names[0]}  |  {names[1]}",
            width=f"{width}px",
            height=f"{height}px",
            margin=_TIGHT,
        )

    def show(self, left: Any, right: Any, diverging: bool) -> None:
        """Draw two flat vectors (or arrays) of the image shape.

        diverging=True: each in zero-centred colours scaled to its own max |value| (weights);
        False: both in grey (or colour) on one shared scale (an input and its reconstruction).
        """
        pair = np.stack([np.asarray(left, np.float32), np.asarray(right, np.float32)])
        pair = pair.reshape((2, *self.shape))
        if diverging:
            if _is_color(self.shape):  # a signed RGB direction: show its mean over channels
                pair = pair.mean(axis=-1)
            rgbs = [diverging_rgb(picture) for picture in pair]
        else:
            rgbs = list(grayscale_rgb(pair, color=_is_color(self.shape)))
        h, w = self.shape[0], self.shape[1]
        rgba = np.zeros((h, 2 * w + self._gap, 4), dtype=np.uint8)  # the gap: transparent
        rgba[:, :w, :3], rgba[:, w + self._gap :, :3] = rgbs
        rgba[:, :w, 3] = rgba[:, w + self._gap :, 3] = 255
        set_picture(self.mark, rgba)


class BarPair:
    """Two vectors as paired bars over some of their dimensions (chosen by the caller).

    Two Bars marks on one ordinal axis, the left one ending and the right one starting at
    each tick (bqplot's "grouped" Bars do not draw 2-D numpy data in the browser).
    """

    def __init__(
        self, names: tuple[str, str], colors: tuple[str, str] = ("#d62728", "#1f77b4")
    ) -> None:
        x_scale, y_scale = OrdinalScale(), LinearScale()
        self.pair = [
            Bars(
                x=np.zeros(0, np.float32),
                y=np.zeros(0, np.float32),
                scales={"x": x_scale, "y": y_scale},
                colors=[color],
                labels=[name],
                align=align,
                padding=0.3,
            )
            for name, color, align in zip(names, colors, ("right", "left"))
        ]
        self.figure = figure(
            self.pair,
            [
                Axis(scale=x_scale, label="input dimension", tick_rotate=-90),
                axis(y_scale, vertical=True),
            ],
            title=f"{_pair_title(names, colors)}, largest dimensions",
        )

    def show(self, left: Any, right: Any, dims: Indices) -> None:
        """Bars of left[dims] and right[dims], labelled by the dimension index.

        One dimension gets a blank second category of zero bars: the two marks on a
        one-category axis froze the browser tab in JupyterLab + Chromium (one input feature,
        d = 1; a single mark, or two categories, drew; bqplot's cause not found)."""
        columns = np.asarray(dims, dtype=np.int64)
        labels = [str(d) for d in columns]
        pad = 1 if len(columns) == 1 else 0
        for bars, values in zip(self.pair, (left, right)):
            heights = np.asarray(values)[columns].astype(np.float32)
            with bars.hold_sync():
                bars.x = np.array(labels + [" "] * pad)
                bars.y = np.concatenate([heights, np.zeros(pad, np.float32)])


class LinePair:
    """Two vectors as lines over all their dimensions (input vs reconstruction)."""

    def __init__(
        self, names: tuple[str, str], colors: tuple[str, str] = ("#7f7f7f", "#d62728")
    ) -> None:
        x_scale, y_scale = LinearScale(), LinearScale()
        self.lines = Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros((2, 0), np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=list(colors),
            labels=list(names),
            stroke_width=1.2,
        )
        self.figure = figure(
            [self.lines],
            [axis(x_scale, "input dimension"), axis(y_scale, vertical=True)],
            title=_pair_title(names, colors),
        )

    def show(self, left: Any, right: Any) -> None:
        pair = np.stack([np.asarray(left), np.asarray(right)]).astype(np.float32)
        set_lines(self.lines, np.arange(pair.shape[1]), pair)  # d = 1: two dots


def input_pair(ex: Any, titles: tuple[str, str]) -> ImagePair | LinePair:
    """Two input vectors side by side: pictures when the SAE sees pixels, else line plots."""
    shape = pixel_shape(ex)
    if shape is not None:
        return ImagePair(titles, shape, width=240)
    return LinePair(titles)


class SampleGallery:
    """Samples drawn small, each captioned with a number; clicking one reports its index.

    With images (``images`` given): a grid of thumbnails, `n_cols` per row, the caption in a
    band under each. Without: one row per sample of a colour-coded matrix of chosen input
    dimensions (``X`` given), captions on the vertical axis.
    """

    def __init__(
        self,
        on_sample: Callable[[int], None],
        *,
        images: np.ndarray | None = None,
        X: np.ndarray | None = None,
        n_cols: int = 8,
        width: int = 360,
        title: str = "",
    ) -> None:
        if (images is None) == (X is None):
            raise ValueError("SampleGallery: give exactly one of images= or X=")
        self._on_sample = on_sample
        self.images, self.X = images, X
        self.n_cols = n_cols
        self.width = width
        self.samples: list[int] = []
        self._cell = (1, 1)  # (height, width) of one gallery cell, in data units
        self.x_scale = LinearScale(min=0.0, max=1.0, allow_padding=False)
        self.y_scale = LinearScale(min=0.0, max=1.0, allow_padding=False)
        scales = {"x": self.x_scale, "y": self.y_scale}
        self.mark = Image(image=png_widget(), scales=scales, x=(0.0, 1.0), y=(0.0, 1.0))
        self.mark.on_element_click(self._clicked)
        self.captions = Label(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            text=[],
            scales=scales,
            default_size=11,
            font_unit="px",
            align="middle",
            colors=["#7f7f7f"],
        )
        if images is None:
            self.y_axis = axis(self.y_scale, vertical=True, tick_format="d")
            self.x_axis = axis(self.x_scale, "input dimension", tick_format="d")
            axes, margin = [self.x_axis, self.y_axis], {"bottom": 35, "left": 110}
            marks = [self.mark]
        else:
            axes, margin, marks = [], _TIGHT, [self.mark, self.captions]
        self.figure = figure(
            marks, axes, title=title, width=f"{width}px", margin={**_TIGHT, **margin}
        )

    def show(self, samples: Indices, values: Any, dims: Any = None) -> None:
        """Draw `samples` captioned by `values`; `dims` picks the columns in matrix mode."""
        self.samples = [int(s) for s in samples]
        if self.images is not None:
            self._show_thumbnails(np.asarray(values, np.float32))
        else:
            assert self.X is not None
            self._show_rows(np.asarray(values, np.float32), dims)

    def _show_thumbnails(self, values: np.ndarray) -> None:
        assert self.images is not None
        shape = self.images.shape[1:]
        h, w = shape[0], shape[1]
        band = max(3, math.ceil(0.45 * h))  # room for the caption under each thumbnail
        n = len(self.samples)
        pictures = grayscale_rgb(self.images[self.samples], color=_is_color(shape))
        grid = thumbnail_grid(
            pictures.reshape(n, h, w, 3) if n else np.zeros((0, h, w, 3), np.uint8),
            self.n_cols,
            pad=1,
            band=band,
        )
        # Always `n_cols` cells wide (blank ones right of fewer pictures): a picture keeps its
        # size whatever the count, rather than one stretched over the whole figure.
        full_w = self.n_cols * (w + 1) - 1
        if grid.shape[1] < full_w:
            blank = np.full((grid.shape[0], full_w - grid.shape[1], 3), 255, np.uint8)
            grid = np.concatenate([grid, blank], axis=1)
        grid_h, grid_w = grid.shape[:2]
        self._cell = (h + band + 1, w + 1)
        position = np.arange(n)
        row, col = position // self.n_cols, position % self.n_cols
        # Data units are grid pixels, y pointing up: pixel row r is at y = grid_h - r.
        caption_x = col * (w + 1) + w / 2
        caption_y = grid_h - (row * (h + band + 1) + h + 0.8 * band)
        height = picture_height(self.width, grid_h / grid_w, max(1, -(-n // self.n_cols)))
        with self.mark.hold_sync(), self.captions.hold_sync():
            self.x_scale.max, self.y_scale.max = float(grid_w), float(grid_h)
            self.mark.x, self.mark.y = (0.0, float(grid_w)), (0.0, float(grid_h))
            set_picture(self.mark, grid)
            self.captions.x = caption_x.astype(np.float32)
            self.captions.y = caption_y.astype(np.float32)
            self.captions.text = np.array([f"{v:.2f}" for v in values])
        self.figure.layout.height = f"{height}px"

    def _show_rows(self, values: np.ndarray, dims: Any) -> None:
        assert self.X is not None
        dims = np.arange(self.X.shape[1]) if dims is None else np.asarray(dims, np.int64)
        n = len(self.samples)
        block = self.X[np.asarray(self.samples, np.int64)][:, dims] if n else np.zeros((1, 1))
        self._cell = (1, 1)
        rows = max(n, 1)
        # Row i is drawn at y = rows - 1 - i (integers, so tick labels map exactly).
        with self.mark.hold_sync():
            self.x_scale.min, self.x_scale.max = -0.5, len(dims) - 0.5
            self.y_scale.min, self.y_scale.max = -0.5, rows - 0.5
            self.mark.x, self.mark.y = (-0.5, len(dims) - 0.5), (-0.5, rows - 0.5)
            set_picture(self.mark, diverging_rgb(block))
        step = max(1, len(dims) // 12)
        set_ticks(
            self.y_axis,
            [rows - 1 - i for i in range(n)],
            [f"#{s} · {v:.2f}" for s, v in zip(self.samples, values)],
        )
        columns = range(0, len(dims), step)
        set_ticks(self.x_axis, list(columns), [str(int(dims[i])) for i in columns])
        self.figure.layout.height = f"{max(120, 22 * rows + TITLE_ROOM + 35)}px"

    def sample_at(self, x: float, y: float) -> int | None:
        """The sample drawn at data point (x, y), or None for empty space."""
        if self.images is not None:
            grid_h = float(self.y_scale.max or 0.0)
            row = int((grid_h - y) // self._cell[0])
            col = int(x // self._cell[1])
            if not 0 <= col < self.n_cols:
                return None
            position = row * self.n_cols + col
        else:
            position = len(self.samples) - 1 - round(y)
        return self.samples[position] if 0 <= position < len(self.samples) else None

    def _clicked(self, _mark: Any, event: dict[str, Any]) -> None:
        x, y = event_number(event, "click_x"), event_number(event, "click_y")
        if x is None or y is None:  # a malformed event: ignored, as every view's clicks
            return
        sample = self.sample_at(x, y)
        if sample is not None:
            self._on_sample(sample)
