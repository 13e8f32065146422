"""Layering (DESIGN.md): data flows one way, data/ sae/ analysis/ -> explore/ -> widgets/.

- nothing under data/, sae/, analysis/ or explore/ imports ipywidgets, bqplot or IPython
  (a static scan of every import statement, and a fresh interpreter that imports every such
  module and then looks at sys.modules, which catches GUI packages pulled in indirectly);
- data/, sae/ and analysis/ never import each other, nor explore/ or widgets/;
- explore/ never imports widgets/;
- no module imports another package's `_private` module.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sae_widgets"
LOWER_LAYERS = ("data", "sae", "analysis", "explore")
CORE_LAYERS = ("data", "sae", "analysis")
GUI_PACKAGES = ("ipywidgets", "bqplot", "jscatter", "anywidget", "IPython", "ipykernel")
# The one sanctioned upward edge: `Explorer.dashboard()` (API.md) imports the view layer when
# called, inside the method, with ipywidgets named only for type checkers. The fresh-interpreter
# test below proves importing explore/ still loads no GUI package.
LAZY_VIEW_IMPORTS = {
    "sae_widgets.explore.explorer": {"ipywidgets", "sae_widgets.widgets.dashboard"}
}


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
        if (name.split(".")[0] in GUI_PACKAGES or name.startswith("sae_widgets.widgets"))
        and name not in LAZY_VIEW_IMPORTS.get(module_name(path), ())
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


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sae_widgets" else None


def package_files():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", lower_layer_files(), ids=module_name)
def test_imports_flow_one_way(path):
    own = layer_of(module_name(path))
    allowed = {own} if own in CORE_LAYERS else {"explore", *CORE_LAYERS}
    offending = [
        name
        for name in imported_names(path)
        if layer_of(name) in {*CORE_LAYERS, "explore", "widgets", "cli"}
        and layer_of(name) not in allowed
        and name not in LAZY_VIEW_IMPORTS.get(module_name(path), ())
    ]
    assert not offending, f"{module_name(path)} ({own}/) imports {offending}"


@pytest.mark.parametrize("path", package_files(), ids=module_name)
def test_no_import_of_another_packages_private_module(path):
    own_package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else (module_name(path))
    )
    offending = []
    for name in imported_names(path):
        if not name.startswith("sae_widgets."):
            continue
        package, _, last = name.rpartition(".")
        if last.startswith("_") and not last.startswith("__") and package != own_package:
            offending.append(name)
    assert not offending, f"{module_name(path)} imports private modules {offending}"
