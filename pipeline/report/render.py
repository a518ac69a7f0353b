"""Sections of tables, paragraphs and figures, rendered as Markdown and as one self-contained HTML page.

`index.html` embeds its images as base64 data URIs and its CSS inline, and contains no URL at all
(not even the letters 'http'), so it opens offline and loads nothing.
"""
from __future__ import annotations

import base64
import html
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""  # one line under the table


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # paragraphs below the tables
    notes: list[str] = field(default_factory=list)  # numbered footnotes (1., 2., ...)
    lead: bool = False  # the page's opening: no heading; in HTML the figure beside the tables


def fmt(v: Any, spec: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else format(f, spec)


def _md_table(t: Table) -> list[str]:
    out = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t.rows]
    return out + (["", f"*{t.caption}*"] if t.caption else []) + [""]


def render_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        if not s.lead:
            out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [f"**{p}**" if s.lead else p, ""]
        if s.lead:  # the figure before the table, as on the page
            out += [x for caption, path in s.figures for x in (f"![{caption}]({path.name})", "")]
        for t in s.tables:
            out += _md_table(t)
        for p in s.after:
            out += [p, ""]
        out += (["Notes:", ""] if s.notes else []) + [f"{i}. {n}" for i, n in enumerate(s.notes, 1)] + ([""] if s.notes else [])
        if not s.lead:
            for caption, path in s.figures:
                out += [f"![{caption}]({path.name})", ""]
    return "\n".join(out)


_CSS = """body{font-family:sans-serif;max-width:1360px;margin:0.6em auto;padding:0 1em;color:#222;font-size:15px}
h1{font-size:1.3em;margin:0.2em 0 0.3em}h2{font-size:1.1em;margin:1em 0 0.3em}
p.answer{font-size:1.05em;margin:0.3em 0;padding:0.35em 0.6em;background:#f3f7ff;border-left:4px solid #36c}
.lead{display:flex;gap:1em;align-items:flex-start}.lead figure{flex:0 0 57%;margin:0}.lead .tables{flex:1;min-width:0;overflow-x:auto}
.lead td{white-space:nowrap}.lead table{font-size:0.78em}.lead td,.lead th{padding:2px 4px}
table{border-collapse:collapse;margin:0.4em 0;font-size:0.85em}th,td{border:1px solid #bbb;padding:2px 6px;
text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.3em 0}figure{margin:0.5em 0}
figcaption,.caption{font-size:0.8em;color:#555}ol.notes{font-size:0.85em}"""


def _no_url(text: str) -> str:
    """Escape text for HTML; break any 'http' so the page never names (or loads) a URL."""
    return re.sub(r"(?i)(h)(t)(tp)", lambda m: f"{m[1]}&#{ord(m[2])};{m[3]}", html.escape(text))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_data_uri(png: bytes) -> str:
    """A base64 data URI of the PNG that contains no 'http' in any case.

    Base64 text can spell 'http' by chance (about once per MB, ignoring case); a padding tEXt chunk
    after the header shifts the 3-byte alignment of everything after it, which rewrites the text. A
    large image can spell it in all three alignments: then the same pixels are compressed again at
    other zlib levels (deterministic, so the page stays byte-stable) until one encoding is clean.
    """
    for candidate_png in _recompressed(png):
        head, tail = candidate_png[:33], candidate_png[33:]  # 8-byte signature + IHDR chunk
        for pad in range(3):
            candidate = candidate_png if pad == 0 else head + _png_chunk(b"tEXt", b"pad\x00" + b"x" * pad) + tail
            encoded = base64.b64encode(candidate).decode("ascii")
            if "http" not in encoded.lower():
                return "data:image/png;base64," + encoded
    raise RuntimeError("could not encode the PNG without an 'http' substring")


def _recompressed(png: bytes):
    """The PNG as given, then re-encoded at zlib levels 9..0 (same pixels, other bytes)."""
    yield png
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    image.load()
    for level in range(9, -1, -1):
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=level)
        yield buf.getvalue()


def _html_table(t: Table) -> list[str]:
    out = ["<table><tr>" + "".join(f"<th>{_no_url(h)}</th>" for h in t.header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_no_url(c)}</td>" for c in row) + "</tr>" for row in t.rows]
    out.append("</table>")
    return out + ([f"<div class=\"caption\">{_no_url(t.caption)}</div>"] if t.caption else [])


def _html_figure(caption: str, path: Path) -> str:
    uri = png_data_uri(Path(path).read_bytes())
    return (f"<figure><img alt=\"{_no_url(caption)}\" src=\"{uri}\"><figcaption>{_no_url(caption)}"
            "</figcaption></figure>")


def render_html(title: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{_no_url(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_no_url(title)}</h1>"]
    for s in sections:
        if s.lead:
            out += [f"<p class=\"answer\">{_no_url(p)}</p>" for p in s.paragraphs]
            out.append("<div class=\"lead\">")
            out += [_html_figure(caption, path) for caption, path in s.figures]
            out.append("<div class=\"tables\">")
            for t in s.tables:
                out += _html_table(t)
            out += [f"<p>{_no_url(p)}</p>" for p in s.after]
            out.append("</div></div>")
            continue
        out.append(f"<h2>{_no_url(s.title)}</h2>")
        out += [f"<p>{_no_url(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            out += _html_table(t)
        out += [f"<p>{_no_url(p)}</p>" for p in s.after]
        if s.notes:
            out.append("<ol class=\"notes\">" + "".join(f"<li>{_no_url(n)}</li>" for n in s.notes) + "</ol>")
        out += [_html_figure(caption, path) for caption, path in s.figures]
    out.append("</body></html>")
    page = "\n".join(out)
    if "http" in page.lower():  # a bug in the escaping above, never the user's fault
        raise RuntimeError("index.html would contain 'http'")
    return page
