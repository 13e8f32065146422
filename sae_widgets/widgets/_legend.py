"""Legends, colour bars and hover cards: small HTML blocks every view uses to explain
itself. Plain HTML strings, so they cost one small message to update."""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from sae_widgets.widgets._render import grayscale_rgb, png_data_url
from sae_widgets.widgets.text import hover_html
from sae_widgets.wording import shortened

__all__ = [
    "color_bar",
    "hover_card",
    "input_image",
    "isolated_html",
    "label_html",
    "label_legend",
    "needs_isolation",
    "picture_html",
]

_SWATCH = (
    "display:inline-block;width:10px;height:10px;border-radius:5px;margin:0 3px 0 8px;"
    "background:{color}"
)


NAME_ROOM = 40  # characters of a label name shown in a line of text; the rest in a tooltip


_BIDI_CLASSES = {"R", "AL", "LRE", "LRO", "RLE", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
"""Bidirectional classes of right-to-left letters and of the explicit controls."""


def needs_isolation(text: str) -> bool:
    """Whether `text` holds right-to-left letters or bidirectional controls (then it goes
    in a `<bdi>` in a line of HTML)."""
    return any(unicodedata.bidirectional(c) in _BIDI_CLASSES for c in text)


def isolated_html(text: str, title: str | None = None) -> str:
    """`text` escaped, inside a `<bdi>` when it holds right-to-left letters or bidirectional
    controls: what those do (a right-to-left override reverses all that follows it on the
    line) ends with the text, and a right-to-left name does not move its neighbours. With a
    `title`, that is shown on hover."""
    tip = "" if title is None else f' title="{html.escape(title)}"'
    tag = "bdi" if needs_isolation(text) else ""
    if not tag and not tip:
        return html.escape(text)
    tag = tag or "span"
    return f"<{tag}{tip}>{html.escape(text)}</{tag}>"


def label_html(name: Any) -> str:
    """A label name for a line of HTML: escaped and isolated (`isolated_html`), cut to
    `NAME_ROOM` characters with the whole name on hover (a 2,000-character name stretched
    the legend into one long line)."""
    text = str(name)
    shown = shortened(text, NAME_ROOM)
    return isolated_html(shown, None if len(text) <= NAME_ROOM else text)


def label_legend(
    names: Sequence[str], colors: Sequence[str], title: str = "label", note: str = ""
) -> str:
    """Coloured dots naming each class: what the label colours of a scatter mean; `note`
    (plain text) after them."""
    items = "".join(
        f'<span style="white-space:nowrap"><span style="{_SWATCH.format(color=color)}">'
        f"</span>{label_html(name)}</span> "
        for name, color in zip(names, colors)
    )
    if note:
        items += f"<i>{html.escape(note)}</i>"
    return f'<div class="sw-legend"><b>{html.escape(title)}</b>{items}</div>'


def color_bar(gradient_css: str, low: str, high: str, title: str, width_px: int = 120) -> str:
    """A horizontal colour bar with its two end values: what a continuous colour means."""
    bar = (
        f'<span style="display:inline-block;width:{width_px}px;height:10px;'
        f'background:{gradient_css};border:1px solid #bbb;vertical-align:middle;margin:0 4px">'
        "</span>"
    )
    return (
        f'<div class="sw-legend"><b>{html.escape(title)}</b> '
        f"{html.escape(low)}{bar}{html.escape(high)}</div>"
    )


def picture_html(image: np.ndarray, size_px: int = 64, title: str = "") -> str:
    """An <img> of one image ((h, w) grey or (h, w, 3) colour), its longer side scaled up
    to about `size_px`, pixels kept sharp; `title` is written above it."""
    image = np.asarray(image, dtype=np.float32)
    rgb = grayscale_rgb(image, color=image.ndim == 3)
    zoom = max(1, size_px // max(rgb.shape[0], rgb.shape[1], 1))  # the longer side: wide too
    rgb = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)
    caption = f"<div>{html.escape(title)}</div>" if title else ""
    return (
        f'<div class="sw-input-picture">{caption}'
        f'<img src="{png_data_url(rgb)}" style="image-rendering:pixelated"></div>'
    )


def input_image(ex: Any, sample: int) -> np.ndarray | None:
    """The picture of `sample` when the SAE's vectors are not pixels but the dataset knows
    the images they came from (activations of a model over images), else None."""
    dataset = ex.dataset
    shape = dataset.image_shape
    if dataset.images is None or shape is None or int(np.prod(shape)) == dataset.n_features:
        return None
    return np.asarray(dataset.images[sample])


def hover_card(ex: Any, sample: int, unit: int | None, value: float | None = None) -> str:
    """HTML describing one sample: its picture (or its top input dimensions), its label and
    its activation of the focused unit."""
    dataset = ex.dataset
    parts = [f"<b>sample {sample}</b>"]
    labels = dataset.labels
    if labels is not None and labels[sample] >= 0:
        names = dataset.label_names
        name = names[labels[sample]] if names else str(labels[sample])
        parts.append(f"label <b>{label_html(name)}</b>")
    if unit is not None:
        if value is None:
            value = float(ex.codes.dense([sample], [unit])[0, 0])
        parts.append(f"unit {unit}: <b>{value:.3g}</b>")
    picture = ""
    if dataset.tokens is not None:  # a language-model token: show it in its context
        picture = hover_html(dataset.tokens, sample)
    elif dataset.images is not None:
        picture = picture_html(dataset.images[sample])
    return f'<div class="sw-hover-card" style="padding:4px">{picture}{"<br>".join(parts)}</div>'
