"""``Doc``: the report as sections, rendered to markdown and to self-contained HTML at once."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from harness.report.tables import to_html, to_markdown

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
img{max-width:100%}figure{margin:1em 0}figcaption{font-size:12px;color:#555}
p.warning{color:#8a1c00;font-weight:bold}
"""


class Doc:
    """The report as sections, rendered both to markdown and to self-contained HTML."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def warning(self, text: str) -> None:
        """A sentence a reader must not miss: bold in markdown, highlighted in HTML."""
        self.md.append(f"**Warning: {text}**\n")
        self.html.append(f"<p class='warning'>Warning: {html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.md.append(to_markdown(df))
        self.html.append(to_html(df))

    def figure(self, path: Path | None, caption: str = "") -> None:
        if path is None:
            return
        rel = path.relative_to(self.folder).as_posix()
        self.md.append(f"![{caption or path.stem}]({rel})\n")
        data = base64.b64encode(path.read_bytes()).decode()
        alt = html.escape(caption or path.stem)
        image = f'<img alt="{alt}" src="data:image/png;base64,{data}"/>'
        self.html.append(f"<figure>{image}<figcaption>{alt}</figcaption></figure>")

    def page(self, title: str) -> str:
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(self.html)}</body></html>\n"
        )
