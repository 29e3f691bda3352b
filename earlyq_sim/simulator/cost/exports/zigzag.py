"""Export a traced workload to ZigZag (PyPI ``zigzag-dse`` 3.9): workloads, mapping, hardware.

Files written to ``out_dir`` (``<stem>`` defaults to the model name), each atomically:

* ``<stem>_stage<i>_<bits>.yaml``: one workload per precision stage of the schedule.
* ``<stem>_mapping.yaml``: spatial mapping and memory operand links (``I -> I1, W -> I2, O -> O``).
* ``<stem>_hardware.yaml``: the arch as a ZigZag accelerator (``zigzag_hardware.py``).
* ``<stem>_stages.csv``: stage, step range, bits and workload file per stage.
* ``<stem>_README.txt``: how to run it in ZigZag.

ZigZag's workload format (``zigzag/parser/workload_validator.py``): a YAML list of layers, each
with ``id``, ``name``, ``operator_type``, ``equation``, ``dimension_relations``, ``loop_dims``,
``loop_sizes``, ``operand_precision`` (``I``, ``W``, ``O`` = partial sums, ``O_final``) and
``operand_source``; convs add ``pr_loop_dims``/``pr_loop_sizes``/``padding`` for the input.

* Convs follow ZigZag's own ONNX conv parser: ``O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*
  I[b][g][c][iy][ix]`` with loops ``B, K, G, OX, OY, C, FX, FY``.
* Linear and attention matmuls are ``Gemm`` layers ``O[d][k]+=I[d][c]*W[c][k]`` (loops
  ``D = M``, ``K = N``, ``C = K``), with an ``h`` loop for ``G > 1`` (attention heads).
* ``operand_source`` (``zigzag_links.py``): a weight names its own layer (ZigZag's mark of a
  constant operand); an activation names the exported layer that produced it when the trace's
  graph has that edge; an activation produced outside the export (a norm, an activation
  function, the model input) has no entry, which ZigZag reads as an external input.

Precision per stage comes from ``schedule.stages()``: ``I``/``W`` are the op's operand bits
(``StepBits.operand_bits``: wa -> act x weight, aa -> act x act, pa -> prob x act), ``O`` the
arch's accumulator width (the hardware's output register holds it), ``O_final`` the activation
bits (outputs are requantised).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import yaml

from earlyq_sim.atomic_io import atomic_write_bytes
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import ArchSpec
from earlyq_sim.simulator.cost.exports.common import ExportLayer, export_layers
from earlyq_sim.simulator.cost.exports.zigzag_hardware import HardwareBits, hardware
from earlyq_sim.simulator.cost.exports.zigzag_links import operand_sources

CONV_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"
GEMM_EQUATION = "O[d][k]+=I[d][c]*W[c][k]"
GEMM_EQUATION_H = "O[h][d][k]+=I[h][d][c]*W[h][c][k]"
DEFAULT_BITS = StepBits(8, 8, 8)
LINKS = {"O": "O", "W": "I2", "I": "I1"}


@dataclass(frozen=True)
class ZigZagExport:
    """Paths written by :func:`export_zigzag`; ``workloads[i]`` belongs to ``stage_labels[i]``."""

    workloads: tuple[Path, ...]
    stage_labels: tuple[str, ...]
    mapping: Path
    manifest: Path
    hardware: Path | None = None
    readme: Path | None = None


def layer_entry(L: ExportLayer, layer_id: int, bits: StepBits, acc_bits: int = 32, source: dict | None = None) -> dict:
    """One ZigZag workload layer (plain dict, YAML-ready) for an op at ``bits``.

    ``source``: its ``operand_source`` (layer ids); default: weight constant, activation external."""
    x, y = bits.operand_bits(L.operand_kind)
    prec = {"W": int(y), "I": int(x), "O": int(acc_bits), "O_final": int(bits.act)}
    src = dict(source) if source is not None else ({"W": layer_id} if L.operand_kind == "wa" else {})
    if L.is_conv:
        return {
            "id": layer_id, "name": L.name, "operator_type": "Conv", "equation": CONV_EQUATION,
            "dimension_relations": [f"ix={L.stride}*ox+1*fx", f"iy={L.stride}*oy+1*fy"],
            "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"],
            "loop_sizes": [L.batch, L.C_out // L.groups, L.groups, L.W_out, L.H_out,
                           L.C_in // L.groups, L.S, L.R],
            "operand_precision": prec, "operand_source": src,
            "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [L.W_in, L.H_in],
            "padding": [[L.pad, L.pad], [L.pad, L.pad]],
        }
    if L.G > 1:
        eq, dims, sizes = GEMM_EQUATION_H, ["H", "D", "K", "C"], [L.G, L.M, L.N, L.K]
    else:
        eq, dims, sizes = GEMM_EQUATION, ["D", "K", "C"], [L.M, L.N, L.K]
    return {"id": layer_id, "name": L.name, "operator_type": "Gemm", "equation": eq,
            "dimension_relations": [], "loop_dims": dims, "loop_sizes": sizes,
            "operand_precision": prec, "operand_source": src}


def workload(layers: list[ExportLayer], bits: StepBits, acc_bits: int = 32,
             sources: list[dict] | None = None) -> list[dict]:
    """The ZigZag workload (list of layer dicts) of ``layers`` at ``bits``."""
    return [layer_entry(L, i, bits, acc_bits, None if sources is None else sources[i]) for i, L in enumerate(layers)]


def conv_rows_unrolling(L: ExportLayer, rows: int) -> list[str] | None:
    """Rows unrolling of a conv whose input channels leave rows idle: ``C`` then ``FY``/``FX``
    (ZigZag's mixed spatial mapping), as our array maps the im2col reduction ``C*R*S`` onto
    rows. ``None`` when ``C`` alone fills the rows or the kernel is 1x1."""
    c = L.C_in // L.groups
    if c >= rows or L.R * L.S == 1:
        return None
    out, used = [f"C, {c}"], c
    for dim, size in (("FY", L.R), ("FX", L.S)):
        f = min(size, rows // used)
        while f > 1 and size % f:  # an unrolling that divides the loop: no partial tiles
            f -= 1
        if f > 1:
            out.append(f"{dim}, {f}")
            used *= f
    return out if len(out) > 1 else None


def mapping(rows: int, cols: int, layers: list[ExportLayer] | None = None) -> list[dict]:
    """ZigZag mapping: output channels over array columns (D1), reduction over rows (D2), as a
    weight-stationary array; convs with few input channels also unroll the kernel on rows."""
    sm = {"D1": [f"K, {cols}"], "D2": [f"C, {rows}"]}
    out = [{"name": "default", "spatial_mapping": sm, "memory_operand_links": dict(LINKS)},
           {"name": "Gemm", "spatial_mapping": sm, "memory_operand_links": dict(LINKS)}]
    seen = set()
    for L in layers or ():
        d2 = conv_rows_unrolling(L, rows) if L.is_conv else None
        if d2 is not None and L.name not in seen:
            seen.add(L.name)
            out.append({"name": L.name, "spatial_mapping": {"D1": [f"K, {cols}"], "D2": d2},
                        "memory_operand_links": dict(LINKS)})
    return out


def _stages(schedule):
    if schedule is None:
        return [(0, 0, 0, 0, DEFAULT_BITS)]
    return [(st.index, st.step_start, st.step_end, st.steps, st.bits) for st in schedule.stages()]


def hardware_bits(layers: list[ExportLayer], stages) -> HardwareBits:
    """Widest streamed / stationary bits over the exported stages (what the registers and ports
    must carry); the MAC energy is quoted at the most common operand pair of the first stage."""
    xs, ys = [], []
    for *_, bits in stages:
        for L in layers:
            x, y = bits.operand_bits(L.operand_kind)
            xs.append(x)
            ys.append(y)
    first = [stages[0][-1].operand_bits(L.operand_kind) for L in layers]
    mac = max(set(first), key=first.count) if first else (8, 8)
    return HardwareBits(max(xs, default=8), max(ys, default=8), (int(mac[0]), int(mac[1])))


def _dump(path: Path, obj) -> Path:
    return atomic_write_bytes(path, yaml.safe_dump(obj, sort_keys=False).encode())


def _readme(stem: str, paths: list[Path], hw: Path, mp: Path) -> str:
    return (f"ZigZag (zigzag-dse 3.9) export of {stem}.\n\n"
            "Run one stage:\n\n"
            "    from zigzag.api import get_hardware_performance_zigzag\n"
            f"    energy_pj, cycles, cmes = get_hardware_performance_zigzag(\n"
            f"        '{paths[0].name}', '{hw.name}', '{mp.name}', opt='latency')\n\n"
            "Not modelled by ZigZag: per-fold fill/drain of the systolic wavefront (one drain per\n"
            "layer), precision-dependent compute cycles (one MAC per PE per cycle at any bits),\n"
            "vector ops (norms, softmax, elementwise) which earlyq-sim costs on its vector unit.\n")


def export_zigzag(trace_or_ops, out_dir, schedule=None, arch: ArchSpec | str | None = None,
                  stem: str | None = None) -> ZigZagExport:
    """Write the ZigZag workloads (one per precision stage of ``schedule``, W8A8 without one),
    the mapping, the hardware of ``arch`` (``int8-systolic`` by default) and a manifest.

    ``arch`` (an ``ArchSpec`` or a name) sets the partial-sum precision (accumulator width),
    the array size of the mapping and everything in the hardware file."""
    from earlyq_sim.simulator.cost.arch import load_arch

    layers = export_layers(trace_or_ops)
    spec = load_arch(arch if arch is not None else "int8-systolic")
    acc, rows, cols = spec.accumulator.width_bits, spec.array.rows, spec.array.cols
    stem = stem or getattr(trace_or_ops, "model_name", "") or "workload"
    out = Path(out_dir)
    stages = _stages(schedule)
    hw = hardware(spec, hardware_bits(layers, stages))  # a bad bandwidth is an error before any file
    sources = operand_sources(trace_or_ops, layers)
    paths, labels = [], []
    for idx, _s0, _s1, _n, bits in stages:
        p = out / f"{stem}_stage{idx}_{bits.label}.yaml"
        _dump(p, workload(layers, bits, acc, sources))
        paths.append(p)
        labels.append(bits.label)
    map_path = _dump(out / f"{stem}_mapping.yaml", mapping(rows, cols, layers))
    hw_path = _dump(out / f"{stem}_hardware.yaml", hw)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stage", "step_start", "step_end", "steps", "label", "weight_bits", "act_bits", "prob_bits",
                "workload"])
    for (idx, s0, s1, n, bits), p in zip(stages, paths):
        w.writerow([idx, s0, s1, n, bits.label, bits.weight, bits.act, bits.prob, p.name])
    manifest = atomic_write_bytes(out / f"{stem}_stages.csv", buf.getvalue().encode())
    readme = atomic_write_bytes(out / f"{stem}_README.txt", _readme(stem, paths, hw_path, map_path).encode())
    return ZigZagExport(tuple(paths), tuple(labels), map_path, manifest, hw_path, readme)
