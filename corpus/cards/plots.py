"""SVG plots of a card: small bar charts written as SVG text, no plotting library.

Every file has width, height and a viewBox, a white background and the same bytes for the same data.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

PLOTS_DIR = "plots"
WIDTH, HEIGHT, FONT, CHAR = 640, 320, 11, 6.6  # CHAR: a generous average glyph width at FONT px
TOP, ROW = 40, 22  # room for the title; height of one horizontal bar's row
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
LABEL_CHARS = 32  # longer labels end with an ellipsis


def _n(x: float) -> str:
    return f"{round(x, 1):g}"


def _clip(text: object, chars: int) -> str:
    """At most `chars` characters (a longer text ends with an ellipsis), control characters as spaces."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "\u2026"


def _text(x: float, y: float, text: str, attrs: str = "") -> str:
    return f'<text x="{_n(x)}" y="{_n(y)}"{attrs}>{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, color: str = "#222") -> str:
    return f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}"/>'


def _rect(x: float, y: float, w: float, h: float, color: str) -> str:
    return f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{color}"/>'


def _ticks(top: float) -> tuple[list[float], list[str]]:
    """Three to five round values from 0 to at least `top`, and their labels."""
    raw = (top if top > 0 else 4) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    values = [i * step for i in range(math.ceil(raw * 4 / step - 1e-9) + 1)]
    return values, [f"{v:,.{digits}f}" for v in values]


def _svg(width: float, height: float, title: str, body: list[str]) -> bytes:
    w, h = _n(width), _n(height)
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="{FONT}" fill="#222">',
            '<rect width="100%" height="100%" fill="#fff"/>',
            _text(width / 2, 24, _clip(title, int(width / 8.4)), ' text-anchor="middle" font-size="14"')]  # fmt: skip
    # non-ASCII characters become character references, so the bytes read the same in any encoding
    return "\n".join(head + body + ["</svg>\n"]).encode("ascii", "xmlcharrefreplace")


def columns(title: str, labels: list[str], series: dict[str, list[float]], ylabel: str) -> bytes:
    """Vertical bars, one group per label and one bar per series; a legend when there are several series."""
    ticks, names = _ticks(max((v for values in series.values() for v in values), default=0))
    left, right, top = 30 + CHAR * max(map(len, names)), WIDTH - 16, TOP + (18 if len(series) > 1 else 0)
    slot = (right - left) / max(len(labels), 1)
    shown = [_clip(label, 16) for label in labels]
    rotate = CHAR * max(map(len, shown), default=0) > slot - 4
    bottom = HEIGHT - (72 if rotate else 28)
    scale = (bottom - top) / ticks[-1]
    body = []
    for tick, name in zip(ticks, names):
        y = bottom - tick * scale
        body += [_line(left, y, right, y, "#e4e4e4"), _text(left - 6, y + 4, name, ' text-anchor="end"')]
    width = slot * 0.8 / max(len(series), 1)
    for i, label in enumerate(shown):
        x = left + i * slot + slot * 0.1
        for j, values in enumerate(series.values()):
            v = values[i] if values[i] > 0 else 0  # negative or NaN: no bar
            body.append(_rect(x + j * width, bottom - v * scale, width, v * scale, COLORS[j % len(COLORS)]))
        cx = left + (i + 0.5) * slot
        turn = f' text-anchor="end" transform="rotate(-30 {_n(cx)} {_n(bottom + 14)})"' if rotate else ' text-anchor="middle"'
        body.append(_text(cx, bottom + 14, label, turn))
    for j, name in enumerate(series if len(series) > 1 else []):
        x = right - 90 * (len(series) - j)
        body += [_rect(x, TOP - 4, 10, 10, COLORS[j % len(COLORS)]), _text(x + 14, TOP + 5, _clip(name, 10))]
    body += [_line(left, top, left, bottom), _line(left, bottom, right, bottom)]
    mid = (top + bottom) / 2
    body.append(_text(12, mid, ylabel, f' text-anchor="middle" transform="rotate(-90 12 {_n(mid)})"'))
    return _svg(WIDTH, HEIGHT, title, body)


