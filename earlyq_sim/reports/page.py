"""Report pages: one page size, a header (title + basis), a footer, and text that wraps to the
width it is given instead of running off the page.

Positions are figure fractions (0..1 from the bottom-left corner). Text widths are measured with
the Agg renderer, so wrapping holds at any output dpi (text and page scale together).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

PAGE_SIZE_IN = (11.0, 8.5)  # every page: US letter, landscape (inches)
MARGIN = 0.04  # left/right margin (fraction of the page width)
HEADER_BOTTOM = 0.86  # body content starts below this (fraction of the page height)
FOOTER_TOP = 0.05  # body content ends above this
LINE_SPACING = 1.35  # line pitch in multiples of the font size


@dataclass
class Page:
    """One report page: its figure and a short name (the PNG file stem)."""

    name: str
    fig: object
    notes: list = field(default_factory=list)


def text_width(fig, text: str, fontsize: float, weight: str = "normal", family: str = "sans-serif") -> float:
    """Width of ``text`` at ``fontsize`` points as a fraction of the page width."""
    r = fig.canvas.get_renderer()
    prop = FontProperties(size=fontsize, weight=weight, family=family)
    w, _, _ = r.get_text_width_height_descent(text, prop, ismath=False)
    return w / fig.bbox.width


def line_height(fig, fontsize: float) -> float:
    """Pitch of one text line at ``fontsize`` points, as a fraction of the page height."""
    return fontsize * LINE_SPACING / 72.0 / fig.get_size_inches()[1]


def wrap(fig, text: str, fontsize: float, width: float, weight: str = "normal") -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` (page fraction); a word longer than the line is
    cut into pieces that fit. Newlines start new paragraphs."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        cur = ""
        for word in para.split(" "):
            cand = word if not cur else f"{cur} {word}"
            if text_width(fig, cand, fontsize, weight) <= width:
                cur = cand
                continue
            if cur:
                lines.append(cur)
            cur = word
            while cur and text_width(fig, cur, fontsize, weight) > width:  # a word wider than the line
                k = len(cur)
                while k > 1 and text_width(fig, cur[:k], fontsize, weight) > width:
                    k -= 1
                cut = max(cur.rfind(",", 0, k), cur.rfind("|", 0, k))  # prefer a break after a separator
                k = cut + 1 if cut > 0 else k
                lines.append(cur[:k])
                cur = cur[k:]
        lines.append(cur)
    return lines


def ellipsize(fig, text: str, fontsize: float, width: float, weight: str = "normal") -> str:
    """``text`` cut (with '...') so it fits ``width`` on one line."""
    if text_width(fig, text, fontsize, weight) <= width:
        return text
    k = len(text)
    while k > 0 and text_width(fig, text[:k] + "...", fontsize, weight) > width:
        k -= 1
    return text[:k] + "..."


def text_block(fig, x: float, y: float, width: float, text: str, fontsize: float = 8.5, bottom: float = FOOTER_TOP,
               color: str = "black", weight: str = "normal", gap: float = 0.4) -> float:
    """Draw ``text`` wrapped to ``width`` from ``(x, y)`` (top of the first line) downwards; lines
    that would pass ``bottom`` are replaced by one '...' line. Returns the y below the block
    (``gap`` line heights of space added)."""
    lh = line_height(fig, fontsize)
    lines = wrap(fig, text, fontsize, width, weight)
    for i, line in enumerate(lines):
        if y - lh < bottom:
            fig.text(x, y, "... (cut: the rest did not fit on this page)", fontsize=fontsize, va="top",
                     color="grey", parse_math=False)
            return y - lh
        fig.text(x, y, line, fontsize=fontsize, va="top", color=color, weight=weight, parse_math=False)
        y -= lh
    return y - gap * lh


def new_page(name: str, title: str, basis: str = "") -> Page:
    """A blank page of :data:`PAGE_SIZE_IN` with a bold title and a wrapped basis line under it
    (which arch, schedule, baseline, units the page is about)."""
    fig = plt.figure(figsize=PAGE_SIZE_IN)
    width = 1 - 2 * MARGIN
    fig.text(MARGIN, 0.975, ellipsize(fig, title, 15, width, "bold"), fontsize=15, weight="bold", va="top",
             parse_math=False)
    if basis:
        text_block(fig, MARGIN, 0.935, width, basis, fontsize=8.5, bottom=HEADER_BOTTOM, color="#333333")
    return Page(name, fig)


def add_footers(pages: list[Page], source: str) -> None:
    """Page numbers and the folder the report was built from, at the bottom of every page."""
    for i, p in enumerate(pages, 1):
        fig = p.fig
        right = f"page {i} of {len(pages)}"
        rw = text_width(fig, right, 7.5)
        left = ellipsize(fig, f"earlyq-sim report of {source}", 7.5, 1 - 2 * MARGIN - rw - 0.02)
        fig.text(MARGIN, 0.018, left, fontsize=7.5, color="grey", parse_math=False)
        fig.text(1 - MARGIN, 0.018, right, fontsize=7.5, color="grey", ha="right", parse_math=False)


def body_axes(fig, nrows: int = 1, ncols: int = 1, top: float = HEADER_BOTTOM - 0.03, bottom: float = 0.1,
              left: float = 0.08, right: float = 0.97, **gridspec):
    """A grid of axes inside the body area; returns a flat list of axes (row-major)."""
    gs = fig.add_gridspec(nrows, ncols, top=top, bottom=bottom, left=left, right=right, **gridspec)
    return [fig.add_subplot(gs[i, j]) for i in range(nrows) for j in range(ncols)]


def close_pages(pages: list[Page]) -> None:
    for p in pages:
        plt.close(p.fig)
