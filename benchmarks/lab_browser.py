"""A real JupyterLab in headless Chromium for the browser benchmarks (the tests' own server
and page helpers, tests/browser/), started and stopped around a `with` block."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.browser.lab_page import LabPage  # noqa: E402
from tests.browser.lab_server import start_lab_server  # noqa: E402


@contextmanager
def lab_in_chromium(root: Path, work: Path, extra_env: dict[str, str]) -> Iterator[LabPage]:
    """JupyterLab serving `root` (its private dirs and Chromium's profile, `work / "profile"`,
    under `work`; `extra_env` in its kernels' environment), and a 1400 x 1000 page on it."""
    # The kernels import this checkout's sae_widgets (as the browser tests' do), not whichever
    # one the environment has installed.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    server = start_lab_server(root, work, extra_env={"PYTHONPATH": path, **extra_env})
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(work / "profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(60_000)
            try:
                yield LabPage(context.new_page(), server, work / "artifacts")
            finally:
                context.close()
    finally:
        server.stop()