def lines(title: str, series: dict[str, tuple[list[float], list[float]]], xlabel: str, ylabel: str) -> bytes:
    """One polyline per series of (x values, y values); the y axis spans the data, not from zero."""
    xs = [x for xv, _ in series.values() for x in xv]
    ys = [y for _, yv in series.values() for y in yv if y == y]
    if not xs or not ys:
        return _svg(WIDTH, HEIGHT, title, [_text(WIDTH / 2, HEIGHT / 2, "no data", ' text-anchor="middle"')])
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    x_ticks, x_names = _ticks(max(xs))
    step = (hi - lo) / 4
    y_values = [lo + i * step for i in range(5)]
    y_names = [f"{v:.3g}" for v in y_values]
    left, right = 30 + CHAR * max(map(len, y_names)), WIDTH - 16
    top, bottom = TOP + 18, HEIGHT - 44
    sx, sy = (right - left) / (x_ticks[-1] or 1), (bottom - top) / (hi - lo)
    body = []
    for value, name in zip(y_values, y_names):
        y = bottom - (value - lo) * sy
        body += [_line(left, y, right, y, "#e4e4e4"), _text(left - 6, y + 4, name, ' text-anchor="end"')]
    for value, name in zip(x_ticks, x_names):
        body.append(_text(left + value * sx, bottom + 15, name, ' text-anchor="middle"'))
    for j, (name, (xv, yv)) in enumerate(series.items()):
        points = " ".join(f"{_n(left + x * sx)},{_n(bottom - (y - lo) * sy)}" for x, y in zip(xv, yv) if y == y)
        color = COLORS[j % len(COLORS)]
        body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        lx = left + 8 + 110 * j
        body += [_rect(lx, TOP - 4, 10, 10, color), _text(lx + 14, TOP + 5, _clip(name, 14))]
    body += [_line(left, top, left, bottom), _line(left, bottom, right, bottom)]
    body.append(_text((left + right) / 2, bottom + 34, xlabel, ' text-anchor="middle"'))
    mid = (top + bottom) / 2
    body.append(_text(12, mid, ylabel, f' text-anchor="middle" transform="rotate(-90 12 {_n(mid)})"'))
    return _svg(WIDTH, HEIGHT, title, body)


def intervals(title: str, labels: list[str], series: dict[str, list[float]], errors: dict[str, list[float]], ylabel: str) -> bytes:
    """A dot per series and label with a +- error bar; the y axis spans the data (differences of a few
    hundredths stay visible, as bars from zero would not show them)."""
    lows = [v - e for s in series for v, e in zip(series[s], errors[s]) if v == v]
    highs = [v + e for s in series for v, e in zip(series[s], errors[s]) if v == v]
    if not lows:
        return _svg(WIDTH, HEIGHT, title, [_text(WIDTH / 2, HEIGHT / 2, "no data", ' text-anchor="middle"')])
    span = (max(highs) - min(lows)) or abs(max(highs)) or 1.0
    lo, hi = min(lows) - 0.1 * span, max(highs) + 0.1 * span
    y_values = [lo + i * (hi - lo) / 4 for i in range(5)]
    y_names = [f"{v:.4g}" for v in y_values]
    left, right, top, bottom = 30 + CHAR * max(map(len, y_names)), WIDTH - 16, TOP + 18, HEIGHT - 44
    sy = (bottom - top) / (hi - lo)
    slot = (right - left) / max(len(labels), 1)
    body = []
    for value, name in zip(y_values, y_names):
        y = bottom - (value - lo) * sy
        body += [_line(left, y, right, y, "#e4e4e4"), _text(left - 6, y + 4, name, ' text-anchor="end"')]
    for i, label in enumerate(labels):
        body.append(_text(left + (i + 0.5) * slot, bottom + 15, _clip(label, 24), ' text-anchor="middle"'))
        for j, name in enumerate(series):
            v, e = series[name][i], errors[name][i]
            if v != v:
                continue
            x = left + i * slot + slot * (j + 1) / (len(series) + 1)
            color = COLORS[j % len(COLORS)]
            ylo, yhi, yv = bottom - (v - e - lo) * sy, bottom - (v + e - lo) * sy, bottom - (v - lo) * sy
            body += [_line(x, ylo, x, yhi, color), _line(x - 5, ylo, x + 5, ylo, color), _line(x - 5, yhi, x + 5, yhi, color),
                     f'<circle cx="{_n(x)}" cy="{_n(yv)}" r="4" fill="{color}"/>']  # fmt: skip
    for j, name in enumerate(series):
        lx = left + 8 + 110 * j
        body += [_rect(lx, TOP - 4, 10, 10, COLORS[j % len(COLORS)]), _text(lx + 14, TOP + 5, _clip(name, 14))]
    body += [_line(left, top, left, bottom), _line(left, bottom, right, bottom)]
    mid = (top + bottom) / 2
    body.append(_text(12, mid, ylabel, f' text-anchor="middle" transform="rotate(-90 12 {_n(mid)})"'))
    return _svg(WIDTH, HEIGHT, title, body)


