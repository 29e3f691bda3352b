"""Export a traced workload to SCALE-Sim v3 (PyPI ``scalesim`` 3.0): topology, layout, config.

Files written to ``out_dir`` (``<stem>`` defaults to ``<model>_<arch>_<dataflow>``):

* ``<stem>_conv.csv``: topology in SCALE-Sim's conv form (``-i conv``), every GEMM op. Convs as
  ``name, IFMAP H, IFMAP W, filter H, filter W, channels, filters, stride`` with the *padded*
  input (SCALE-Sim has no padding field: its ofmap is ``(H - R) / stride + 1``). SCALE-Sim has no
  batch or groups either, so a conv is one row per image and group (``#b<i>g<j>`` suffixes).
  Linear and attention matmuls are 1x1 convs on an ``M x 1`` ifmap with ``K`` channels and
  ``N`` filters (SCALE-Sim's im2col of that is exactly ``(M x K) @ (K x N)``); one row per
  GEMM instance (``#g<i>``, attention heads).
* ``<stem>_gemm.csv``: the same ops in SCALE-Sim's GEMM form (``-i gemm``: ``name, M, N, K``),
  one row per GEMM instance; a batched conv stays one GEMM (``M = batch * H_out * W_out``) as
  in our op table.
* ``<stem>_conv_layout.csv`` / ``<stem>_gemm_layout.csv``: layout rows (SCALE-Sim v3 always
  reads one), identity layouts; custom layouts are switched off in the config.
* ``<stem>.cfg``: the arch as a SCALE-Sim INI config (array, SRAM KiB, dataflow, bandwidth).
* ``<stem>_conv_layers.csv`` / ``<stem>_gemm_layers.csv``: manifest, topology row -> op row.
* ``<stem>_stages.csv`` (with a schedule): stage, step range and operand bits per stage.
* ``README.txt``: how to run it and what SCALE-Sim does not model.

SCALE-Sim facts this relies on (read from scalesim 3.0's source): words are 1 byte; SRAM
sizes are KiB (x1024); in ``USER`` bandwidth mode the ifmap and filter DRAM bandwidths are the
``[layout]`` section's ``IfmapSRAMBankBandwidth`` / ``FilterSRAMBankBandwidth`` and only the
ofmap uses ``Bandwidth``, so all three get the arch's DRAM bytes per cycle; a layer name
containing ``DP`` is split per channel (depthwise), so names are sanitised; a
``[network_presets]`` section would be read from the wrong section, so it is left out and the
topology is passed with ``-t``.
"""

from __future__ import annotations

import configparser
import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.exports.common import ExportLayer, export_layers
from earlyq_sim.simulator.cost.arch import ArchSpec

CONV_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides")
GEMM_HEADER = ("Layer", "M", "N", "K")
LAYOUT_HEADER = ("Layer name", "IFMAP Height Intraline Factor", "IFMAP Width Intraline Factor",
                 "Filter Height Intraline Factor", "Filter Width Intraline Factor",
                 "Channel Intraline Factor", "Num Filter Intraline Factor",
                 "IFMAP Height Intraline Order", "IFMAP Width Intraline Order", "Channel Intraline Order",
                 "IFMAP Height Interline Order", "IFMAP Width Interline Order", "Channel Interline Order",
                 "Num Filter Intraline Order", "Channel Intraline Order", "Filter Height Intraline Order",
                 "Filter Width Intraline Order", "Num Filter Interline Order", "Channel Interline Order",
                 "Filter Height Interline Order", "Filter Width Interline Order")
#: identity layout: unit intraline factors, natural orders (unused while custom layouts are off)
IDENTITY_LAYOUT = (1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3)
MANIFEST_HEADER = ("row", "topo_name", "op_index", "op_name", "op", "operand_kind",
                   "instance", "repeats", "M", "N", "K")


@dataclass(frozen=True)
class TopoRow:
    """One SCALE-Sim layer: conv-form fields plus the GEMM it stands for (per instance)."""

    topo_name: str
    layer: ExportLayer
    instance: int  # 0 .. repeats-1
    repeats: int  # rows this op expands into
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filter: int
    stride: int
    M: int
    N: int
    K: int

    def conv_fields(self) -> list:
        return [self.topo_name, self.ifmap_h, self.ifmap_w, self.filt_h, self.filt_w,
                self.channels, self.num_filter, self.stride]


@dataclass(frozen=True)
class ScaleSimExport:
    """Paths written by :func:`export_scalesim`."""

    config: Path
    topology_conv: Path
    topology_gemm: Path
    layout_conv: Path
    layout_gemm: Path
    manifest_conv: Path
    manifest_gemm: Path
    readme: Path
    stages: Path | None
    conv_rows: tuple[TopoRow, ...]
    gemm_rows: tuple[TopoRow, ...]


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.#-]", "_", name) or "layer"
    return s.replace("DP", "Dp")  # 'DP' in a name makes SCALE-Sim split the layer per channel


