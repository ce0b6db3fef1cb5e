"""HTML building blocks of the report: escaped tables, embedded images, sections and the page skeleton."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#16324f;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:2px 0;opacity:.85}nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde3ea;
padding:8px 32px;z-index:10}nav a{margin-right:16px;color:#16324f;text-decoration:none;font-weight:600}
main{padding:8px 32px 40px;max-width:1400px}section{margin-top:28px}h2{border-bottom:2px solid #16324f;
padding-bottom:4px}h3{margin-top:22px}table{border-collapse:collapse;margin:8px 0 16px;font-size:13px;
background:#fff}th,td{border:1px solid #d5dbe2;padding:4px 8px;text-align:right}th{background:#eef2f6}
td.l,th.l{text-align:left}tr:nth-child(even) td{background:#f7f9fb}figure{margin:10px 0;display:inline-block;
vertical-align:top;max-width:100%}figure img{max-width:100%;border:1px solid #e1e6eb;background:#fff}
figcaption{font-size:12px;color:#555}.chart{background:#fff;border:1px solid #e1e6eb;margin:10px 0}
.note{color:#555;font-size:13px}.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.arch svg{max-width:420px;height:auto}.half{flex:0 0 calc(50% - 14px);min-width:0;box-sizing:border-box}code{background:#eef2f6;padding:1px 4px;border-radius:3px}
"""


def size_text(n: int) -> str:
    """A training-set size as shown: "full" or "first N"."""
    return f"first {n}" if n else "full"


def minutes(seconds: float) -> str:
    """A duration as "12 s" or "3.4 min"."""
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned; None shows as an en dash."""
    def cell(tag: str, i: int, value) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{'&ndash;' if value is None else escape(str(value))}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(path: Path, caption: str) -> str:
    """A PNG embedded as a data URI, with a caption; empty when the file is missing."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def section(anchor: str, title: str, body: str) -> str:
    """A titled section with an anchor for the navigation bar."""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def note(text: str) -> str:
    """A short explanatory paragraph."""
    return f'<p class="note">{escape(text)}</p>'


def document(title: str, subtitle: list[str], sections: list[tuple[str, str, str]], plotly_js: str) -> str:
    """The whole page: header, navigation, sections (anchor, title, body) and the inlined plotly.js."""
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    lines = "".join(f"<p>{escape(s)}</p>" for s in subtitle)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>'
            f'<script>{plotly_js}</script></head><body><header><h1>{escape(title)}</h1>{lines}</header>'
            f"<nav>{nav}</nav><main>{body}</main></body></html>")
