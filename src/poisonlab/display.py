"""What a notebook shows of poisonlab's objects: a one-line summary, a small HTML table and, for images, a strip of
thumbnails (inline PNG data URIs); never the arrays themselves. Every text put into HTML is escaped here, since
dataset and class names come from users."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

WIDTH = 40  # characters of one value in a summary line or a table cell
ROWS = 20  # rows of a table shown before "... N more"
THUMBNAILS = 8
THUMBNAIL_PIXELS = 64  # the longest side of a thumbnail's PNG
CELL = "padding:1px 8px;text-align:left"


def clip(value: object, width: int = WIDTH) -> str:
    """`value` as text on one line (runs of whitespace, newlines included, become one space), cut to `width`
    characters with an ellipsis."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def number(value: object, digits: int = 3) -> str:
    """A float with `digits` decimals, an int as it is, None or NaN as "-"."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def names(items: Sequence[object], shown: int = 3, width: int = 16) -> str:
    """The first `shown` of `items`, each clipped to `width`, then "... (+N)" for the rest."""
    parts = [clip(item, width) for item in list(items)[:shown]]
    if len(items) > shown:
        parts.append(f"… (+{len(items) - shown})")
    return ", ".join(parts)


def span(values: Sequence[float], unit: str = "") -> str:
    """The range of some numbers, "a–b (n values)", or the one value."""
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return f"{distinct[0]:g}{unit}"
    return f"{distinct[0]:g}–{distinct[-1]:g}{unit} ({len(distinct)} values)"


def summary(kind: str, fields: Sequence[tuple[str, object]], quoted: Sequence[str] = ("name", "dataset", "method")) -> str:
    """One line, ``KIND(key=value, ...)``, every value clipped to one short line, those of the `quoted` keys (names)
    in quotes."""
    shown = [(key, repr(clip(value)) if key in quoted else clip(value, 3 * WIDTH // 2)) for key, value in fields]
    return f"{kind}(" + ", ".join(f"{key}={value}" for key, value in shown) + ")"


def _cell(value: object, tag: str = "td", width: int = WIDTH) -> str:
    return f'<{tag} style="{CELL}">{html.escape(clip(value, width))}</{tag}>'


def table(header: Sequence[object], rows: Sequence[Sequence[object]], limit: int = ROWS, width: int = WIDTH) -> str:
    """An HTML table of `rows` under `header` (cells escaped and clipped to `width`), the first `limit` rows and a
    note of the rest."""
    head = "<tr>" + "".join(_cell(h, "th") for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(_cell(v, width=width) for v in row) + "</tr>" for row in list(rows)[:limit])
    more = (f'<tr><td style="{CELL}" colspan="{max(len(header), 1)}"><i>… {len(rows) - limit} more rows</i></td>'
            "</tr>" if len(rows) > limit else "")
    return f'<table style="border-collapse:collapse;margin:2px 0">{head}{body}{more}</table>'


def block(title: str, facts: Sequence[tuple[str, object]], header: Sequence[object] = (),
          rows: Sequence[Sequence[object]] = (), extra: str = "") -> str:
    """The HTML of one object: its escaped `title` in bold, a two-column table of `facts`, then a table of `rows`
    (under `header`) when there are some, then `extra` (HTML this module made: `thumbnails`)."""
    parts = [f"<div><b>{html.escape(clip(title, 2 * WIDTH))}</b>", table((), facts, width=3 * WIDTH)]
    if rows:
        parts.append(table(header, rows))
    return "".join(parts) + extra + "</div>"


def png_uri(image: np.ndarray) -> str:
    """One uint8 image (H, W, C) as a PNG data URI, its longest side shrunk to THUMBNAIL_PIXELS (1 channel: grey,
    3: RGB, 4: RGBA, any other count: its first channel)."""
    from PIL import Image

    channels = image.shape[2]
    pixels = image if channels in (3, 4) else image[:, :, 0]
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], count: int = THUMBNAILS) -> str:
    """HTML strip of the first `count` images, each captioned with its class name (escaped); "" unless `images` are
    uint8 images (N, H, W, C)."""
    if images.ndim != 4 or images.dtype != np.uint8 or not len(images):
        return ""
    figures = []
    for image, label in zip(images[:count], labels[:count]):
        name = html.escape(clip(classes[label] if 0 <= label < len(classes) else label, 12), quote=True)
        figures.append(f'<figure style="display:inline-block;margin:2px 4px;text-align:center">'
                       f'<img src="{png_uri(image)}" alt="{name}" title="{name}" '
                       f'style="height:48px;image-rendering:pixelated">'
                       f'<figcaption style="font-size:70%">{name}</figcaption></figure>')
    return '<div class="poisonlab-thumbnails">' + "".join(figures) + "</div>"
