"""Exports of traced workloads to other tools: SCALE-Sim v3 and ZigZag (zigzag-dse)."""

from earlyq_sim.simulator.cost.exports.common import ExportLayer, export_layers
from earlyq_sim.simulator.cost.exports.scalesim import ScaleSimExport, export_scalesim
from earlyq_sim.simulator.cost.exports.zigzag import ZigZagExport, export_zigzag

__all__ = ["ExportLayer", "export_layers", "ScaleSimExport", "export_scalesim", "ZigZagExport", "export_zigzag"]
