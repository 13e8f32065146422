"""The tutorial notebooks run top to bottom in a fresh kernel, and are committed clean.

Execution (marked `notebooks`, slow) uses nbclient with the venv's python3 kernel and
SAE_WIDGETS_FAST=1, which lets a notebook shrink its data and epochs for the test run. Each
executed notebook is saved to test-artifacts/notebooks/ for inspection. Until notebooks/ holds
a tutorial, the browser smoke notebook stands in, so `pytest -m notebooks` never collects
zero tests (pytest exits 5 on that, which would fail CI).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
FIXTURE_NOTEBOOKS_DIR = REPO_ROOT / "tests" / "browser" / "fixtures"
SMOKE_NOTEBOOK = FIXTURE_NOTEBOOKS_DIR / "smoke.ipynb"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "notebooks"
CELL_TIMEOUT_S = int(os.environ.get("SAE_WIDGETS_CELL_TIMEOUT", "600"))

# Tracebacks, exception lines and printed warnings in stderr are failures too: a reader of
# the tutorial would see them.
STDERR_PROBLEM = re.compile(r"Traceback|^\w*(Error|Exception)\b|\b\w*Warning: ", re.MULTILINE)


def tutorial_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def notebooks_to_execute() -> list[Path]:
    return tutorial_notebooks() or [SMOKE_NOTEBOOK]


def output_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Error outputs, and stderr text that shows a traceback, an exception or a warning."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                if STDERR_PROBLEM.search(output.text):
                    problems.append(f"cell {index} stderr: {output.text.strip()[:2000]}")
    return problems


@pytest.mark.notebooks
@pytest.mark.parametrize("path", notebooks_to_execute(), ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    # Run a copy, so files a notebook writes (checkpoints, runs/) never land in the repo.
    work_dir = tmp_path / "notebooks"
    shutil.copytree(path.parent, work_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    notebook = nbformat.read(work_dir / path.name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",  # the venv's ipykernel: jupyter_client runs it with sys.executable
        resources={"metadata": {"path": str(work_dir)}},
    )
    kernel_env = dict(os.environ, SAE_WIDGETS_FAST="1", IPYTHONDIR=str(tmp_path / "ipython"))
    failure = None
    try:
        client.execute(env=kernel_env)
    except CellExecutionError as error:
        failure = str(error)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, ARTIFACTS / path.name)
    assert failure is None, f"{path.name} failed:\n{failure}"
    problems = output_problems(notebook)
    assert not problems, f"{path.name} printed problems:\n" + "\n".join(problems)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source]
    assert all(cell.execution_count is not None for cell in code_cells)


@pytest.mark.parametrize(
    "path",
    [*tutorial_notebooks(), *sorted(FIXTURE_NOTEBOOKS_DIR.glob("*.ipynb"))],
    ids=lambda path: path.name,
)
def test_notebook_is_committed_clean(path: Path) -> None:
    """No outputs or execution counts in git, and the kernel JupyterLab opens without asking."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


def test_stderr_problem_pattern_tells_warnings_and_errors_from_progress_text() -> None:
    assert STDERR_PROBLEM.search("Traceback (most recent call last):")
    assert STDERR_PROBLEM.search("ValueError: n_units must be positive")
    assert STDERR_PROBLEM.search("/x.py:3: UserWarning: lr is ignored")
    assert not STDERR_PROBLEM.search("epoch 2/5: 100%|██████████| 40/40 [00:01<00:00]")
    assert not STDERR_PROBLEM.search("fvu=0.12 errors_seen=0")


def test_notebooks_match_their_sources() -> None:
    """Each tutorial is built from notebooks/src/<name>.py; a hand edit of one side fails here."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS_DIR / "_build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
