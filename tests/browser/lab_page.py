"""Drive a notebook in a real JupyterLab page the way a user does, and read what it shows.

Every wait is on a condition the user could see (cells loaded, kernel idle, execution counts
filled, figures drawn); timeouts only bound those waits.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops
from playwright.sync_api import ConsoleMessage, Error, Locator, Page

from .lab_server import LabServer

REPO_ROOT = Path(__file__).resolve().parents[2]

# The notebook in front of the user (hidden tabs keep their DOM but carry lm-mod-hidden).
ACTIVE_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
STDERR_OUTPUT = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'

# Shared by the completion wait and the error report, so both agree on what an error is in a
# cell's output: a traceback or error output (JupyterLab renders both as stderr), or a widget
# that failed to render. Callback exceptions and uncaught JS errors are gathered in Python.
_ERRORS_JS = f"""
(panel) => {{
  const looksLikeError = /Traceback|^\\w*(Error|Exception)\\b/m;
  const stderr = [...panel.querySelectorAll('{STDERR_OUTPUT}')]
    .map(node => node.textContent)
    .filter(text => looksLikeError.test(text));
  const widgets = [...panel.querySelectorAll('.jp-OutputArea-output')]
    .filter(node => node.querySelector('.jupyter-widgets-error-widget')
                    || /^Error displaying widget/.test(node.textContent.trim()))
    .map(node => 'widget failed to render: ' + node.textContent.trim().slice(0, 300));
  return stderr.concat(widgets);
}}
"""

_LOOKS_LIKE_ERROR = re.compile(r"Traceback|^\w*(Error|Exception)\b", re.MULTILINE)

# What the widget manager logs to the browser console (and nowhere else) when a widget's state
# cannot be applied or a view cannot be made, e.g. bqplot's "Error setting state: invalid
# format: .undefinedg" when an axis had to guess its number format.
_WIDGET_CONSOLE_ERROR = re.compile(
    r"Error setting state|Could not create (a )?view|Error creating view|"
    r"Error (de)?serializ|Error displaying widget|invalid format"
)

_RUN_FINISHED_JS = f"""
([expected]) => {{
  const panel = document.querySelector('{ACTIVE_NOTEBOOK}');
  if (!panel) return false;
  // JupyterLab's toolbar shows the kernel state; Notebook 7's has no such indicator, where
  // the prompts alone tell (no cell waiting, every cell counted).
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const idle = indicator === null || indicator.getAttribute('data-status') === 'idle';
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(node => node.textContent);
  if (!idle || prompts.some(text => text.includes('*'))) return false;
  const executed = prompts.filter(text => /\\[\\d+\\]/.test(text)).length;
  // An error stops "Run All" early: the later cells never get a count.
  return executed >= expected || ({_ERRORS_JS})(panel).length > 0;
}}
"""

_FIGURES_JS = f"""
() => [...document.querySelectorAll('{ACTIVE_NOTEBOOK} .bqplot.figure')].map(figure => {{
  const box = figure.getBoundingClientRect();
  const svg = figure.querySelector('svg.svg-figure');
  // Drawn mark elements only: not axes, legend, clip paths, selectors or the event layer.
  const marks = svg ? [...svg.querySelectorAll('path, circle, rect, image, line, polygon')]
    .filter(el => !el.closest('defs, clipPath, .axis, .g_legend, .selector, .lassoselector')
                  && !el.classList.contains('plotarea_events')) : [];
  const canvases = [...figure.querySelectorAll('canvas')]
    .map(c => [c.width, c.height]).filter(([w, h]) => w > 0 && h > 0);
  const heading = figure.querySelector('text.mainheading');
  return {{
    title: heading ? heading.textContent : '',
    width: box.width, height: box.height,
    svg_marks: marks.length, canvases: canvases.length,
  }};
}})
"""


@dataclass(frozen=True)
class FigureInfo:
    """What a bqplot Figure on the page shows: its size, drawn SVG mark elements, canvases.

    Every Figure carries a canvas for WebGL marks whether it uses one or not, so a canvas
    proves nothing; `LabPage.canvas_painted_pixels` measures what it actually shows.
    """

    title: str
    width: float
    height: float
    svg_marks: int
    canvases: int


class LabPage:
    """A Playwright page on a test JupyterLab, with the few moves notebook tests need."""

    def __init__(self, page: Page, server: LabServer, artifacts_dir: Path) -> None:
        self.page = page
        self.server = server
        self.artifacts_dir = artifacts_dir
        self.console: list[str] = []
        self.page_errors: list[Error] = []  # with their stacks: where each was thrown
        self.notebook: str | None = None
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(error))

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    def open_notebook(self, name: str, timeout_s: float = 120, ui: str = "lab") -> None:
        """Open `name` (relative to the served folder) and wait for its cells and kernel.

        ui="lab" opens it in JupyterLab, ui="notebook" in Notebook 7 (same server).
        """
        if ui not in ("lab", "notebook"):
            raise ValueError(f"ui: expected 'lab' or 'notebook', got {ui!r}")
        notebook = json.loads((self.server.root_dir / name).read_text())
        n_cells = len(notebook["cells"])
        self.notebook = name
        panel = self.page.locator(ACTIVE_NOTEBOOK)
        cells = panel.locator(".jp-Notebook .jp-Cell")
        if ui == "notebook":
            self.page.goto(self.server.url(f"notebooks/{name}"))
            cells.nth(n_cells - 1).wait_for(state="attached", timeout=timeout_s * 1000)
            self._wait_for_idle_kernel(name, timeout_s)
            return
        # "reset" starts from an empty workspace: tabs of earlier tests would reopen, each
        # with a new kernel.
        self.page.goto(self.server.url(f"lab/tree/{name}") + "&reset")
        cells.nth(n_cells - 1).wait_for(state="attached", timeout=timeout_s * 1000)
        # The status bar names the kernel and its state once the session is connected.
        self.page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle$")).wait_for(
            timeout=timeout_s * 1000
        )
        self.collapse_left_sidebar()

    def _wait_for_idle_kernel(self, name: str, timeout_s: float) -> None:
        """Wait until the server has a session for `name` whose kernel is idle (Notebook 7
        shows no status bar to read it from)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sessions = self.server.api("sessions")
            for session in sessions if isinstance(sessions, list) else []:
                kernel = session.get("kernel") or {}
                if session.get("path", "").endswith(name) and kernel.get("execution_state") == (
                    "idle"
                ):
                    self.page.wait_for_timeout(500)  # the page connects to the kernel too
                    return
            self.page.wait_for_timeout(250)
        raise AssertionError(f"no idle kernel for {name} after {timeout_s} s")

    def collapse_left_sidebar(self) -> None:
        """Close the file browser (as clicking its tab does), leaving the notebook the width."""
        stack = self.page.locator("#jp-left-stack")
        if stack.is_visible():
            self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
            stack.wait_for(state="hidden")

    def run_all_cells(self, timeout_s: float = 600) -> None:
        """Run > Run All Cells, then wait until every code cell ran (or one failed)."""
        if self.notebook is None:
            raise ValueError("open_notebook() must come before run_all_cells()")
        expected = self._count_code_cells(self.notebook)
        self.page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        self.page.wait_for_function(
            _RUN_FINISHED_JS, arg=[expected], timeout=timeout_s * 1000, polling=250
        )

    def _count_code_cells(self, name: str) -> int:
        notebook = json.loads((self.server.root_dir / name).read_text())
        return sum(
            cell["cell_type"] == "code" and "".join(cell["source"]).strip() != ""
            for cell in notebook["cells"]
        )

    def errors(self, ignored_page_error: Callable[[Error], bool] | None = None) -> list[str]:
        """Error outputs and broken widgets in the open notebook, exceptions raised by widget
        callbacks (JupyterLab shows them only in its log console), uncaught JS errors (less
        those `ignored_page_error` picks by message and stack), and widget state errors the
        widget manager logs only to the browser console."""
        found = self.page.locator(ACTIVE_NOTEBOOK).evaluate(_ERRORS_JS)
        return [
            *found,
            *self.log_console_errors(),
            *(
                f"uncaught page error: {error.message} ({thrown_at(error)})"
                for error in self.page_errors
                if ignored_page_error is None or not ignored_page_error(error)
            ),
            *(
                f"browser console: {line}"
                for line in self.console
                if _WIDGET_CONSOLE_ERROR.search(line)
            ),
        ]

    def log_console_errors(self) -> list[str]:
        """Tracebacks in the notebook's log console, opened only when its badge counts any.

        A callback that raises (a click or brush handler) never shows in a cell's output.
        """
        badge = self.page.locator(".jp-LogConsoleStatusItem")
        count = re.search(r"\d+", badge.inner_text()) if badge.count() == 1 else None
        if count is None or int(count.group()) == 0:
            return []
        badge.click()
        entries = self.page.locator(".jp-LogConsolePanel .jp-OutputArea-output")
        entries.first.wait_for()
        return [
            f"log console: {text.strip()[:3000]}"
            for text in entries.all_inner_texts()
            if _LOOKS_LIKE_ERROR.search(text)
        ]

    def assert_no_errors(self) -> None:
        errors = self.errors()
        assert not errors, "errors in the notebook page:\n\n" + "\n\n".join(errors)

    def figures(self) -> list[FigureInfo]:
        """Every bqplot Figure in the open notebook, in page order."""
        return [FigureInfo(**info) for info in self.page.evaluate(_FIGURES_JS)]

    def figure_locators(self) -> Locator:
        return self.page.locator(f"{ACTIVE_NOTEBOOK} .bqplot.figure")

    def assert_figures_rendered(self, min_count: int, timeout_s: float = 60) -> list[FigureInfo]:
        """Wait until at least `min_count` figures are laid out and every figure has drawn
        something (SVG mark elements, or pixels on its canvas); returns them all."""
        self.page.wait_for_function(
            f"([count]) => ({_FIGURES_JS})().filter(f => f.width > 0 && f.height > 0).length"
            " >= count",
            arg=[min_count],
            timeout=timeout_s * 1000,
            polling=250,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            figures = self.figures()
            blank = [
                info.title or f"figure #{index}"
                for index, info in enumerate(figures)
                if info.svg_marks == 0
                and self.canvas_painted_pixels(self.figure_locators().nth(index)) == 0
            ]
            if not blank:
                return figures
            if time.monotonic() > deadline:
                raise AssertionError(f"figures still blank after {timeout_s} s: {blank}")
            self.page.wait_for_timeout(250)  # poll interval; WebGL draws on its own schedule

    def figure(self, title: str | re.Pattern[str]) -> Locator:
        """The bqplot Figure whose title is exactly `title` (a string) or matches it."""
        if isinstance(title, str):
            title = re.compile(f"^{re.escape(title)}$")
        return self.figure_locators().filter(
            has=self.page.locator("text.mainheading", has_text=title)
        )

    def view(self, css_class: str) -> Locator:
        """The element of the open notebook carrying `css_class`, e.g. a dashboard view:
        "sw-status", "sw-pca", "sw-heatmap", "sw-inspector", "sw-probe", "sw-monitor"."""
        return self.page.locator(f"{ACTIVE_NOTEBOOK} .{css_class}")

    def view_figure(self, css_class: str) -> Locator:
        """The main bqplot Figure (CSS class "sw-figure") of the view carrying `css_class`."""
        return self.view(css_class).locator(".bqplot.figure.sw-figure")

    def image_extents(self, figure: Locator) -> list[dict[str, float]]:
        """Where each Image mark's picture lies, as fractions of the figure's plot area:
        left, right, top, bottom (0 and 1 are the plot area's edges)."""
        return figure.evaluate(
            """figure => {
                const area = figure.querySelector('rect.plotarea_events')
                    .getBoundingClientRect();
                return [...figure.querySelectorAll('svg.svg-figure image')].map(image => {
                    const box = image.getBoundingClientRect();
                    return {
                        left: (box.left - area.left) / area.width,
                        right: (box.right - area.left) / area.width,
                        top: (box.top - area.top) / area.height,
                        bottom: (box.bottom - area.top) / area.height,
                    };
                });
            }"""
        )

    def wait_for_image_change(
        self, figure: Locator, before: list[str], timeout_s: float = 30
    ) -> list[str]:
        """Wait until a figure's Image marks show other pictures than `before`; returns them."""
        self.page.wait_for_function(
            """([figure, before]) => {
                const now = [...figure.querySelectorAll('svg.svg-figure image')]
                    .map(i => i.getAttribute('href') || i.getAttribute('xlink:href'));
                return JSON.stringify(now) !== JSON.stringify(before);
            }""",
            arg=[figure.element_handle(), before],
            timeout=timeout_s * 1000,
            polling=250,
        )
        return self.image_sources(figure)

    def drag(self, figure: Locator, path: list[tuple[float, float]]) -> None:
        """Press the mouse at path[0] of a figure's plot area, move through the other points,
        release at the last: how a user draws a brush rectangle or a lasso.

        Points are (x, y) fractions of the plot area, from its top-left corner.
        """
        figure.scroll_into_view_if_needed()
        area = figure.locator("rect.plotarea_events").bounding_box()
        if area is None:
            raise ValueError("figure has no visible plot area to drag on")
        if len(path) < 2:
            raise ValueError(f"path: expected at least 2 points, got {len(path)}")
        points = [
            (area["x"] + fx * area["width"], area["y"] + fy * area["height"]) for fx, fy in path
        ]
        mouse = self.page.mouse
        mouse.move(*points[0])
        mouse.down()
        for point in points[1:]:
            mouse.move(*point, steps=8)  # intermediate moves, as a real drag sends
        mouse.up()

    def brush(self, figure: Locator, start: tuple[float, float], end: tuple[float, float]) -> None:
        """Drag a rectangle from `start` to `end` (fractions of the plot area)."""
        self.drag(figure, [start, end])

    def image_sources(self, figure: Locator) -> list[str]:
        """The picture URLs (data: or blob:) of a figure's SVG `image` elements (bqplot Image
        marks); a new picture gets a new URL."""
        return figure.locator("svg.svg-figure image").evaluate_all(
            "images => images.map(i => i.getAttribute('href') || i.getAttribute('xlink:href'))"
        )

    def canvas_painted_pixels(self, figure: Locator) -> int:
        """Pixels that a figure's canvases (WebGL marks) change on screen.

        The canvas is transparent over the SVG axes and grid, so its own content is what
        differs between a screenshot with and without it.
        """
        canvases = figure.locator("canvas")
        if canvases.count() == 0:
            return 0
        figure.scroll_into_view_if_needed()
        box = figure.bounding_box()
        if box is None or box["width"] == 0 or box["height"] == 0:
            raise ValueError("figure is not visible, so nothing on it can be measured")
        shown = self.page.screenshot(clip=box)
        canvases.evaluate_all("cs => cs.forEach(c => { c.style.visibility = 'hidden'; })")
        try:
            hidden = self.page.screenshot(clip=box)
        finally:
            canvases.evaluate_all("cs => cs.forEach(c => { c.style.visibility = ''; })")
        return changed_pixels(shown, hidden)

    def screenshot(
        self,
        name: str,
        target: Locator | None = None,
        docs_name: str | None = None,
        viewport_height: int | None = None,
    ) -> Path:
        """Save a PNG of the page (or of `target`) under the test's artifacts folder.

        With `docs_name`, the same image is also copied to docs/<docs_name> for the README.
        `viewport_height` makes the window that tall for this one picture.
        """
        path = self.artifacts_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        viewport = self.page.viewport_size
        if viewport_height is not None and viewport is not None:
            # JupyterLab scrolls inside its own panels, so a widget taller than the window
            # is only captured whole when the window is made tall enough to hold it.
            self.page.set_viewport_size({"width": viewport["width"], "height": viewport_height})
            self.page.wait_for_function(f"() => window.innerHeight === {viewport_height}")
        try:
            # The pointer rests on the empty right sidebar, so no hover effect (a figure's
            # fading toolbar) lands in the picture; transitions are finished, not caught midway.
            size = self.page.viewport_size or {"width": 1, "height": 1}
            self.page.mouse.move(size["width"] - 2, size["height"] / 2)
            if target is None:
                self.page.screenshot(path=path, animations="disabled")
            else:
                target.scroll_into_view_if_needed()
                target.screenshot(path=path, animations="disabled")
        finally:
            if viewport_height is not None and viewport is not None:
                self.page.set_viewport_size(viewport)
        if docs_name is not None:
            shutil.copyfile(path, REPO_ROOT / "docs" / docs_name)
        return path

    def save_debug_artifacts(self, label: str) -> None:
        """Screenshot, browser console and server log, for a test that failed."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.page.screenshot(path=self.artifacts_dir / f"{label}.png")
        except Error as error:  # a crashed page still leaves the logs below
            self.console.append(f"[screenshot failed] {error}")
        (self.artifacts_dir / "console.log").write_text("\n".join(self.console) + "\n")
        shutil.copyfile(self.server.log_path, self.artifacts_dir / "jupyter-server.log")


def thrown_at(error: Error) -> str:
    """The top frame of an uncaught page error's stack: the script, line and column."""
    frames = [
        line.strip() for line in (error.stack or "").splitlines() if line.startswith("    at ")
    ]
    return frames[0] if frames else "no stack"


def changed_pixels(before_png: bytes, after_png: bytes) -> int:
    """How many pixels differ between two screenshots of the same element."""
    before, after = _rgb(before_png), _rgb(after_png)
    if before.size != after.size:
        return max(before.size[0] * before.size[1], after.size[0] * after.size[1])
    return sum(ImageChops.difference(before, after).convert("L").histogram()[1:])


def _rgb(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")
