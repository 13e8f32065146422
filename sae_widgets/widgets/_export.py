"""Exporting a selection: the selected samples as CSV text and as a one-click download."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from sae_widgets.wording import counted

__all__ = ["csv_download_html", "csv_field", "export_buttons", "selection_csv"]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_field(text: str) -> str:
    """`text` as one CSV field (quoted when it holds a comma, a quote or a newline). A label
    name that a spreadsheet would run as a formula ("=HYPERLINK(...)", "@SUM(...)") starts
    with an apostrophe, the usual guard against CSV injection; a number ("-1") stays one."""
    if text.startswith(_FORMULA_STARTS) and not _reads_as_number(text):
        text = "'" + text
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def selection_csv(ex: Any, samples: Sequence[int]) -> str:
    """The samples as CSV text: sample index, and label and its name when there are labels."""
    labels, names = ex.dataset.labels, ex.dataset.label_names
    lines = ["sample,label,label_name" if labels is not None else "sample"]
    for sample in samples:
        if labels is None:
            lines.append(str(int(sample)))
        else:
            label = int(labels[sample])
            name = str(names[label]) if names and label >= 0 else ""
            lines.append(f"{int(sample)},{label},{csv_field(name)}")
    return "\n".join(lines) + "\n"


def csv_download_html(ex: Any, samples: Sequence[int], name: str = "selection.csv") -> str:
    """A link that downloads `selection_csv` (a data: URL: no server round trip)."""
    if len(samples) == 0:
        return "<i>nothing selected to export</i>"
    data = base64.b64encode(selection_csv(ex, samples).encode()).decode()
    return (
        f'<a download="{name}" href="data:text/csv;base64,{data}" '
        f'style="text-decoration:underline">{name}</a> ({counted(len(samples), "row")})'
    )


def export_buttons() -> tuple[widgets.Button, widgets.Button]:
    """The "CSV" (selection download) and "PNG" (plot picture) buttons, unwired."""
    csv_button = widgets.Button(
        description="CSV",
        icon="download",
        tooltip="export the selected samples (index, label) as a CSV file; in Python: "
        "ex.dataset[ex.selection.samples] is the selection as a Dataset",
        layout=widgets.Layout(width="80px"),
    )
    png_button = widgets.Button(
        description="PNG",
        icon="image",
        tooltip="save the plot as a PNG file",
        layout=widgets.Layout(width="80px"),
    )
    return csv_button, png_button
