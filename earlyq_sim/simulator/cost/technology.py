"""Technology scaling of area and energy between CMOS nodes (Stillmaker and Baas, 2017).

Source: A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration, the VLSI Journal 58 (2017) 74-81,
doi:10.1016/j.vlsi.2017.02.002. Their model is fitted to HSpice runs on PTM / ITRS device
models; the values below are the paper's table of area factors between nodes and its per-node
energy polynomials ``E(Vdd) = a Vdd^2 + b Vdd + c`` (relative energy per operation), as
transcribed in Accelergy's component library (which we read; the code here is our own).

The paper reports R^2 > 0.95 for its fits against the device models; real processes differ
(SRAM bit cells in particular scale worse than logic), so a scaled figure is an estimate and the
report says which node and which model every number is at. Area uses the table's 45 nm row as
one profile (every other row agrees with it to the table's two digits), so scaling there and back
is exact; between listed nodes the profile is interpolated log-linearly and the energy linearly
in node index; outside 7-130 nm is an error.
"""

from __future__ import annotations

import math

#: nodes of the table, nm, largest first
NODES_NM = (130, 90, 65, 45, 32, 20, 16, 14, 10, 7)
#: AREA[i][j]: multiply an area at NODES_NM[i] by this to get it at NODES_NM[j]
AREA = (
    (1, 0.44, 0.23, 0.16, 0.072, 0.033, 0.03, 0.027, 0.016, 0.0092),
    (2.3, 1, 0.53, 0.35, 0.16, 0.075, 0.067, 0.061, 0.036, 0.021),
    (4.3, 1.9, 1, 0.66, 0.31, 0.14, 0.13, 0.12, 0.068, 0.039),
    (6.4, 2.8, 1.5, 1, 0.46, 0.21, 0.19, 0.17, 0.1, 0.059),
    (14, 6.1, 3.3, 2.2, 1, 0.46, 0.41, 0.38, 0.22, 0.13),
    (30, 13, 7.1, 4.7, 2.2, 1, 0.89, 0.82, 0.48, 0.28),
    (34, 15, 7.9, 5.3, 2.4, 1.1, 1, 0.91, 0.54, 0.31),
    (37, 16, 8.7, 5.8, 2.7, 1.2, 1.1, 1, 0.59, 0.34),
    (63, 28, 15, 9.8, 4.5, 2.1, 1.9, 1.7, 1, 0.58),
    (110, 48, 25, 17, 7.8, 3.6, 3.2, 2.9, 1.7, 1),
)
#: per node: (a, b, c) of the relative energy per operation a Vdd^2 + b Vdd + c
ENERGY_POLY = (
    (7.171, -6.709, 2.904),
    (4.762, -4.781, 2.092),
    (3.755, -4.398, 1.975),
    (1.103, -0.362, 0.2767),
    (0.9559, -0.7823, 0.471),
    (0.373, -0.1582, 0.04104),
    (0.2958, -0.1241, 0.03024),
    (0.2363, -0.09675, 0.02239),
    (0.2068, -0.09311, 0.02375),
    (0.1776, -0.09097, 0.02447),
)
MIN_NM, MAX_NM = NODES_NM[-1], NODES_NM[0]
MODEL = "Stillmaker & Baas, Integration 2017 (area table, energy polynomials in Vdd)"


def _index(node_nm: float) -> float:
    """Fractional position of ``node_nm`` in NODES_NM (linear between neighbours)."""
    if not (math.isfinite(node_nm) and MIN_NM <= node_nm <= MAX_NM):
        raise ValueError(f"technology node {node_nm!r} nm outside the scaling table ({MIN_NM}-{MAX_NM} nm)")
    for i in range(len(NODES_NM) - 1):
        big, small = NODES_NM[i], NODES_NM[i + 1]
        if small <= node_nm <= big:
            return i + (big - node_nm) / (big - small)
    return float(len(NODES_NM) - 1)


def _area_profile(node_nm: float) -> float:
    """Area at ``node_nm`` relative to 45 nm (the table's 45 nm row, log-linear in between)."""
    x = _index(node_nm)
    i0 = int(math.floor(x))
    i1, f = min(i0 + 1, len(NODES_NM) - 1), x - i0
    row = AREA[NODES_NM.index(45)]
    return math.exp((1 - f) * math.log(row[i0]) + f * math.log(row[i1]))


def area_factor(from_nm: float, to_nm: float) -> float:
    """Multiply an area at ``from_nm`` by this to get it at ``to_nm``."""
    return float(_area_profile(to_nm) / _area_profile(from_nm))


def _energy(node_nm: float, vdd: float) -> float:
    x = _index(node_nm)
    i0 = int(math.floor(x))
    i1, f = min(i0 + 1, len(NODES_NM) - 1), x - i0
    at = lambda i: sum(c * vdd ** (2 - k) for k, c in enumerate(ENERGY_POLY[i]))  # noqa: E731
    return (1 - f) * at(i0) + f * at(i1)


def energy_factor(from_nm: float, from_vdd: float, to_nm: float, to_vdd: float) -> float:
    """Multiply an energy per operation at (``from_nm``, ``from_vdd`` V) by this to get it at
    (``to_nm``, ``to_vdd`` V)."""
    e0, e1 = _energy(from_nm, from_vdd), _energy(to_nm, to_vdd)
    if not (e0 > 0 and e1 > 0):  # the polynomials are fitted to each node's own Vdd range
        raise ValueError(f"supply {from_vdd if e0 <= 0 else to_vdd} V is outside the energy model's range")
    return float(e1 / e0)
