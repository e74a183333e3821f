"""A report as a list of blocks, rendered to Markdown and to self-contained HTML from the same source."""

from __future__ import annotations

import base64
import html
import re
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


@dataclass(frozen=True)
class Link:
    """A table cell that links elsewhere, e.g. a sweep job's own report."""

    text: str
    href: str

    def __str__(self) -> str:  # the console and CSV show the text
        return self.text


Block = Union[Heading, Paragraph, Table, Figure]


def fmt(value: Any) -> str:
    """Numbers as a reader wants them: ints with thousands separators; floats with four significant digits
    (0.9910, 12.35, 838.3), never fewer than one decimal and never in exponent notation."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return str(value)
        magnitude = abs(value)
        decimals = 4 if magnitude < 1 else 3 if magnitude < 10 else 2 if magnitude < 100 else 1
        return f"{value:,.{decimals}f}"
    return str(value)


def _md_cell(value: Any) -> str:
    """A Markdown table cell: a pipe inside a value (`disagreement.cnn|svm_rbf`) would start a new column."""
    if isinstance(value, Link):
        return f"[{_md_cell(value.text)}]({value.href})"
    return fmt(value).replace("|", "\\|").replace("\n", " ")


_CODE = re.compile(r"`([^`]+)`")


def _inline_html(text: str) -> str:
    """Escaped text whose `code` spans become <code> (reports write settings and paths that way)."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text))


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #333}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.8em 1em 0.8em 0;vertical-align:top}
figure img{max-width:520px;border:1px solid #ddd;cursor:zoom-in}figcaption{font-size:0.9em;color:#555;max-width:520px}
figure.wide,figure.wide img,figure.wide figcaption{max-width:100%}
figure.full{display:block;overflow-x:auto}figure.full img{max-width:none;cursor:zoom-out}figure.full figcaption{max-width:100%}
.scroll{overflow-x:auto;max-width:100%}code{background:#f3f3f3;padding:0 3px;border-radius:3px;font-size:0.92em}
"""
# A click on a figure shows it at its natural size (scrolling sideways if wider than the page), another
# click fits it again; the caption links the PNG beside the report. No script is needed to read the page.
_ZOOM = "this.parentElement.classList.toggle('full')"


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
                out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
                out.append("|" + "|".join("---" for _ in b.headers) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
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
                out.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                out.append(f"<p>{_inline_html(b.text)}</p>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{_html_cell(h)}</th>" for h in b.headers)
                body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in b.rows)
                out.append(f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
            elif isinstance(b, Figure):
                png = images[b.path] if isinstance(images, Mapping) else (Path(images) / b.path).read_bytes()
                data = base64.b64encode(png).decode()
                out.append(f"<figure{' class=wide' if b.wide else ''}><img alt='{e(b.caption)}' title='click: full size' "
                           f"onclick=\"{_ZOOM}\" src='data:image/png;base64,{data}'>"
                           f"<figcaption>{_inline_html(b.caption)} <a href='{e(b.path)}'>full size</a></figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)


def _html_cell(value: Any) -> str:
    if isinstance(value, Link):
        return f"<a href='{html.escape(value.href)}'>{html.escape(value.text)}</a>"
    return html.escape(fmt(value))
