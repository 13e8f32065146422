"""Text-native pieces of the views, used when the Dataset holds language-model tokens.

- `tokens_html`: tokens as spans whose background shows an activation, the activation on
  hover (title attribute), one token marked;
- `TopTokens`: a unit's top-activating tokens, each in its context (a context-length
  choice), and, for causal LMs, its logit effects (promoted / suppressed tokens);
- `document_html`, `context_label`: a whole document with a unit's activations over it (the
  sample card), a short plain-text token-in-context (axis labels, hover lines).

Every piece of token text goes through `html.escape`: a corpus line holding ``<script>``
shows as text.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np

from sae_widgets.data.tokens import TokenRows, aligned_character_span
from sae_widgets.explore.explorer import Explorer
from sae_widgets.widgets._view import set_ticks, toggle_buttons
from sae_widgets.wording import counted

__all__ = [
    "CONTEXT_LENGTHS",
    "TopTokens",
    "VariedSentence",
    "context_label",
    "document_html",
    "hover_html",
    "label_token_rows",
    "logit_html",
    "tokens_html",
    "unit_activations",
    "value_names",
]

CONTEXT_LENGTHS = (4, 8, 16, 32)
"""Tokens shown on each side of a top-activating token (the user picks one)."""

_BOX = (
    "font-family: var(--jp-code-font-family, monospace); font-size: 12px; "
    "white-space: pre-wrap; line-height: 1.7"
)
# Theme-aware text styles (JupyterLab's CSS variables, light-theme fallbacks): readable on
# the dark theme too.
_MUTED = "color:var(--jp-ui-font-color2, #666)"
_OUTLINE = "outline: 2px solid var(--jp-ui-font-color1, #333)"


def _background(value: float, vmax: float) -> str:
    alpha = 0.0 if vmax <= 0 else min(max(value / vmax, 0.0), 1.0)
    return f"rgba(255, 127, 14, {0.85 * alpha:.2f})"  # the focus orange, by activation


def tokens_html(pieces: list[str], values: Any, vmax: float, marked: int | None = None) -> str:
    """Tokens as `<span>`s: background by `values` (0 transparent, `vmax` full), the
    activation in each span's title (shown on hover), the token at `marked` outlined."""
    spans = []
    for i, (piece, value) in enumerate(zip(pieces, np.asarray(values, dtype=np.float64))):
        style = f"background: {_background(float(value), vmax)}"
        if i == marked:
            style += f"; {_OUTLINE}; font-weight: bold"
        title = f"activation {value:.3g}"
        spans.append(
            f'<span class="sw-token" style="{style}" title="{title}">{html.escape(piece)}</span>'
        )
    return "".join(spans)


def unit_activations(ex: Explorer, unit: int) -> np.ndarray:
    """(n_samples,) activation of `unit` on every row, zero where it does not fire."""
    values = np.zeros(ex.n_samples, dtype=np.float32)
    samples, found = ex.codes.unit_samples(unit)
    values[samples] = found
    return values


def _values_at(rows: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Activations of the rows in a context window (0 for tokens that are not rows)."""
    return np.where(rows >= 0, activations[np.maximum(rows, 0)], 0.0)


def context_label(tokens: TokenRows, row: int, width: int = 4, max_chars: int = 40) -> str:
    """Plain text "… before ⟦token⟧ after …" for axis labels and hover lines (not HTML)."""
    pieces, _, center = tokens.context(row, width, width // 2)
    before = "".join(pieces[:center]).replace("\n", " ")
    after = "".join(pieces[center + 1 :]).replace("\n", " ")
    token = pieces[center].replace("\n", "⏎")
    if len(token) > max_chars - 2:  # a token longer than the label: cut, the cut marked
        token = token[: max(max_chars - 3, 0)] + "…"
    room = max(max_chars - len(token) - 2, 0)
    kept = room * 2 // 3  # (not before[-kept:]: of kept = 0 that is all of it)
    before = before[len(before) - kept :] if kept else ""
    after = after[: room - len(before)]
    return f"{before}⟦{token}⟧{after}"


def hover_html(tokens: TokenRows, row: int, width: int = 8) -> str:
    """One line for a hovered point: its row number and its token in context (escaped)."""
    pieces, _, center = tokens.context(row, width, width // 2)
    before = html.escape("".join(pieces[:center]))
    after = html.escape("".join(pieces[center + 1 :]))
    token = html.escape(pieces[center])
    return (
        f'<div style="{_BOX}"><span style="{_MUTED}">#{row}</span> {before}'
        f"<b style='{_OUTLINE}'>{token}</b>{after}</div>"
    )


def document_html(
    tokens: TokenRows, row: int, activations: np.ndarray, max_tokens: int = 160
) -> str:
    """Row `row`'s document (up to `max_tokens` tokens around it) with `activations` (one per
    dataset row) over its tokens, `row`'s token outlined."""
    half = max_tokens // 2
    pieces, rows, center = tokens.context(row, half, half)
    values = _values_at(rows, activations)
    vmax = float(values.max()) if values.size else 0.0
    return f'<div style="{_BOX}">{tokens_html(pieces, values, vmax, center)}</div>'


def logit_html(promoted: list[tuple[str, float]], suppressed: list[tuple[str, float]]) -> str:
    """Two columns of (token, logit effect): what the unit pushes up, and down."""

    def column(title: str, items: list[tuple[str, float]], color: str) -> str:
        rows = "".join(
            f'<tr><td><code style="background:{color}">{html.escape(repr(text)[1:-1])}</code>'
            f"</td><td style='text-align:right'>{value:+.3g}</td></tr>"
            for text, value in items
        )
        return f"<div><b>{title}</b><table>{rows}</table></div>"

    return (
        '<div style="display:flex; gap:24px">'
        + column("promoted", promoted, "#e5f5e0")
        + column("suppressed", suppressed, "#fde0dd")
        + "</div>"
    )


