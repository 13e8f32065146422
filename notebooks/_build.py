"""Write tutorial notebooks from their reviewable sources in notebooks/src/ (outputs empty).

Each source is a Python file in the "percent" format that Jupytext and VS Code understand:
`# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines are `# ` comments.
Edit the source, then run `python notebooks/_build.py [names...]` and commit both files.
`--check` exits non-zero when a notebook differs from what its source would produce.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
CELL_MARK = "# %%"
MARKDOWN_MARK = "# %% [markdown]"


def _markdown(lines: list[str]) -> str:
    """Strip the comment prefix of a markdown cell's lines."""
    out = []
    while lines and not lines[-1].strip():  # blank lines before the next cell mark
        lines = lines[:-1]
    for line in lines:
        if line.startswith("# "):
            out.append(line[2:])
        elif line.rstrip() == "#":
            out.append("")
        else:
            raise ValueError(f"markdown cell line must start with '# ': {line!r}")
    return "\n".join(out).strip()


def parse_cells(text: str) -> list[nbformat.NotebookNode]:
    """Split a percent-format source into notebook cells (text before the first mark is
    the module docstring for reviewers, not a cell)."""
    cells: list[nbformat.NotebookNode] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(_markdown(lines)))
        elif kind == "code":
            source = "\n".join(lines).strip()
            if source:
                cells.append(nbformat.v4.new_code_cell(source))

    for line in text.splitlines():
        if line.startswith(CELL_MARK):
            flush()
            kind = "markdown" if line.strip() == MARKDOWN_MARK else "code"
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_cells(source.read_text())
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # fixed ids keep rebuilt notebooks diff-free
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="source stems (default: all in src/)")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    sources = sorted(SOURCES.glob("*.py"))
    if args.names:
        sources = [s for s in sources if s.stem in args.names]
    stale = []
    for source in sources:
        target = HERE / f"{source.stem}.ipynb"
        text = nbformat.writes(build(source)) + "\n"
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
            continue
        target.write_text(text)
        print("wrote", target.relative_to(HERE.parent))
    if stale:
        print("out of date (run python notebooks/_build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
