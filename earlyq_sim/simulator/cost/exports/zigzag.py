"""Export a traced workload to ZigZag (PyPI ``zigzag-dse`` 3.x) workload YAML, one per stage.

ZigZag's workload format (``zigzag/parser/workload_validator.py``): a YAML list of layers, each
with ``id``, ``name``, ``operator_type``, ``equation``, ``dimension_relations``, ``loop_dims``,
``loop_sizes``, ``operand_precision`` (``I``, ``W``, ``O`` = partial sums, ``O_final``) and
``operand_source``; convs add ``pr_loop_dims``/``pr_loop_sizes``/``padding`` for the input.

* Convs follow ZigZag's own ONNX conv parser: ``O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*
  I[b][g][c][iy][ix]`` with loops ``B, K, G, OX, OY, C, FX, FY``.
* Linear and attention matmuls are ``Gemm`` layers ``O[d][k]+=I[d][c]*W[c][k]`` (loops
  ``D = M``, ``K = N``, ``C = K``), with an ``h`` loop for ``G > 1`` (attention heads).
* Every operand's source is the layer itself: each layer reads its inputs from memory, as the
  cost model assumes (no fusion), so ZigZag sees independent layers.

Precision per stage comes from ``schedule.stages()``: ``I``/``W`` are the op's operand bits
(``StepBits.operand_bits``: wa -> act x weight, aa -> act x act, pa -> prob x act), ``O`` the
arch's accumulator width, ``O_final`` the activation bits (outputs are requantised).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from earlyq_sim.simulator.cost.exports.common import ExportLayer, export_layers
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import ArchSpec

CONV_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"
GEMM_EQUATION = "O[d][k]+=I[d][c]*W[c][k]"
GEMM_EQUATION_H = "O[h][d][k]+=I[h][d][c]*W[h][c][k]"
DEFAULT_BITS = StepBits(8, 8, 8)


@dataclass(frozen=True)
class ZigZagExport:
    """Paths written by :func:`export_zigzag`; ``workloads[i]`` belongs to ``stage_labels[i]``."""

    workloads: tuple[Path, ...]
    stage_labels: tuple[str, ...]
    mapping: Path
    manifest: Path


def layer_entry(L: ExportLayer, layer_id: int, bits: StepBits, acc_bits: int = 32) -> dict:
    """One ZigZag workload layer (plain dict, YAML-ready) for an op at ``bits``."""
    x, y = bits.operand_bits(L.operand_kind)
    prec = {"W": int(y), "I": int(x), "O": int(acc_bits), "O_final": int(bits.act)}
    src = {"I": layer_id, "W": layer_id}
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


def workload(layers: list[ExportLayer], bits: StepBits, acc_bits: int = 32) -> list[dict]:
    """The ZigZag workload (list of layer dicts) of ``layers`` at ``bits``."""
    return [layer_entry(L, i, bits, acc_bits) for i, L in enumerate(layers)]


def mapping(rows: int, cols: int) -> list[dict]:
    """A default ZigZag mapping: output channels over array columns, reduction over rows."""
    sm = {"D1": [f"K, {cols}"], "D2": [f"C, {rows}"]}
    links = {"O": "O", "W": "I2", "I": "I1"}
    return [{"name": "default", "spatial_mapping": sm, "memory_operand_links": links},
            {"name": "Gemm", "spatial_mapping": sm, "memory_operand_links": links}]


def export_zigzag(trace_or_ops, out_dir, schedule=None, arch: ArchSpec | None = None, stem: str | None = None) -> ZigZagExport:
    """Write one ZigZag workload YAML per precision stage of ``schedule`` (W8A8 without one).

    ``arch`` (optional ``ArchSpec`` or name) sets the partial-sum precision (accumulator
    width, 32 by default) and the array size of the default mapping (32x32 by default).
    """
    layers = export_layers(trace_or_ops)
    acc, rows, cols = 32, 32, 32
    if arch is not None:
        from earlyq_sim.simulator.cost.arch import load_arch
        arch = load_arch(arch)
        acc, rows, cols = arch.accumulator.width_bits, arch.array.rows, arch.array.cols
    model = getattr(trace_or_ops, "model_name", "") or "workload"
    stem = stem or model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if schedule is None:
        stages = [(0, 0, 0, 0, DEFAULT_BITS)]
    else:
        stages = [(st.index, st.step_start, st.step_end, st.steps, st.bits) for st in schedule.stages()]
    paths, labels = [], []
    for idx, _s0, _s1, _n, bits in stages:
        p = out / f"{stem}_stage{idx}_{bits.label}.yaml"
        p.write_text(yaml.safe_dump(workload(layers, bits, acc), sort_keys=False))
        paths.append(p)
        labels.append(bits.label)
    map_path = out / f"{stem}_mapping.yaml"
    map_path.write_text(yaml.safe_dump(mapping(rows, cols), sort_keys=False))
    manifest = out / f"{stem}_stages.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "step_start", "step_end", "steps", "label", "weight_bits", "act_bits",
                    "prob_bits", "workload"])
        for (idx, s0, s1, n, bits), p in zip(stages, paths):
            w.writerow([idx, s0, s1, n, bits.label, bits.weight, bits.act, bits.prob, p.name])
    return ZigZagExport(tuple(paths), tuple(labels), map_path, manifest)