def label_token_rows(y_axis: Any, tokens: TokenRows, rows: np.ndarray, most: int = 25) -> None:
    """Name heatmap rows (row i spans y in [n-1-i, n-i]) by their token in context; with
    more than `most` rows, every k-th one."""
    n = len(rows)
    step = max(1, -(-n // most))
    shown = range(0, n, step)
    set_ticks(
        y_axis,
        [n - 1 - i + 0.5 for i in shown],
        [context_label(tokens, int(rows[i]), max_chars=32) for i in shown],
    )


class TopTokens(widgets.VBox):
    """A unit's top-activating tokens in context, and its logit effects (causal LMs).

    Attributes
    ----------
    context:
        ToggleButtons: tokens shown on each side (`CONTEXT_LENGTHS`).
    contexts:
        HTML: one line per top token, its activation then the token in context (background
        by the unit's activation on each token, on the unit's own scale).
    logits:
        HTML: the promoted and suppressed tokens (empty for encoders).
    """

    def __init__(self, ex: Explorer, n_logits: int = 10) -> None:
        tokens = ex.dataset.tokens
        assert tokens is not None, "TopTokens needs a Dataset with tokens"
        self.ex, self.tokens, self.n_logits = ex, tokens, int(n_logits)
        self.unit: int | None = None
        self._top: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0))
        self.context = toggle_buttons(
            [(f"±{n}", str(n)) for n in CONTEXT_LENGTHS],
            str(CONTEXT_LENGTHS[1]),
            tooltips=[f"{counted(n, 'token')} on each side" for n in CONTEXT_LENGTHS],
        )
        self.context.observe(lambda _change: self._draw_contexts(), "value")
        self.contexts = widgets.HTML()
        self.logits = widgets.HTML()
        header = widgets.HBox([widgets.HTML("<b>top-activating tokens</b>"), self.context])
        super().__init__(
            [header, self.contexts, self.logits], layout=widgets.Layout(flex="1 1 420px")
        )
        self.add_class("sw-top-tokens")

    def show(self, unit: int, samples: Any, values: Any) -> None:
        """Draw `unit`'s top tokens (`samples` rows with their activations `values`)."""
        self.unit = int(unit)
        self._top = (np.asarray(samples, np.int64), np.asarray(values, np.float32))
        self._draw_contexts()
        effects = self.ex.logit_effects(self.unit, top=self.n_logits)
        if effects is None:
            self.logits.value = ""
            return
        spell = self.tokens.vocab_text
        self.logits.value = "<b>logit effects</b> (W_dec[u] · W_U)" + logit_html(
            list(zip(spell(effects.promoted_ids.tolist()), effects.promoted_values.tolist())),
            list(zip(spell(effects.suppressed_ids.tolist()), effects.suppressed_values.tolist())),
        )

    def clear(self) -> None:
        """Show no unit (the focus was cleared, e.g. by a refit that removed the unit): a
        later click on the context length has nothing to redraw."""
        self.unit = None
        self._top = (np.zeros(0, np.int64), np.zeros(0))
        self.contexts.value = self.logits.value = ""

    def _draw_contexts(self) -> None:
        if self.unit is None:
            return
        width = int(self.context.value)
        activations = unit_activations(self.ex, self.unit)
        vmax = float(self.ex.codes.max_activation[self.unit])
        lines = []
        for row, value in zip(*self._top):
            pieces, rows, center = self.tokens.context(int(row), width, width)
            body = tokens_html(pieces, _values_at(rows, activations), vmax, center)
            lines.append(
                f'<div class="sw-context" style="{_BOX}"><span style="{_MUTED}">'
                f"{value:7.3f} #{int(row)}</span>  {body}</div>"
            )
        self.contexts.value = "".join(lines) or "<i>this unit never fires</i>"


def value_names(ex: Explorer, attribute: str, n_values: int) -> list[str]:
    """Names of an attribute's grid values when it is a templated sentence's word slot
    ("past", "present", ...), else empty strings (the slider then shows the numbers)."""
    tokens = ex.dataset.tokens
    variant = None if tokens is None else tokens.documents.variants.get(attribute)
    if variant is None or len(variant.value_names) != n_values:
        return [""] * n_values
    return list(variant.value_names)


class VariedSentence(widgets.HTML):
    """The probe's varied input for templated sentences: the sentence re-rendered with the
    slider's value, the token whose activation the probe reads outlined (for the swept
    sample's own token: the same token, or the last token of the changed words)."""

    def __init__(self, ex: Explorer) -> None:
        super().__init__()
        tokens = ex.dataset.tokens
        assert tokens is not None
        self.tokens = tokens
        self.add_class("sw-varied-sentence")

    def show(self, sample: int, attribute: str, value: float) -> None:
        documents = self.tokens.documents
        variant = documents.variants.get(attribute)
        doc, pos = int(self.tokens.doc[sample]), int(self.tokens.pos[sample])
        original = documents.texts[doc]
        if variant is None:
            self.value = f'<div style="{_BOX}">{html.escape(original)}</div>'
            return
        index = round(value)
        varied = variant.render(doc, index)
        start, end = aligned_character_span(original, documents.offsets[doc][pos], varied)
        self.value = (
            f'<div style="{_BOX}"><b>varied input</b> ({html.escape(attribute)} = '
            f"{html.escape(variant.value_names[index])}):<br>"
            f"{html.escape(varied[:start])}<span style='{_OUTLINE}; "
            f"background: rgba(255, 127, 14, 0.4)'>{html.escape(varied[start:end])}</span>"
            f"{html.escape(varied[end:])}</div>"
        )
