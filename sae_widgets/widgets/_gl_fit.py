"""`RendererFit`: draws jupyter-scatter's frames at the size of its plots, not of the window,
and after the other views have shown what a lasso or a unit change did.

Why: jupyter-scatter (regl-scatterplot) draws every plot of the page through one shared WebGL
renderer (``window.jupyterScatter.renderer``) whose canvas is as large as the browser window.
Each frame clears that canvas and a float framebuffer of the same size, draws the points, runs
a gamma pass over every pixel and copies the plot's part to the plot's own canvas. Without a
GPU (Chromium then renders WebGL in software, as on our CI machine) both the pixels and the
points cost: measured in JupyterLab 4, 1400 x 1000 window, 324 x 380 plot, machine at load ~5
on 2 cores: 230-580 ms per frame of 50,000 points window-sized, 150-190 ms plot-sized; 90 ms
for 20,000 points, 45 ms for 8,000. A lasso waits for such a frame before the browser sends it.

The fit wraps the renderer's ``render``. Before each frame it resizes the renderer to the
largest plot canvas it has drawn into that is still on the page (what regl-scatterplot's own
image export does for one plot: ``renderer.resize`` then ``renderer.refresh``), so every plot
is still drawn whole, centred as before; a window resize makes the renderer window-sized again
and the next frame shrinks it back. `size` reports the renderer's size after a fit
(``"<w>x<h>"`` device pixels).

Frames also wait (the plot keeps showing its last frame, the lasso stays drawn) from a pointer
release on a plot, or from the kernel's `hold` (sent before new colours), until the kernel's
`release` (sent after the last update of that action; both through `view_state`, so a fit that
anywidget loaded late still gets them: see _steady_anywidget), then until the browser has
painted the other views; at most 1 s. A software frame blocks the page: drawn as soon as a
lasso ended it delayed the outline's way to the kernel (jupyter-scatter sends it only after the
kernel took the selected points: ipywidgets keeps one message per widget in flight), and drawn
when the kernel's answers arrived it delayed every other view by its length (measured at load
~4: a 170 ms frame between the kernel's answers and their display, lasso 500 ms to the views).

Draws of new points wait for the plot's running one. regl-scatterplot rejects a ``draw``
that comes while its last one still runs ("Ignoring draw call as the previous draw call has
not yet finished"), and jupyter-scatter does not wait: points (positions, or colours, which
travel in the same array) sent again within a draw's time were dropped, and the plot kept
showing older points than its model held (tests/browser/test_refresh_burst.py: a few quick
refreshes and unit changes). The fit wraps each plot's ``draw`` so that a draw asked for
meanwhile starts when the running one ends, the latest only (older points are superseded).
"""

from __future__ import annotations

import traitlets

from sae_widgets.widgets._steady_anywidget import VIEW_STATE_JS, SteadyAnyWidget

__all__ = ["RendererFit"]