def bars(title: str, labels: list[str], values: list[float], xlabel: str) -> bytes:
    """Horizontal bars, the first label on top; the chart grows by one row per bar."""
    ticks, names = _ticks(max(values, default=0))
    shown = [_clip(label, LABEL_CHARS) for label in labels]
    left = 16 + CHAR * max(map(len, shown), default=0)
    row = max(ROW, 4 * ROW / max(len(labels), 1))  # a few bars still get a chart of four rows
    right, bottom = WIDTH - 8 - CHAR * len(names[-1]) / 2, TOP + row * max(len(labels), 1)
    scale = (right - left) / ticks[-1]
    body = []
    for tick, name in zip(ticks, names):
        x = left + tick * scale
        body += [_line(x, TOP, x, bottom, "#e4e4e4"), _text(x, bottom + 15, name, ' text-anchor="middle"')]
    for i, (label, value) in enumerate(zip(shown, values)):
        y, thick = TOP + (i + 0.5) * row, min(row * 0.7, 2 * ROW)
        body += [_rect(left, y - thick / 2, (value if value > 0 else 0) * scale, thick, COLORS[0]),
                 _text(left - 6, y + 4, label, ' text-anchor="end"')]  # fmt: skip
    body += [_line(left, TOP, left, bottom), _line(left, bottom, right, bottom)]
    body.append(_text((left + right) / 2, bottom + 34, xlabel, ' text-anchor="middle"'))
    return _svg(WIDTH, bottom + 46, title, body)


def _save(folder: Path, name: str, svg: bytes) -> str:
    out = folder / PLOTS_DIR
    out.mkdir(exist_ok=True)
    (out / name).write_bytes(svg)
    return f"{PLOTS_DIR}/{name}"


def write_plots(folder: Path, card: dict) -> list[str]:
    """Length histogram, shares by domain and source, rejections by reason, mix shares. Returns relative paths."""
    stats = card["stats"]
    written = []
    if stats.get("docs"):
        hist = stats.get("length_histogram") or []
        svg = columns("Document length (characters)", [h["chars"] for h in hist], {"documents": [h["docs"] for h in hist]},
                      "documents")  # fmt: skip
        written.append(_save(folder, "length_histogram.svg", svg))
        for key, title in (("by_domain", "domain"), ("by_source", "source")):
            groups = stats.get(key) or {}
            if groups:
                svg = bars(f"Share of characters by {title}", list(groups), [100 * g["share_chars"] for g in groups.values()],
                           "% of characters")  # fmt: skip
                written.append(_save(folder, f"share_{title}.svg", svg))
    reasons = (card.get("rejected_stats") or {}).get("by_reason") or {}
    if reasons:
        svg = bars("Rejected documents by reason", list(reasons), list(reasons.values()), "documents")
        written.append(_save(folder, "rejected_by_reason.svg", svg))
    facts = card.get("stage_facts") or {}
    mix = facts.get("mix_shares")
    if isinstance(mix, dict) and mix:
        series = {s: [100 * (mix[k].get(s) or 0) for k in mix] for s in ("target", "achieved")}
        unit = facts["mix"].get("unit") if isinstance(facts.get("mix"), dict) else None  # the budget's: tokens or documents
        ylabel = f"% of {unit}" if unit else "% share"
        written.append(_save(folder, "mix_shares.svg", columns("Mix: target vs achieved share", list(mix), series, ylabel)))
    return written
