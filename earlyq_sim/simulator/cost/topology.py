"""A SCALE-Sim topology CSV as a workload: the user's own layer list, costed like a traced model.

Both of SCALE-Sim's formats, the ones ``export --format scalesim`` writes:

* conv (``-i conv``): ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides``. SCALE-Sim has no padding field: the ifmap is the padded input
  and the ofmap is ``(H - R) // stride + 1`` by ``(W - S) // stride + 1``, so the GEMM is
  ``M = Ho * Wo``, ``K = R * S * Channels``, ``N = Num Filter``; the real input (``in_elems``)
  is ``H * W * Channels``.
* GEMM (``-i gemm``): ``Layer, M, N, K``.

Every row is one ``conv``/``linear`` GEMM with operand kind ``wa`` (weights x activations, as
SCALE-Sim assumes). A trailing comma (SCALE-Sim's own files end rows with one) is accepted.
Errors name the file, the row and the field.
"""

from __future__ import annotations

import csv
from pathlib import Path

from earlyq_sim.errors import UserError

CONV = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter",
        "Strides")
GEMM = ("Layer", "M", "N", "K")
MAX_DIM = 1 << 31  # a dimension above this is a typo, and products of three stay inside int64


def is_topology(path) -> bool:
    """True for a ``.csv`` path (a workload given as a layer list rather than a model)."""
    return str(path).lower().endswith(".csv")


def _cells(row: list[str]) -> list[str]:
    cells = [c.strip() for c in row]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _int(src: str, line: int, field: str, text: str, lo: int = 1) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UserError(f"{src}: row {line}: {field}: {text!r} is not an integer; allowed integers "
                        f"{lo}..{MAX_DIM}") from None
    if not lo <= v <= MAX_DIM:
        raise UserError(f"{src}: row {line}: {field}: {v} is out of range; allowed {lo}..{MAX_DIM}")
    return v


def read_topology(path):
    """The op table (a ``Trace`` without graph edges) of a SCALE-Sim topology CSV (conv or GEMM
    form, detected from the header)."""
    import networkx as nx  # here, not at import: the CLI checks paths before pandas loads

    from earlyq_sim.simulator.cost.graph import Trace
    from earlyq_sim.simulator.cost.optable import empty_row, make_table

    p = Path(path)
    src = str(p)
    if not p.is_file():
        raise UserError(f"{src}: topology file not found (a SCALE-Sim conv or GEMM topology CSV)")
    try:
        rows = list(csv.reader(p.read_text(encoding="utf-8").splitlines()))
    except UnicodeDecodeError as e:
        raise UserError(f"{src}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise UserError(f"{src}: not a CSV file ({e})") from None
    if not rows:
        raise UserError(f"{src}: empty; allowed a header {', '.join(CONV)} or {', '.join(GEMM)} and layer rows")
    head = tuple(_cells(rows[0]))
    if head not in (CONV, GEMM):
        raise UserError(f"{src}: row 1: header {', '.join(head)!r} is not SCALE-Sim's; allowed "
                        f"'{', '.join(CONV)}' (conv) or '{', '.join(GEMM)}' (gemm)")
    ops, names = [], set()
    for i, raw in enumerate(rows[1:], start=2):
        cells = _cells(raw)
        if not cells:
            continue
        if len(cells) != len(head):
            raise UserError(f"{src}: row {i}: {len(cells)} fields; allowed {len(head)} ({', '.join(head)})")
        name = cells[0] or f"layer{i - 1}"
        if name in names:
            raise UserError(f"{src}: row {i}: {head[0]}: {name!r} repeats an earlier row; allowed unique names")
        names.add(name)
        v = {f: _int(src, i, f, c) for f, c in zip(head[1:], cells[1:])}
        r = empty_row()
        if head == GEMM:
            M, N, K = v["M"], v["N"], v["K"]
            r.update(op="linear", in_elems=M * K)
        else:
            H, W, R, S, C, F, st = (v[f] for f in CONV[1:])
            if R > H or S > W:
                raise UserError(f"{src}: row {i}: filter {R}x{S} is larger than the ifmap {H}x{W}; allowed "
                                "a filter no larger than the (padded) ifmap")
            M, N, K = ((H - R) // st + 1) * ((W - S) // st + 1), F, R * S * C
            r.update(op="conv", in_elems=H * W * C)
        r.update(name=name, module=name, aten="scalesim.topology", unit="gemm", operand_kind="wa", G=1,
                 M=M, N=N, K=K, macs=M * N * K, w_elems=K * N, out_elems=M * N)
        ops.append(r)
    if not ops:
        raise UserError(f"{src}: no layer rows after the header")
    table = make_table(ops)
    params = int(table["w_elems"].sum())
    return Trace(p.stem, params, {}, table, nx.DiGraph())
