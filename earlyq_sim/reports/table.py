"""Tables drawn on a report page: a shaded header row, ruled rows, numbers right-aligned, and a
font size chosen so the whole table fits the rectangle it is given (never past the page edge).

Columns wider than the page at the smallest font have their cells cut with '...'; rows that do
not fit are left off and the caller is told how many were drawn, so it can say where the rest is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from earlyq_sim.reports.page import ellipsize, line_height, text_width

_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*(x|%|dB|ms|mJ)?$", re.IGNORECASE)


@dataclass(frozen=True)
class TableStyle:
    max_font: float = 9.0  # points
    min_font: float = 5.0
    pad: float = 0.6  # horizontal padding per side, in font-size units (em)
    header_fill: str = "#dde3ea"
    highlight_fill: str = "#fff2cc"
    rule: str = "#b0b0b0"


def is_numeric_column(values: list[str]) -> bool:
    vals = [v for v in values if v not in ("", "-", "n/a")]
    return bool(vals) and all(_NUMBER.match(v.strip()) for v in vals)


def _fit_font(fig, columns, rows, width, height, style) -> float:
    """Largest font in [min_font, max_font] at which the table fits ``width`` x ``height``."""
    ref = 10.0  # measured at 10 pt and scaled: tiny sizes round badly in the renderer
    unit = [max(text_width(fig, str(c), ref, "bold"), *(text_width(fig, r[j], ref) for r in rows)) / ref
            for j, c in enumerate(columns)]
    em = 1.0 / 72.0 / fig.get_size_inches()[0]  # 1 pt as a fraction of the page width
    per_font = sum(unit) + len(columns) * 2 * style.pad * em
    f_w = width / per_font if per_font > 0 else style.max_font
    f_h = height / ((len(rows) + 1) * line_height(fig, 1.0)) if rows else style.max_font
    return max(style.min_font, min(style.max_font, f_w, f_h))


def draw_table(fig, rect: tuple[float, float, float, float], columns: list[str], rows: list[list[str]], *,
               highlight: set | None = None, style: TableStyle = TableStyle()) -> tuple[int, float]:
    """Draw ``rows`` (lists of strings) under ``columns`` inside ``rect`` = (left, bottom, width,
    height) in page fractions. ``highlight``: row indices drawn on a yellow ground.

    Returns (rows drawn, y of the table's bottom edge)."""
    x0, y_bottom, width, height = rect
    rows = [[str(v) for v in r] for r in rows]
    f = _fit_font(fig, columns, rows, width, height, style)
    for _ in range(4):  # widths are not quite linear in the font size (hinting): measure again, shrink
        pad = style.pad * f / 72.0 / fig.get_size_inches()[0]
        widths = [max(text_width(fig, str(c), f, "bold"), *(text_width(fig, r[j], f) for r in rows)) + 2 * pad
                  for j, c in enumerate(columns)]
        if sum(widths) <= width or f <= style.min_font:
            break
        f = max(style.min_font, f * width / sum(widths) * 0.99)
    while sum(widths) > width * (1 + 1e-6):  # even the smallest font is too wide: cut the widest column's cells
        j = max(range(len(widths)), key=widths.__getitem__)
        target = widths[j] - (sum(widths) - width) - 2 * pad
        target = max(target, widths[j] * 0.5 - 2 * pad)
        columns = [ellipsize(fig, c, f, target, "bold") if k == j else c for k, c in enumerate(columns)]
        for r in rows:
            r[j] = ellipsize(fig, r[j], f, target)
        widths[j] = max(text_width(fig, columns[j], f, "bold"), *(text_width(fig, r[j], f) for r in rows)) + 2 * pad
    scale = 1.0 if sum(widths) <= 0 else min(1.0 + 0.5, width / sum(widths))
    widths = [w * scale for w in widths]  # spread a narrow table a little, never past ``width``
    numeric = [is_numeric_column([r[j] for r in rows]) for j in range(len(columns))]
    lh = line_height(fig, f)
    n_fit = max(0, min(len(rows), int(height / lh) - 1))
    y = y_bottom + height
    total_w = sum(widths)

    def row(cells, y_top, fill=None, weight="normal"):
        if fill:
            fig.patches.append(Rectangle((x0, y_top - lh), total_w, lh, transform=fig.transFigure, color=fill,
                                         zorder=0))
        x = x0
        for j, (cell, w) in enumerate(zip(cells, widths)):
            right = numeric[j]
            fig.text(x + w - pad if right else x + pad, y_top - lh / 2, cell, fontsize=f, va="center",
                     ha="right" if right else "left", weight=weight, parse_math=False)
            x += w
        fig.lines.append(Line2D([x0, x0 + total_w], [y_top - lh] * 2, transform=fig.transFigure, lw=0.4,
                                color=style.rule))

    fig.lines.append(Line2D([x0, x0 + total_w], [y, y], transform=fig.transFigure, lw=0.8, color="black"))
    row(columns, y, style.header_fill, "bold")
    y -= lh
    for i in range(n_fit):
        row(rows[i], y, style.highlight_fill if highlight and i in highlight else None)
        y -= lh
    fig.lines.append(Line2D([x0, x0 + total_w], [y, y], transform=fig.transFigure, lw=0.8, color="black"))
    return n_fit, y


def draw_facts(fig, x0: float, y: float, width: float, facts: list[list[str]], fontsize: float = 8.5,
               bottom: float = 0.05, rule: str = TableStyle.rule) -> float:
    """Key-value rows: keys in bold on the left, values wrapped to the rest of the width, a rule
    under each row. Returns the y below the last row."""
    from earlyq_sim.reports.page import text_block

    key_w = max(text_width(fig, k, fontsize, "bold") for k, _ in facts) + 2 * fontsize / 72.0 / fig.get_size_inches()[0]
    fig.lines.append(Line2D([x0, x0 + width], [y, y], transform=fig.transFigure, lw=0.8, color="black"))
    for k, v in facts:
        top = y - 0.004
        fig.text(x0, top, k, fontsize=fontsize, weight="bold", va="top", parse_math=False)
        y = text_block(fig, x0 + key_w, top, width - key_w, str(v), fontsize, bottom=bottom, gap=0.0) - 0.004
        fig.lines.append(Line2D([x0, x0 + width], [y, y], transform=fig.transFigure, lw=0.4, color=rule))
    return y
