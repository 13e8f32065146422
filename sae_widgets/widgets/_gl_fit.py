"""`RendererFit`: draws jupyter-scatter's frames at the size of its plots, not of the window.

Why: jupyter-scatter (regl-scatterplot) draws every plot of the page through one shared WebGL
renderer (``window.jupyterScatter.renderer``) whose canvas is as large as the browser window.
Each frame clears that canvas and a float framebuffer of the same size, draws the points, runs
a gamma pass over every pixel and copies the plot's part to the plot's own canvas. Without a
GPU (Chromium then renders WebGL in software, as on our CI machine) the cost follows the
pixels, not the points: measured in JupyterLab 4 with a 1400 x 1000 window, 230-580 ms per
frame for a 324 x 380 plot, and a lasso waits for such a frame before the browser sends it to
the kernel.

The fit wraps the renderer's ``render``: before each frame it resizes the renderer to the
largest plot canvas it has drawn into that is still on the page (what regl-scatterplot's own
image export does for one plot: ``renderer.resize`` then ``renderer.refresh``), so every plot
is still drawn whole, centred as before. A window resize makes the renderer window-sized
again; the next frame shrinks it back. `size` reports the renderer's size after a fit
(``"<w>x<h>"`` device pixels), for tests.
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["RendererFit"]

_ESM = """
const FIND_EVERY_MS = 100;
const GIVE_UP_AFTER = 600;  // tries: a minute for jupyter-scatter to create its renderer

function fit(renderer, report) {
  const targets = new Set();
  const render = renderer.render;
  renderer.render = (draw, target) => {
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
