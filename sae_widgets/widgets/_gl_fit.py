"""`RendererFit`: draws jupyter-scatter's frames at the size of its plots, not of the window,
and after a lasso's outline is sent.

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
and the next frame shrinks it back. Frames requested within 120 ms of a pointer release on a
plot are held back until then (the lasso stays drawn), so a lasso's outline reaches the kernel
sooner: jupyter-scatter sends it only after the kernel took the points it selected (ipywidgets
keeps one message per widget in flight), and a software frame drawn in between delayed it by
~100 ms. `size` reports the renderer's size after a fit (``"<w>x<h>"`` device pixels).
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["RendererFit"]

_ESM = """
const FIND_EVERY_MS = 100;
const GIVE_UP_AFTER = 600;  // tries: a minute for jupyter-scatter to create its renderer

const HOLD_AFTER_RELEASE_MS = 120;

function fit(renderer, report) {
  const targets = new Set();
  const render = renderer.render;
  // When a lasso ends, jupyter-scatter sends the points it selected, then (once the kernel
  // has taken those: ipywidgets keeps one message per widget in flight) the outline the
  // kernel selects from. A software frame drawn in between delays the outline by its length,
  // so frames wait (at most 120 ms) after a release on a plot; the lasso stays drawn meanwhile.
  let holdUntil = -Infinity;
  const held = new Map();  // target canvas -> its latest frame, while frames wait
  window.addEventListener('pointerup', event => {
    const onPlot = c => c.parentElement && c.parentElement.contains(event.target);
    if ([...targets].some(onPlot)) holdUntil = performance.now() + HOLD_AFTER_RELEASE_MS;
  }, true);
  renderer.render = (draw, target) => {
    const wait = holdUntil - performance.now();
    if (wait > 0) {
      if (held.size === 0) {
        setTimeout(() => {
          const frames = [...held];
          held.clear();
          for (const [canvas, drawFrame] of frames) renderer.render(drawFrame, canvas);
        }, wait);
      }
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
}

export default {
  render({ model }) {
    let tries = 0;
    let timer = null;
    const report = size => {
      for (const m of window.__swFitModels) { m.set('size', size); m.save_changes(); }
    };
    const install = () => {
      const renderer = window.jupyterScatter && window.jupyterScatter.renderer;
      if (renderer && !renderer.isDestroyed) {
        if (!renderer.__swFitted) {
          renderer.__swFitted = true;
          fit(renderer, report);
        }
        window.__swFitModels.add(model);
      } else if (++tries < GIVE_UP_AFTER) {
        timer = setTimeout(install, FIND_EVERY_MS);
      }
    };
    window.__swFitModels = window.__swFitModels || new Set();
    install();
    return () => { clearTimeout(timer); window.__swFitModels.delete(model); };
  },
};
"""


class RendererFit(anywidget.AnyWidget):  # type: ignore[misc]
    """Sizes jupyter-scatter's shared renderer to its plots (see the module docstring).

    Display it anywhere on the page, once or more (each instance reports the fitted size).
    """

    _esm = _ESM
    size = traitlets.Unicode(
        "", help="the renderer's canvas size after the last fit, '<w>x<h>', set by the browser"
    ).tag(sync=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.layout.display = "none"  # nothing to see
