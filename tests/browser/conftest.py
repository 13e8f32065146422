"""Fixtures: one JupyterLab and one headless Chromium per session, a fresh page per test.

The server serves a temporary copy of notebooks/*.ipynb and tests/browser/fixtures/*.ipynb
(side by side, so open them by file name) with SAE_WIDGETS_FAST=1 in the kernels'
environment. A failing test leaves a screenshot, the browser console and the server log in
test-artifacts/browser/<test name>/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from .lab_page import REPO_ROOT, LabPage
from .lab_server import LabServer, copy_notebooks, start_lab_server

# Debian's Chromium; Playwright's own browser downloads are never used (no internet in CI).
CHROMIUM = os.environ.get("SAE_WIDGETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",  # WebGL still works, in software (SwiftShader)
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
FIXTURE_NOTEBOOKS = Path(__file__).parent / "fixtures"


def served_notebooks() -> list[Path]:
    """The tutorial notebooks and the browser-test fixture notebooks."""
    return sorted((REPO_ROOT / "notebooks").glob("*.ipynb")) + sorted(
        FIXTURE_NOTEBOOKS.glob("*.ipynb")
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the item so fixtures can tell whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    work_dir = tmp_path_factory.mktemp("jupyterlab")
    root_dir = work_dir / "notebooks"
    root_dir.mkdir()
    copy_notebooks(served_notebooks(), root_dir)
    # The kernels import this checkout's sae_widgets, not whichever one the venv installed.
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    env = {"SAE_WIDGETS_FAST": "1", "PYTHONPATH": path}
    server = start_lab_server(root_dir, work_dir, extra_env=env)
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / "jupyter-server.log")


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package (apt-get install "
            "chromium, as .ci/run does) or point SAE_WIDGETS_CHROMIUM at a Chromium binary"
        )
    profile_dir = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            timeout=60_000,
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, lab_server: LabServer, browser_context: BrowserContext
) -> Iterator[LabPage]:
    """A new page on the session's JupyterLab; open a notebook with lab.open_notebook()."""
    artifacts_dir = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(artifacts_dir, ignore_errors=True)  # no stale screenshots from an old run
    page = browser_context.new_page()
    lab_page = LabPage(page, lab_server, artifacts_dir)
    try:
        yield lab_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            lab_page.save_debug_artifacts("failure")
        page.close()
        lab_server.shutdown_kernels()  # the next test starts from fresh kernels and memory
