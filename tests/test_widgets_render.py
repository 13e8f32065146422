"""The pure rendering helpers behind the Image marks: colour maps, grids, PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

import sae_widgets as sw
from sae_widgets.widgets._render import (
    decode_png,
    diverging_rgb,
    encode_png,
    grayscale_rgb,
    sequential_rgb,
    thumbnail_grid,
)


def test_png_round_trip_keeps_every_pixel() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3)).astype(np.uint8)
    data = encode_png(rgb)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode_png(data), rgb)


def test_png_keeps_transparency() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, size=(7, 5, 4)).astype(np.uint8)
    with PIL.Image.open(io.BytesIO(encode_png(rgba))) as image:
        np.testing.assert_array_equal(np.asarray(image), rgba)


@pytest.mark.parametrize("shape", [(4, 4), (0, 3, 3), (3, 3, 2), (3, 3, 5)])
def test_png_rejects_wrong_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="rgb_HW3"):
        encode_png(np.zeros(shape, dtype=np.uint8))


def test_diverging_is_zero_centred_and_symmetric() -> None:
    rgb = diverging_rgb(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    white, red, blue = rgb[2], rgb[4], rgb[0]
    np.testing.assert_array_equal(white, [247, 247, 247])
    assert red[0] > red[2] and blue[2] > blue[0]  # positive is red, negative is blue
    # Same magnitude, same distance from white.
    assert abs(int(rgb[1].sum()) - int(white.sum())) == pytest.approx(
        abs(int(rgb[3].sum()) - int(white.sum())), abs=40
    )
    # vmax fixes the scale: 1 of vmax 2 is half way, not full red.
    np.testing.assert_array_equal(diverging_rgb(np.array([1.0]), vmax=2.0)[0], rgb[3])


def test_sequential_maps_zero_to_white_and_max_to_darkest() -> None:
    rgb = sequential_rgb(np.array([[0.0, 3.0], [1.5, 3.0]]))
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(rgb[0, 1], [8, 48, 107])
    assert rgb[1, 0].sum() < 3 * 255 and rgb[1, 0].sum() > rgb[0, 1].sum()
    # All zeros (a unit that never fires) is a blank image, not a division by zero.
    np.testing.assert_array_equal(sequential_rgb(np.zeros((2, 2))), 255)


def test_grayscale_scales_to_full_range() -> None:
    rgb = grayscale_rgb(np.array([[0.0, 0.5], [0.25, 1.0]]))
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 128], [64, 255]])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_thumbnail_grid_places_each_image_in_its_cell() -> None:
    images = np.stack([np.full((2, 3, 3), 10 * (i + 1), dtype=np.uint8) for i in range(5)])
    grid = thumbnail_grid(images, n_cols=3, pad=1)
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2, 3)
    assert grid[0, 0, 0] == 10 and grid[0, 4, 0] == 20 and grid[3, 4, 0] == 50
    assert grid[2, 0, 0] == 255  # padding row
    assert grid[3, 8, 0] == 255  # the empty sixth cell stays background
    with pytest.raises(ValueError, match="images_N"):
        thumbnail_grid(np.zeros((2, 3, 3)), n_cols=2)


def test_image_grid_tiles_grey_images_with_dark_ink_and_zooms():
    images = np.zeros((3, 2, 2), np.float32)
    images[1] = 1.0  # a fully inked image
    picture = decode_png(sw.image_grid(images, n_cols=2, zoom=2).value)
    # 2 columns x 2 rows of 2x2 cells, 1 px apart, every pixel zoomed 2x2
    assert picture.shape == ((2 * 2 + 1) * 2, (2 * 2 + 1) * 2, 3)
    assert (picture[:4, :4] == 255).all()  # image 0: blank paper
    assert (picture[:4, 6:10] == 0).all()  # image 1: black ink
    assert (picture[4:6, :] == 200).all()  # the separator row
    with pytest.raises(ValueError, match="images: expected shape"):
        sw.image_grid(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="zoom"):
        sw.image_grid(images, zoom=0)


def test_a_picture_already_shown_is_not_sent_again() -> None:
    from bqplot import Image

    from sae_widgets.widgets._panels import png_widget, set_picture

    mark = Image(image=png_widget())
    rgb = np.random.default_rng(1).integers(0, 256, size=(4, 6, 3)).astype(np.uint8)
    set_picture(mark, rgb)
    shown = mark.image
    set_picture(mark, rgb.copy())  # equal pixels: the mark keeps its picture widget
    assert mark.image is shown
    rgb[0, 0] ^= 1
    set_picture(mark, rgb)  # one pixel changed: the spare picture gets it and is shown
    assert mark.image is not shown
    np.testing.assert_array_equal(decode_png(mark.image.value), rgb)
