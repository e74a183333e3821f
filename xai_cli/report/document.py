"""A report as a list of blocks, rendered to Markdown and to self-contained HTML from the same source."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass
class Figure:
    path: str  # relative to the run directory, e.g. figures/confusion_cnn.png
    caption: str
    wide: bool = False  # spans the page (image strips) instead of sitting in a column


Block = Union[Heading, Paragraph, Table, Figure]


def fmt(value: Any) -> str:
    """Numbers as a reader wants them: 4 significant decimals for floats, thousands separators for ints."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #333}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.8em 1em 0.8em 0;vertical-align:top}
figure img{max-width:520px;border:1px solid #ddd}figcaption{font-size:0.9em;color:#555;max-width:520px}
figure.wide,figure.wide img,figure.wide figcaption{max-width:100%}
"""


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Paragraph(text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(Table(list(headers), [list(r) for r in rows]))

    def figure(self, path: str, caption: str, wide: bool = False) -> None:
        self.blocks.append(Figure(path, caption, wide))

    # --- renderers ----------------------------------------------------------------------------------
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * b.level + " " + b.text, ""]
            elif isinstance(b, Paragraph):
                out += [b.text, ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(b.headers) + " |")
                out.append("|" + "|".join("---" for _ in b.headers) + "|")
                out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.caption}]({b.path})", "", f"*{b.caption}*", ""]
        return "\n".join(out)

    def to_html(self, images: Path | Mapping[str, bytes]) -> str:
        """HTML with every figure embedded as base64, so the file can be mailed or archived alone.

        `images`: the run directory the figure paths are relative to, or the PNG bytes by those paths."""
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>",
               f"<style>{_CSS}</style></head><body><h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if isinstance(b, Heading):
                out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                out.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
                body = "".join("<tr>" + "".join(f"<td>{e(fmt(c))}</td>" for c in row) + "</tr>" for row in b.rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Figure):
                png = images[b.path] if isinstance(images, Mapping) else (Path(images) / b.path).read_bytes()
                data = base64.b64encode(png).decode()
                out.append(f"<figure{' class=wide' if b.wide else ''}><img alt='{e(b.caption)}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{e(b.caption)}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)