def conv_form_rows(layers: list[ExportLayer]) -> list[TopoRow]:
    """Rows of the conv-form topology: convs per image and group, GEMMs as 1x1 convs per instance."""
    rows: list[TopoRow] = []
    for L in layers:
        base = _safe(L.name)
        if L.is_conv:
            reps = L.batch * L.groups
            m = L.H_out * L.W_out
            for b in range(L.batch):
                for g in range(L.groups):
                    sfx = f"#b{b}g{g}" if reps > 1 else ""
                    rows.append(TopoRow(base + sfx, L, b * L.groups + g, reps, L.H_pad, L.W_pad, L.R, L.S,
                                        L.C_in // L.groups, L.C_out // L.groups, L.stride, m, L.N, L.K))
        else:
            for g in range(L.G):
                sfx = f"#g{g}" if L.G > 1 else ""
                rows.append(TopoRow(base + sfx, L, g, L.G, L.M, 1, 1, 1, L.K, L.N, 1, L.M, L.N, L.K))
    return rows


def gemm_form_rows(layers: list[ExportLayer]) -> list[TopoRow]:
    """Rows of the GEMM-form topology: one ``(M, N, K)`` row per GEMM instance of each op."""
    rows: list[TopoRow] = []
    for L in layers:
        base = _safe(L.name)
        for g in range(L.G):
            sfx = f"#g{g}" if L.G > 1 else ""
            rows.append(TopoRow(base + sfx, L, g, L.G, L.M, L.K, 1, L.K, 1, L.N, 1, L.M, L.N, L.K))
    return rows


def _whole(value: float, field: str, src: str) -> int:
    if value != int(value) or value < 1:
        raise UserError(f"{src}: {field}={value:g} cannot be exported to SCALE-Sim; allowed whole numbers >= 1 "
                        "(SCALE-Sim takes integer KiB and whole 1-byte words per cycle)")
    return int(value)


def _offset_above(n: int, floor: int = 10_000_000) -> int:
    """A power of ten above ``n`` addresses, so operand address ranges never overlap."""
    return max(floor, 10 ** math.ceil(math.log10(n + 1)))


def scalesim_config(arch: ArchSpec, run_name: str, max_ifmap: int = 0, max_filter: int = 0) -> configparser.ConfigParser:
    """The arch as a SCALE-Sim v3 INI config (sections in the order scalesim 3.0 reads them)."""
    src = arch.source or arch.name
    b = arch.buffers
    bw = _whole(arch.dram_bytes_per_cycle, "dram.bytes_per_cycle", src)
    f_off = _offset_above(max_ifmap)
    o_off = f_off + _offset_above(max_filter)
    cp = configparser.ConfigParser()
    cp.optionxform = str  # keep SCALE-Sim's key spelling (it reads them case-insensitively)
    cp["general"] = {"run_name": run_name}
    cp["architecture_presets"] = {
        "ArrayHeight": str(arch.array.rows), "ArrayWidth": str(arch.array.cols),
        "IfmapSramSzkB": str(_whole(b.ifmap_kib, "buffers.ifmap_kib", src)),
        "FilterSramSzkB": str(_whole(b.filter_kib, "buffers.filter_kib", src)),
        "OfmapSramSzkB": str(_whole(b.ofmap_kib, "buffers.ofmap_kib", src)),
        "IfmapOffset": "0", "FilterOffset": str(f_off), "OfmapOffset": str(o_off),
        "Bandwidth": str(bw), "Dataflow": arch.array.dataflow, "MemoryBanks": "1",
        "ReadRequestBuffer": "512", "WriteRequestBuffer": "512",
    }
    cp["layout"] = {
        "IfmapCustomLayout": "False", "IfmapSRAMBankBandwidth": str(bw), "IfmapSRAMBankNum": "1",
        "IfmapSRAMBankPort": "2", "FilterCustomLayout": "False", "FilterSRAMBankBandwidth": str(bw),
        "FilterSRAMBankNum": "1", "FilterSRAMBankPort": "2",
    }
    cp["sparsity"] = {"SparsitySupport": "false", "SparseRep": "ellpack_block", "OptimizedMapping": "false",
                      "BlockSize": "8", "RandomNumberGeneratorSeed": "40"}
    cp["run_presets"] = {"InterfaceBandwidth": "USER", "UseRamulatorTrace": "False"}
    return cp


def _write_rows(path: Path, header, rows) -> None:
    # SCALE-Sim drops the last comma-separated field of every line, so each line ends with ','
    with open(path, "w", newline="") as fh:
        fh.write(",".join(header) + ",\n")
        for r in rows:
            fh.write(",".join(str(x) for x in r) + ",\n")


def _write_manifest(path: Path, rows: list[TopoRow]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_HEADER)
        for i, r in enumerate(rows):
            w.writerow([i, r.topo_name, r.layer.index, r.layer.name, r.layer.op, r.layer.operand_kind,
                        r.instance, r.repeats, r.M, r.N, r.K])


def _write_stages(path: Path, schedule) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "start", "end", "step_start", "step_end", "steps", "label",
                    "weight_bits", "act_bits", "prob_bits"])
        for st in schedule.stages():
            w.writerow([st.index, st.start, st.end, st.step_start, st.step_end, st.steps, st.bits.label,
                        st.bits.weight, st.bits.act, st.bits.prob])


