"""How every report is written: tables are pandas DataFrames (CSV for DVC and spreadsheets, Markdown for git
diffs, HTML for pages), figures are matplotlib figures (PNG and SVG), and a page is one self-contained HTML file
of tables and inline SVG figures (no scripts, nothing fetched).

A report function returns its outputs as {path: content} (str for text, bytes for images, a dict for JSON) and
the stage writes them with `write_outputs`, so that tests can read a report without touching the disk.

Figures are built on `matplotlib.figure.Figure`, never pyplot: no global figure state, and PNG is rendered by Agg
whatever backend the process has. Output bytes depend only on the data (and matplotlib's version): the SVG ids
are hashed with a fixed salt, text stays text, and neither format records a date or the software.
"""
from __future__ import annotations

import html
import io
import re

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from workflow_scripts.core.io_utils import write_bytes, write_json, write_text

FIGURE_FORMATS = ("png", "svg")
PNG_DPI = 100
# Text stays text (small, searchable SVG) in matplotlib's own font; ids are hashed with a fixed salt, not random.
SVG_SETTINGS = {"svg.hashsalt": "workflow_scripts.reports", "svg.fonttype": "none",
                "font.sans-serif": ["DejaVu Sans"]}
# One colour per method, in table order (Tableau 10, as the old hand-drawn pages had).
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
          "#bab0ac")
PAGE_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
              "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
              "figure{margin:1em 0}svg{max-width:100%;height:auto}h3{margin-top:1.5em}")


# ---- tables ------------------------------------------------------------------------------------------------------

def csv_text(table: pd.DataFrame) -> str:
    """The table as CSV: a header line, one line per row, no index; missing values (None, NaN) as empty cells."""
    return table.to_csv(index=False, lineterminator="\n")


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table with cells as they are (no padding, no number re-formatting): format cells before."""
    return table.to_markdown(index=False, tablefmt="pipe", stralign=None, numalign=None, disable_numparse=True)


def html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, border=0, escape=True, na_rep="")


# ---- figures -----------------------------------------------------------------------------------------------------

def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def figure_bytes(figure: Figure) -> dict[str, bytes]:
    """{"png": ..., "svg": ...}: the figure in both formats, reproducibly."""
    rendered = {}
    with matplotlib.rc_context(SVG_SETTINGS):
        for kind, metadata in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=kind, dpi=PNG_DPI, metadata=metadata)
            rendered[kind] = buffer.getvalue()
    return rendered


def figure_outputs(rendered: dict[str, bytes], paths: list[str]) -> dict[str, bytes]:
    """{path: bytes} for each requested path, in the format its suffix names (.png or .svg)."""
    outputs = {}
    for path in paths:
        kind = path.rsplit(".", 1)[-1].lower()
        if kind not in rendered:
            raise ValueError(f"{path}: figures are written as {' or '.join('.' + f for f in FIGURE_FORMATS)}")
        outputs[path] = rendered[kind]
    return outputs


def inline_svg(svg: bytes) -> str:
    """An SVG file's <svg> element, for embedding in a page (no XML prolog, doctype or metadata)."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


# ---- pages -------------------------------------------------------------------------------------------------------

def html_page(title: str, body: list[str]) -> str:
    """One self-contained page: the title as <h1>, then the given HTML fragments."""
    return "\n".join([f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                      f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>", *body,
                      "</body></html>"]) + "\n"


def html_figure(rendered: dict[str, bytes], caption: str) -> str:
    return f"<figure>{inline_svg(rendered['svg'])}<figcaption>{html.escape(caption)}</figcaption></figure>"


# ---- writing -----------------------------------------------------------------------------------------------------

def write_outputs(outputs: dict[str, str | bytes | dict]) -> None:
    """Write each output atomically: str as text, bytes as they are, a dict as JSON (sorted keys, indented)."""
    for path, content in outputs.items():
        if isinstance(content, dict):
            write_json(path, content)
        elif isinstance(content, bytes):
            write_bytes(path, content)
        else:
            write_text(path, content)


