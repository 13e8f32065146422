"""Layering: nothing under data/, sae/ or analysis/ may import ipywidgets, bqplot or IPython.

Two checks: a static scan of every import statement (catches imports inside functions too),
and a fresh interpreter that imports every module of those layers and then looks at
sys.modules (catches GUI packages pulled in indirectly, e.g. through a dependency).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sae_widgets"
LOWER_LAYERS = ("data", "sae", "analysis")
GUI_PACKAGES = ("ipywidgets", "bqplot", "bqplot_gl", "IPython", "ipykernel")


def lower_layer_files():
    return sorted(p for layer in LOWER_LAYERS for p in (PACKAGE / layer).rglob("*.py"))


def module_name(path):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_names(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                yield str(node.args[0].value)


def test_every_lower_layer_exists():
    for layer in LOWER_LAYERS:
        assert (PACKAGE / layer / "__init__.py").exists(), layer


@pytest.mark.parametrize("path", lower_layer_files(), ids=module_name)
def test_no_gui_import_statement(path):
    offending = [
        name
        for name in imported_names(path)
        if name.split(".")[0] in GUI_PACKAGES or name.startswith("sae_widgets.widgets")
    ]
    assert not offending, f"{module_name(path)} imports {offending}"


def test_importing_the_lower_layers_loads_no_gui_package():
    modules = [module_name(p) for p in lower_layer_files()]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {GUI_PACKAGES!r}"
        " or m.startswith('sae_widgets.widgets'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing data/, sae/, analysis/ loaded {loaded}"