def export_scalesim(trace_or_ops, arch: ArchSpec, out_dir, schedule=None, stem: str | None = None) -> ScaleSimExport:
    """Write the GEMM ops of a trace (or op table) as SCALE-Sim v3 inputs for ``arch``.

    ``arch``: an ``ArchSpec`` or a name/path for ``load_arch``. ``schedule``: optional
    ``PrecisionSchedule``; SCALE-Sim has no operand precision (1-byte words), so it only adds
    ``<stem>_stages.csv`` (bits per stage) for weighting per-step results.
    """
    from earlyq_sim.simulator.cost.arch import load_arch

    arch = load_arch(arch)
    layers = export_layers(trace_or_ops)
    model = getattr(trace_or_ops, "model_name", "") or "workload"
    stem = stem or _safe(f"{model}_{arch.name}_{arch.array.dataflow}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conv_rows, gemm_rows = conv_form_rows(layers), gemm_form_rows(layers)
    max_if = max(r.ifmap_h * r.ifmap_w * r.channels for r in conv_rows)
    max_f = max(r.filt_h * r.filt_w * r.channels * r.num_filter for r in conv_rows)
    paths = {k: out / f"{stem}{sfx}" for k, sfx in (
        ("config", ".cfg"), ("topology_conv", "_conv.csv"), ("topology_gemm", "_gemm.csv"),
        ("layout_conv", "_conv_layout.csv"), ("layout_gemm", "_gemm_layout.csv"),
        ("manifest_conv", "_conv_layers.csv"), ("manifest_gemm", "_gemm_layers.csv"))}
    cfg = scalesim_config(arch, stem, max_if, max_f)
    with open(paths["config"], "w") as fh:
        cfg.write(fh)
    _write_rows(paths["topology_conv"], CONV_HEADER, [r.conv_fields() for r in conv_rows])
    _write_rows(paths["topology_gemm"], GEMM_HEADER, [[r.topo_name, r.M, r.N, r.K] for r in gemm_rows])
    _write_rows(paths["layout_conv"], LAYOUT_HEADER, [[r.topo_name, *IDENTITY_LAYOUT] for r in conv_rows])
    _write_rows(paths["layout_gemm"], LAYOUT_HEADER, [[r.topo_name, *IDENTITY_LAYOUT] for r in gemm_rows])
    _write_manifest(paths["manifest_conv"], conv_rows)
    _write_manifest(paths["manifest_gemm"], gemm_rows)
    stages = None
    if schedule is not None:
        stages = out / f"{stem}_stages.csv"
        _write_stages(stages, schedule)
    readme = out / "README.txt"
    readme.write_text(_readme(stem, arch, len(layers), len(conv_rows), len(gemm_rows)))
    return ScaleSimExport(readme=readme, stages=stages, conv_rows=tuple(conv_rows),
                          gemm_rows=tuple(gemm_rows), **paths)


def _readme(stem: str, arch: ArchSpec, n_ops: int, n_conv: int, n_gemm: int) -> str:
    pe_note = ("" if arch.pe.type == "bit_parallel" else
               f"\nNOTE: {arch.name} has {arch.pe.type} PEs; SCALE-Sim models a bit-parallel array of the same\n"
               "size, so its cycles are those of 8-bit operands on a plain systolic array.\n")
    return (
        f"SCALE-Sim v3 inputs exported by earlyq-sim for arch {arch.name} ({arch.array.rows}x{arch.array.cols}, "
        f"dataflow {arch.array.dataflow}).\n"
        f"{n_ops} GEMM ops -> {n_conv} conv-form rows, {n_gemm} GEMM-form rows.\n\n"
        "Run (pip install scalesim; it needs numpy<2.4):\n"
        f"  python -m scalesim.scale -c {stem}.cfg -t {stem}_conv.csv -l {stem}_conv_layout.csv -i conv -s N -p out\n"
        f"  python -m scalesim.scale -c {stem}.cfg -t {stem}_gemm.csv -l {stem}_gemm_layout.csv -i gemm -s N -p out\n"
        f"Per-row results map back to op-table rows through {stem}_conv_layers.csv / {stem}_gemm_layers.csv;\n"
        "sum the rows of one op_index for the op.\n\n"
        "Not modelled by SCALE-Sim: operand precision (1-byte words), vector ops (norms, softmax,\n"
        "elementwise), batch and conv groups (expanded into rows), padding (the ifmap is the padded one).\n"
        "SCALE-Sim always double-buffers (half of each SRAM active).\n" + pe_note)
