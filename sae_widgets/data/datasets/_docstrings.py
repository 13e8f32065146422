"""`python_docstrings()`: an offline English-and-code corpus every Python already has.

The docstrings of the standard library's modules, classes and functions, read with `ast`
from the source files (nothing is imported, so no module's import side effects run),
split into paragraphs, whitespace-normalised, deduplicated, and cut to a bounded length.
Files are visited in a seeded order until enough documents are found, so a small corpus
does not come from the alphabetically first modules only, and the same seed gives the same
documents on the same Python version.
"""

from __future__ import annotations

import ast
import re
import sys
import sysconfig
from pathlib import Path

import numpy as np

from sae_widgets.data.checks import check_seed
from sae_widgets.data.corpus import TextCorpus

__all__ = ["DOCSTRING_KINDS", "python_docstrings"]

DOCSTRING_KINDS = ("module", "class", "function")
"""The label of each document: what the docstring it comes from documents."""

# Not prose about the library: test suites, the IDE, vendored and generated code.
_SKIPPED = {"test", "idlelib", "lib2to3", "ensurepip", "pydoc_data", "turtledemo", "this"}
_SPACE = re.compile(r"\s+")


def _source_files(seed: int) -> list[tuple[str, Path]]:
    """(module name, file) of the standard library's Python sources, in a seeded order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[tuple[str, Path]] = []
    for name in sorted(getattr(sys, "stdlib_module_names", ())):
        if name in _SKIPPED or name.startswith("_"):
            continue
        single, package = root / f"{name}.py", root / name
        if single.is_file():
            files.append((name, single))
        elif (package / "__init__.py").is_file():
            for path in sorted(package.rglob("*.py")):
                parts = path.relative_to(root).with_suffix("").parts
                if any(part in _SKIPPED or part.startswith("test") for part in parts):
                    continue
                files.append((".".join(parts).removesuffix(".__init__"), path))
    order = np.random.default_rng(seed).permutation(len(files))
    return [files[i] for i in order]


def _docstrings(path: Path) -> list[tuple[int, str]]:
    """(kind index, docstring) of a file's module, classes and functions, in file order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module):
            kind = 0
        elif isinstance(node, ast.ClassDef):
            kind = 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kind = 2
        else:
            continue
        text = ast.get_docstring(node, clean=True)
        if text:
            found.append((kind, text))
    return found


def _paragraphs(text: str, min_chars: int, max_chars: int) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        paragraph = _SPACE.sub(" ", block).strip()
        if len(paragraph) < min_chars:
            continue
        if len(paragraph) > max_chars:  # cut at the last space that fits
            cut = paragraph.rfind(" ", 0, max_chars)
            paragraph = paragraph[: cut if cut > min_chars else max_chars]
        out.append(paragraph)
    return out


def python_docstrings(
    n_docs: int = 2000, *, seed: int = 0, min_chars: int = 40, max_chars: int = 600
) -> TextCorpus:
    """Paragraphs of the standard library's docstrings, as a `TextCorpus`.

    n_docs: how many documents (fewer if the library has fewer distinct paragraphs).
    seed: the order in which source files are read. min_chars, max_chars: paragraphs
    shorter are skipped, longer ones cut at a word boundary.
    Labels: whether a paragraph documents a module, a class or a function
    (`DOCSTRING_KINDS`); factor "module_file": the index of its source file in reading order.
    """
    for value, name in ((n_docs, "n_docs"), (min_chars, "min_chars"), (max_chars, "max_chars")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int; got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    seed = check_seed(seed)
    if max_chars < min_chars:
        raise ValueError(f"max_chars ({max_chars}) must be >= min_chars ({min_chars})")
    seen: set[str] = set()
    texts: list[str] = []
    kinds: list[int] = []
    files: list[int] = []
    for file_index, (_module, path) in enumerate(_source_files(seed)):
        for kind, docstring in _docstrings(path):
            for paragraph in _paragraphs(docstring, min_chars, max_chars):
                if paragraph in seen:
                    continue
                seen.add(paragraph)
                texts.append(paragraph)
                kinds.append(kind)
                files.append(file_index)
        if len(texts) >= n_docs:
            break
    if not texts:
        raise ValueError("no standard-library docstrings found (is the library's source missing?)")
    return TextCorpus(
        texts[:n_docs],
        labels=np.array(kinds[:n_docs]),
        label_names=list(DOCSTRING_KINDS),
        factors={"module_file": np.array(files[:n_docs])},
        name="Python docstrings",
    )