_ESM = (
    VIEW_STATE_JS
    + """
const FIND_EVERY_MS = 100;
const GIVE_UP_AFTER = 600;  // tries: a minute for jupyter-scatter to create its renderer

// Frames wait after a release on a plot, or when the kernel says it is sending an update, until
// the kernel says the views are updated (then after the browser has painted them), or at most:
const HOLD_AT_MOST_MS = 1000;

// One draw at a time per plot, the newest waiting one next (see the module docstring).
function serializeDraws(plot) {
  if (plot.__swSerialDraws) return;
  plot.__swSerialDraws = true;
  const draw = plot.draw;
  let running = false;
  let waiting = null;  // [points, options, resolve] of the newest draw asked for meanwhile
  const start = (points, options) => {
    running = true;
    return draw(points, options).finally(() => {
      running = false;
      if (waiting === null) return;
      const [nextPoints, nextOptions, resolve] = waiting;
      waiting = null;
      resolve(start(nextPoints, nextOptions));
    });
  };
  plot.draw = (points, options) => {
    if (!running) return start(points, options);
    if (waiting !== null) waiting[2]();  // superseded: the newer points are drawn instead
    return new Promise(resolve => { waiting = [points, options, resolve]; });
  };
}

// jupyter-scatter keeps each plot's regl-scatterplot on the element around its canvas (`api`).
function plotOf(canvas) {
  for (let node = canvas; node; node = node.parentElement) {
    if (node.api && typeof node.api.draw === 'function') return node.api;
  }
  return null;
}

function fit(renderer, report) {
  const targets = new Set();
  const render = renderer.render;
  let holdUntil = -Infinity;
  let timer = null;
  const held = new Map();  // target canvas -> its latest frame, while frames wait
  const flush = () => {
    clearTimeout(timer);
    timer = null;
    holdUntil = -Infinity;
    const frames = [...held];
    held.clear();
    for (const [canvas, drawFrame] of frames) renderer.render(drawFrame, canvas);
  };
  const hold = () => { holdUntil = performance.now() + HOLD_AT_MOST_MS; };
  // The kernel's earlier messages are applied by now; their views draw in the next frame,
  // and the held WebGL frames right after it.
  const release = () => requestAnimationFrame(() => setTimeout(flush, 0));
  window.addEventListener('pointerup', event => {
    const onPlot = c => c.parentElement && c.parentElement.contains(event.target);
    if ([...targets].some(onPlot)) hold();
  }, true);
  renderer.render = (draw, target) => {
    const plot = target && plotOf(target);
    if (plot) serializeDraws(plot);
    const wait = holdUntil - performance.now();
    if (wait > 0) {
      if (timer === null) timer = setTimeout(flush, wait);
      held.set(target, draw);
      return undefined;
    }
    targets.add(target);
    let width = 0;
    let height = 0;
    for (const canvas of targets) {
      if (!canvas.isConnected) { targets.delete(canvas); continue; }
      width = Math.max(width, canvas.width);
      height = Math.max(height, canvas.height);
    }
    const shared = renderer.canvas;
    if (width > 0 && height > 0 && (shared.width !== width || shared.height !== height)) {
      const ratio = window.devicePixelRatio || 1;
      renderer.resize(width / ratio, height / ratio);
      renderer.refresh();  // regl re-reads the drawing buffer's size (its viewport)
      report(`${shared.width}x${shared.height}`);
    }
    return render(draw, target);
  };
  return { hold, release };
}

export default {
  async render({ model }) {
    const state = await viewState(model);  // the kernel's messages come through it
    let tries = 0;
    let timer = null;
    const report = size => {
      for (const m of window.__swFitModels) { m.set('size', size); m.save_changes(); }
    };
    const install = () => {
      const renderer = window.jupyterScatter && window.jupyterScatter.renderer;
      if (renderer && !renderer.isDestroyed) {
        if (!renderer.__swFit) renderer.__swFit = fit(renderer, report);
        window.__swFitModels.add(model);
      } else if (++tries < GIVE_UP_AFTER) {
        timer = setTimeout(install, FIND_EVERY_MS);
      }
    };
    // The kernel's "hold" comes before an update that redraws a plot (new colours), its
    // "release" after the last message of an action (see RendererFit.release).
    const onMessage = message => {
      const frames = window.jupyterScatter && window.jupyterScatter.renderer
        && window.jupyterScatter.renderer.__swFit;
      if (frames && message && message.frames === 'hold') frames.hold();
      if (frames && message && message.frames === 'release') frames.release();
    };
    state.on('msg:custom', onMessage);
    window.__swFitModels = window.__swFitModels || new Set();
    install();
    return () => {
      clearTimeout(timer);
      state.off('msg:custom', onMessage);
      window.__swFitModels.delete(model);
    };
  },
};
"""
)


class RendererFit(SteadyAnyWidget):
    """Sizes jupyter-scatter's shared renderer to its plots (see the module docstring).

    Display it anywhere on the page, once or more (each instance reports the fitted size).
    """

    _esm = _ESM
    has_view_state = True  # its custom messages: hold and release
    size = traitlets.Unicode(
        "", help="the renderer's canvas size after the last fit, '<w>x<h>', set by the browser"
    ).tag(sync=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.layout.display = "none"  # nothing to see
        self.holding = False  # whether the browser holds frames until `release`

    def hold(self) -> None:
        """Ask the browser to hold WebGL frames (e.g. before new colours), until `release`."""
        if not self.holding:
            self.holding = True
            self.view_state.send({"frames": "hold"})

    def release(self) -> None:
        """The views' updates of an action are all sent: the browser draws the held frames
        once it has painted them (nothing is sent when nothing is held)."""
        if self.holding:
            self.holding = False
            self.view_state.send({"frames": "release"})
