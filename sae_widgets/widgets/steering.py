"""SteeringView: push the focused unit through the model and watch the model's output.

For a classifier: an alpha slider; bars of the class probabilities at that alpha beside the
unedited ones; each class's probability as alpha varies (a dashed rule at the slider); and the
unit's own activation read back from the edited layer output. The sweep over the alpha grid
is computed once per (unit, samples, mode) and cached by the Explorer's `Steerer`; moving the
slider only redraws the bars and the rule.

For a causal language model: a prompt and greedy continuations at a few alphas side by side
(-alpha, 0, alpha/2, alpha), cached, computed when the slider is released.

Samples steered (classifier): the selected samples (at most `max_samples`), else the probe
sample, else a fixed random draw of `max_samples` samples.

Running the user's model can fail (out of memory, a prompt longer than the model's context,
a model that rejects the edited activations...). Such a failure is shown in the view's own
status line (`error`), the figures of the failed draw are hidden, and the traceback goes to
the widget log; nothing is raised into the Selection change (the other views still update)
or into the kernel's comm handler (where a slider moved in the browser would hide it).
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Bars, LinearScale, Lines, OrdinalScale

from sae_widgets.explore.explorer import Explorer
from sae_widgets.explore.steering import SteeringResult
from sae_widgets.language_inputs import context_length
from sae_widgets.widgets._legend import needs_isolation
from sae_widgets.widgets._render import CATEGORY10
from sae_widgets.widgets._view import (
    ExplorerView,
    axis,
    check_count,
    figure,
    toggle_buttons,
    wrapping_row,
)
from sae_widgets.wording import counted

__all__ = ["SteeringView", "alpha_grid", "continuation_alphas"]

_BASELINE_COLOR = "#bbbbbb"
_STEERED_COLOR = "#1f77b4"
_FOCUS_COLOR = "#ff7f0e"
_MODES = [("add α·W_dec[u]", "steer"), ("set activation to α", "set")]


def alpha_grid(max_activation: float, mode: str, n: int = 21) -> np.ndarray:
    """The alphas swept for a unit whose largest activation is `max_activation`:
    "steer" from -2x to +2x that activation, "set" from 0 to 3x (n values, 0 included)."""
    scale = float(max_activation) if max_activation > 0 else 1.0
    if mode == "steer":
        half = n // 2
        return np.linspace(-2 * scale, 2 * scale, 2 * half + 1)
    return np.linspace(0.0, 3 * scale, n)


def continuation_alphas(alpha: float) -> list[float]:
    """The alphas shown side by side for a language model at slider value `alpha`."""
    return [-alpha, 0.0, alpha / 2, alpha] if alpha != 0 else [0.0]


class SteeringView(ExplorerView):
    """The model's output as the focused unit is pushed (needs an Explorer with a model).

    Parameters
    ----------
    ex:
        An Explorer built with ``model=`` and ``layer=`` (and ``inputs=`` for a classifier,
        ``tokenizer=`` for a language model).
    max_samples:
        At most this many samples are steered (classifier).
    prompt:
        The language model's first prompt.
    max_new_tokens:
        Length of each greedy continuation (default 20, or half the model's context where
        that is shorter: a model of 16 positions failed every draw with 20).

    Attributes
    ----------
    slider, mode:
        The alpha FloatSlider and the "add α·W_dec[u]" / "set activation to α" toggle.
    bars:
        Class probabilities at the slider's alpha (row 1) beside the unedited ones (row 0).
    curves, rule:
        Each class's probability over the alpha grid, and the dashed rule at the slider.
    activation:
        The unit's mean activation read back from the edited layer, over the grid.
    result:
        The `SteeringResult` drawn (classifier), or None.
    error:
        HTML status line: why the last draw failed (the exception's type and message), or
        empty when it succeeded.
    prompt, texts:
        The prompt Text and the HTML of the continuations (language model).
    """

    def __init__(
        self,
        ex: Explorer,
        *,
        max_samples: int = 64,
        prompt: str = "The",
        max_new_tokens: int | None = None,
    ) -> None:
        max_samples = check_count(max_samples, "max_samples")
        if max_new_tokens is not None:
            max_new_tokens = check_count(max_new_tokens, "max_new_tokens", 4096)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str; got {prompt!r}")
        super().__init__(ex)
        steerer = ex.steerer
        if steerer is None or steerer.kind == "none":
            raise ValueError(
                "ex: a SteeringView needs an Explorer built with model= and layer=, and "
                "inputs= (a classifier) or tokenizer= (a language model)"
            )
        self.steerer = steerer
        self.kind = steerer.kind
        self.max_samples = max_samples
        if max_new_tokens is None:  # 20, or half a shorter context (the prompt needs room)
            limit = context_length(steerer.model)
            max_new_tokens = 20 if limit is None else max(1, min(20, limit // 2))
        self.max_new_tokens = max_new_tokens
        self.result: SteeringResult | None = None
        self._grid = np.zeros(1)
        self._syncing = False
        rng = np.random.default_rng(ex.seed)
        count = min(self.max_samples, ex.n_samples)
        self._default_samples = np.sort(rng.choice(ex.n_samples, count, replace=False))

        self.caption = widgets.HTML()
        self.error = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.error.add_class("sw-steering-error")
        self.mode = toggle_buttons(_MODES, "steer")
        self.mode.observe(lambda _change: self._guarded(self._draw_unit), "value")
        self.slider = widgets.FloatSlider(
            value=0.0,
            min=-1.0,
            max=1.0,
            step=0.1,
            description="α",
            continuous_update=self.kind == "classify",
            readout_format=".2f",
            layout=widgets.Layout(width="460px"),
        )
        self.slider.observe(lambda _change: self._guarded(self._draw_alpha), "value")
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False)
        self.prompt.observe(lambda _change: self._guarded(self._draw_alpha), "value")
        self.texts = widgets.HTML()
        self.texts.add_class("sw-steering-texts")

        names = self._class_names()
        bar_x, bar_y = OrdinalScale(), LinearScale(min=0.0, max=1.0)
        self.bars = Bars(
            x=names,
            y=np.zeros((2, len(names)), np.float32),
            scales={"x": bar_x, "y": bar_y},
            type="grouped",
            colors=[_BASELINE_COLOR, _STEERED_COLOR],
            labels=["unedited", "at α"],
        )
        self.bars_figure = figure(
            [self.bars],
            [Axis(scale=bar_x, label="class"), axis(bar_y, "probability", vertical=True)],
            title="class probabilities at α (grey: unedited)",
            width="360px",
        )
        x_scale, p_scale, a_scale = LinearScale(), LinearScale(min=0.0, max=1.0), LinearScale()
        self.curves = Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros((len(names), 0), np.float32),
            scales={"x": x_scale, "y": p_scale},
            colors=CATEGORY10,
            labels=names,
            stroke_width=1.5,
        )
        self.rule = Lines(
            x=np.zeros(2, np.float32),
            y=np.array([0.0, 1.0], np.float32),
            scales={"x": x_scale, "y": p_scale},
            colors=["#555555"],
            line_style="dashed",
        )
        self.figure = figure(
            [self.curves, self.rule],
            [axis(x_scale, "α"), axis(p_scale, "probability", vertical=True)],
            title="class probabilities as α varies",
            width="360px",
        )
        self.activation = Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": a_scale},
            colors=[_FOCUS_COLOR],
        )
        self.activation_figure = figure(
            [self.activation],
            [axis(x_scale, "α"), axis(a_scale, "activation", vertical=True)],
            title="the unit's activation after the edit",
            width="300px",
        )
        self._controls = wrapping_row([self.mode, self.slider], align_items="center")
        if self.kind == "classify":
            self._output: widgets.Widget = wrapping_row(
                [self.bars_figure, self.figure, self.activation_figure]
            )
            body: list[widgets.Widget] = [self._output]
        else:
            self._output = self.texts
            body = [self.prompt, self.texts]
        self.children = [self.caption, self.error, self._controls, *body]
        self.add_class("sw-steering")
        self.figure.add_class("sw-figure")
        self.follow(lambda _change: self._guarded(self._draw_unit), "unit")
        if self.kind == "classify":
            self.follow(lambda _change: self._guarded(self._draw_unit), "samples", "probe_sample")
        self._guarded(self._draw_unit)

    def _class_names(self) -> list[str]:
        if self.kind != "classify":
            return ["-"]
        names = self.ex.dataset.label_names
        assert self.steerer.inputs is not None
        n_classes = int(self.steerer.sweep(0, [0.0], [0]).baseline.shape[0])
        if names is not None and len(names) == n_classes:
            return [str(n) for n in names]
        return [str(c) for c in range(n_classes)]

    def steered_samples(self) -> tuple[np.ndarray, str]:
        """The samples steered and how they were chosen, in words."""
        chosen = self.selection.samples
        if chosen:
            picked = np.asarray(chosen[: self.max_samples], dtype=np.int64)
            more = f" (first {len(picked)})" if len(chosen) > len(picked) else ""
            return picked, f"{counted(len(chosen), 'selected sample')}{more}"
        if self.selection.probe_sample is not None:
            sample = int(self.selection.probe_sample)
            return np.array([sample]), f"sample {sample}"
        return self._default_samples, counted(len(self._default_samples), "random sample")

    # -- drawing ---------------------------------------------------------------------------------

    def _draw_unit(self) -> None:
        unit = self.selection.unit
        mode = self.mode.value
        if unit is None:
            self.caption.value = "<b>Steering</b>: focus a unit to push it through the model"
            self.result = None
            self._set_visible(False)
            return
        self._set_visible(True)
        self._grid = alpha_grid(float(self.ex.codes.max_activation[unit]), mode)
        step = float(self._grid[1] - self._grid[0]) if self._grid.size > 1 else 1.0
        self._syncing = True
        try:
            with self.slider.hold_sync():
                low, high = float(self._grid[0]), float(self._grid[-1])
                self.slider.min, self.slider.max = min(low, self.slider.max), high
                self.slider.min = low
                self.slider.step = step
                self.slider.value = 0.0
        finally:
            self._syncing = False
        what = "add α·W_dec" if mode == "steer" else "set the activation of"
        if self.kind == "classify":
            samples, described = self.steered_samples()
            self.result = self.steerer.sweep(unit, self._grid, samples, mode)
            self.caption.value = (
                f"<b>Steering unit {unit}</b> ({what} unit {unit} at layer "
                f"{html.escape(self.steerer.layer_name)}) on {described}"
            )
            with self.curves.hold_sync(), self.activation.hold_sync():
                self.curves.x = self._grid.astype(np.float32)
                self.curves.y = self.result.probabilities.T.astype(np.float32)
                self.activation.x = self._grid.astype(np.float32)
                self.activation.y = self.result.unit_activation.astype(np.float32)
        else:
            self.caption.value = (
                f"<b>Steering unit {unit}</b> ({what} unit {unit} at layer "
                f"{html.escape(self.steerer.layer_name)}): greedy continuations"
            )
        self._draw_alpha()

    def redraw(self) -> None:
        """The sweep again with the refreshed SAE (`Explorer.refresh` cleared the Steerer)."""
        self._guarded(self._draw_unit)

    def _set_visible(self, visible: bool) -> None:
        display = None if visible else "none"
        for child in self.children:
            if child is not self.caption and child is not self.error:
                child.layout.display = display

    def _guarded(self, draw: Callable[[], None]) -> None:
        """Run `draw`; if it fails, say so in the view (`error`) and in the widget log, hide
        what the failed draw would have replaced, and return normally: the exception would
        otherwise stop the Selection's other observers, or vanish into the comm handler's
        log when the user moved a control in the browser."""
        try:
            draw()
        except Exception as error:  # the user's model can raise anything
            self._show_error(error)
        else:
            self._clear_error()

    def _show_error(self, error: Exception) -> None:
        self.log.warning("SteeringView: drawing failed", exc_info=True)
        unit = self.selection.unit
        what = "steer" if unit is None else f"steer unit {unit}"
        message = str(error) or "(no message)"
        self.error.value = (
            "<span style='color:var(--jp-error-color1, #d32f2f)'>"
            f"<b>Could not {what}</b>: {html.escape(type(error).__name__)}: "
            f"{html.escape(message)}</span>"
        )
        self.error.layout.display = None
        if self.kind == "classify":
            self.result = None
        else:
            self.texts.value = ""
        self._output.layout.display = "none"

    def _clear_error(self) -> None:
        if self.error.value:
            self.error.value = ""
            self.error.layout.display = "none"
        if self.selection.unit is not None:
            self._output.layout.display = None

    def alpha_index(self) -> int:
        """Index into the alpha grid of the slider's value."""
        return int(np.abs(self._grid - self.slider.value).argmin())

    def _draw_alpha(self) -> None:
        if self._syncing or self.selection.unit is None:
            return
        if self.kind == "classify":
            if self.result is None:
                return
            i = self.alpha_index()
            alpha = float(self._grid[i])
            with self.bars.hold_sync(), self.rule.hold_sync():
                self.bars.y = np.stack([self.result.baseline, self.result.probabilities[i]]).astype(
                    np.float32
                )
                self.rule.x = np.array([alpha, alpha], np.float32)
            return
        self.texts.value = self._continuations_html(float(self.slider.value))

    def continuations(self, alpha: float) -> list[tuple[float, str]]:
        """(alpha, greedy continuation) at the alphas shown for slider value `alpha`."""
        unit = self.selection.unit
        if unit is None:
            return []
        options = {"max_new_tokens": self.max_new_tokens, "mode": self.mode.value}
        prompt = self.prompt.value or " "
        return [
            (a, self.steerer.continuation(unit, a, prompt, **options))
            for a in continuation_alphas(alpha)
        ]

    def _continuations_html(self, alpha: float) -> str:
        cells = []
        muted = "color:var(--jp-ui-font-color2, #777)"  # readable on the dark theme too
        prompt = html.escape(self.prompt.value)
        unit = self.selection.unit
        options = {"max_new_tokens": self.max_new_tokens, "mode": self.mode.value}
        for a, text in self.continuations(alpha):
            assert unit is not None
            read = self.steerer.continuation_activation(
                unit, a, self.prompt.value or " ", **options
            )
            # Prompt and continuation isolated: a bidi control in either ends with the text.
            body = f"<span style='{muted}'>{prompt}</span>{html.escape(text)}"
            if needs_isolation(self.prompt.value + text):
                body = f"<bdi>{body}</bdi>"
            cells.append(
                "<div style='flex:1 1 0;min-width:160px;padding:4px 8px;border-left:2px solid "
                f"#ddd'><b>α = {a:.3g}</b><br>{body}<br><small>unit {unit} on the "
                f"continuation: {read:.3g}</small></div>"
            )
        return f"<div style='display:flex;gap:8px'>{''.join(cells)}</div>"

    def bar_values(self) -> np.ndarray:
        """(2, n_classes) what the bars show: unedited, and at the slider's alpha."""
        return np.asarray(self.bars.y)
