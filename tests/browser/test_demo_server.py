"""`make demo`'s server, started by the Makefile's own command line: after a JupyterLab page
(the URL the demo prints), Notebook 7's pages (/tree, /notebooks/...) open with no page error.
Without the demo's page config hook they threw "Command 'filebrowser:open-path' not
registered" (jupyter_config/jupyter_server_config.py says why)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from .conftest import ARTIFACTS
from .lab_page import REPO_ROOT, LabPage
from .lab_server import LabServer, start_demo_server
from .test_views import assert_no_errors_but_notebook76s

pytestmark = pytest.mark.browser

QUICKSTART = "01_quickstart.ipynb"


def demo_command(port: int) -> list[str]:
    """`make demo`'s command line with this venv and `port`, read with `make -n` (which runs
    nothing, not even the venv set-up the recipe depends on)."""
    make = ["make", "-n", "-s", "--no-print-directory", "-C", str(REPO_ROOT), "demo"]
    dry_run = subprocess.run(
        [*make, f"VENV={sys.prefix}", f"PORT={port}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    script = dry_run[dry_run.index("nb=notebooks/") :].strip()
    assert "jupyter lab" in script, dry_run
    # fail fast when the port was taken meanwhile (the server would serve on another)
    return ["bash", "-c", f"{script} --ServerApp.port_retries=0"]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[LabServer]:
    # The recipe's relative paths, on a copy: opening the repo's notebook could write to it.
    (tmp_path / "notebooks").mkdir()
    shutil.copy2(REPO_ROOT / "notebooks" / QUICKSTART, tmp_path / "notebooks")
    work_dir = tmp_path / "jupyter"
    work_dir.mkdir()
    # `jupyter lab notebooks/x.ipynb` serves the notebook's folder
    server = start_demo_server(demo_command, tmp_path, tmp_path / "notebooks", work_dir)
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / "demo-server.log")


def test_notebook_7_pages_open_after_a_jupyterlab_page(
    demo_server: LabServer, browser_context: BrowserContext
) -> None:
    page = browser_context.new_page()
    lab = LabPage(page, demo_server, ARTIFACTS / "demo-server")
    try:
        lab.open_notebook(QUICKSTART)  # JupyterLab's page of the notebook, as the demo opens
        page.goto(demo_server.url("tree"))  # Notebook 7's file browser
        expect(page.locator(".jp-DirListing-item", has_text=QUICKSTART)).to_be_visible()
        lab.open_notebook(QUICKSTART, ui="notebook")  # Notebook 7's page of it
        assert "/notebooks/" in page.url
        page.wait_for_timeout(2000)  # the restorer runs once the page's plugins started
        assert_no_errors_but_notebook76s(lab)
    except BaseException:
        lab.save_debug_artifacts("failure")
        raise
    finally:
        page.close()
