"""A report as a list of blocks, rendered twice: Markdown (REPORT.md, images by relative path) and
one self-contained HTML file (images inlined as base64, no network, readable offline)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

# Blocks: ("h", level, text) ("p", text) ("ul", [text]) ("code", text) ("table", DataFrame, caption)
# ("img", path, caption) ("gallery", [(path, caption)]) ("verdict", verdict, reason) ("rule", verdict key, [text]).
# Text may use **bold**, *italic* and `code`. A table block may add a CSV name: Markdown then links to it.
ID_COLUMNS = ("trials", "collapsed trials")  # lists of trial ids: in the CSVs and the HTML, not in REPORT.md

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #ccc}h2{border-bottom:1px solid #ddd;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f2f2f2;text-align:left}
td.text{text-align:left}td.trials{text-align:left;font-size:10px;color:#555;max-width:28em;word-break:break-all}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
code{background:#f4f4f4;padding:0 3px;border-radius:3px}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}
.verdict{padding:.5em .8em;border-radius:5px;margin:.8em 0;font-size:17px}
.supported{background:#e3f4e3;border-left:6px solid #2e8b2e}
.not-supported{background:#fbe3e3;border-left:6px solid #c0392b}
.inconclusive{background:#fff4d6;border-left:6px solid #d4a017}li{margin:.25em 0}
td.supported,td.not-supported,td.inconclusive{font-weight:600;text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:14px}.gallery figure{margin:0;max-width:32%}
"""


def _alt(caption: str) -> str:
    """A figure's alt text: its caption's first clause (the whole caption is printed under it)."""
    return re.split(r"[:;(]|\. ", caption, maxsplit=1)[0].strip()


def _inline_html(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", t)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return str(v)


def _md_table(df: pd.DataFrame, caption: str) -> str:
    esc = lambda s: _cell(s).replace("|", "\\|").replace("\n", " ")
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(esc(c) for c in df.columns) + " |")
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame, caption: str) -> str:
    def td(col, v):
        s = _cell(v)
        if col == "verdict" and s in ("supported", "not supported", "inconclusive"):
            cls = s.replace(" ", "-")  # the verdict summary: coloured like the verdict boxes
        elif col in ("trials", "collapsed trials"):
            cls = "trials"
        else:  # numbers (also "1.2 ± 0.3", "[a, b]", "3/4", "-0.48 (0.34)") right, words left
            cls = "" if re.fullmatch(r"[-+±.,%\d\s\[\]()–eE×/]*", s) else "text"
        return f'<td class="{cls}">{html.escape(s)}</td>' if cls else f"<td>{html.escape(s)}</td>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(td(c, v) for c, v in zip(df.columns, row)) + "</tr>"
                   for row in df.itertuples(index=False))
    cap = f"<caption>{_inline_html(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_markdown(blocks: list[tuple], base: Path) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif kind == "rule":  # kept short in Markdown: the words are in verdicts.json and report.html
            out.append(f"`{b[1]}.rule` in [verdicts.json](verdicts.json) ({len(b[2])} clauses; explained in "
                       "docs/verdicts.md)")
        elif kind == "code":
            out.append(f"```\n{b[1].rstrip()}\n```")
        elif kind == "table" and len(b) > 3:  # a long table: its CSV, in Markdown
            out.append(f"**{b[2]}**: {len(b[1])} rows in [tables/{b[3]}](tables/{b[3]})")
        elif kind == "table":  # trial ids only in the CSVs: the Markdown names cells
            df = b[1].drop(columns=[c for c in ID_COLUMNS if c in b[1]])
            out.append(_md_table(df, b[2]) if len(df) else f"**{b[2]}**: (no rows)")
        elif kind == "img":
            out.append(f"![{_alt(b[2])}]({Path(b[1]).relative_to(base).as_posix()})\n\n*{b[2]}*")
        elif kind == "gallery":
            out.append("\n\n".join(f"![{_alt(c)}]({Path(p).relative_to(base).as_posix()})\n*{c}*" for p, c in b[1]))
        elif kind == "verdict":
            out.append(f"> **Verdict: {b[1]}** — {b[2]}")
    return "\n\n".join(out) + "\n"


def _data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix.lower() == ".gif" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def to_html(blocks: list[tuple], title: str) -> str:
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            anchor = re.sub(r"[^a-z0-9]+", "-", b[2].lower()).strip("-")
            out.append(f'<h{b[1]} id="{anchor}">{_inline_html(b[2])}</h{b[1]}>')
        elif kind == "p":
            out.append(f"<p>{_inline_html(b[1])}</p>")
        elif kind == "rule":
            out.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in b[2]) + "</ul>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "code":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "table":
            empty = f"<p><strong>{html.escape(b[2])}</strong>: (no rows)</p>"
            out.append(_html_table(b[1], b[2]) if len(b[1]) else empty)
        elif kind in ("img", "gallery"):
            figs = "".join(f'<figure><img src="{_data_uri(Path(p))}" alt="{html.escape(c)}">'
                           f"<figcaption>{_inline_html(c)}</figcaption></figure>"
                           for p, c in ([(b[1], b[2])] if kind == "img" else b[1]))
            out.append(figs if kind == "img" else f'<div class="gallery">{figs}</div>')
        elif kind == "verdict":
            cls = b[1].replace(" ", "-")
            out.append(f'<div class="verdict {cls}"><strong>Verdict: {html.escape(b[1])}</strong> — '
                       f"{_inline_html(b[2])}</div>")
    out.append("</body></html>")
    return "\n".join(out)
