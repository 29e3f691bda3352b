"""``operand_source`` of each exported ZigZag layer: which exported layer produced its operands.

ZigZag 3.9 (``workload_factory.LayerNodeFactory``) reads ``operand_source`` per layer: an
operand whose source is the layer's own id is constant (a weight); one naming another layer's
id is that layer's output (an edge of ZigZag's workload graph; the producer must come earlier in
the file); an operand without an entry is neither, i.e. an external input.

The trace's graph (``Trace.graph``, producer -> consumer by tensor identity) gives the edges.
Only edges between two exported (GEMM) layers can be written: most UNet GEMMs read the output of
a norm, an activation function or a reshape, which ZigZag does not see, so those inputs are
external. A plain op table (no graph) gives no edges.
"""

from __future__ import annotations

from earlyq_sim.simulator.cost.exports.common import ExportLayer


def _operand_elems(L: ExportLayer) -> dict[str, int]:
    """Values of the streamed (I) and stationary (W) operand of one exported layer."""
    return {"I": L.G * L.M * L.K, "W": L.G * L.K * L.N}


def operand_sources(trace_or_ops, layers: list[ExportLayer]) -> list[dict]:
    """One ``operand_source`` dict per layer (ZigZag layer ids are positions in ``layers``)."""
    graph = getattr(trace_or_ops, "graph", None)
    pos = {L.index: i for i, L in enumerate(layers)}  # op-table row -> ZigZag layer id
    out = []
    for i, L in enumerate(layers):
        src: dict[str, int] = {"W": i} if L.operand_kind == "wa" else {}
        preds = [] if graph is None or L.index not in graph else \
            [pos[p] for p in graph.predecessors(L.index) if p in pos and pos[p] < i]
        free = ["I"] if L.operand_kind == "wa" else ["I", "W"]
        need = _operand_elems(L)
        for p in preds:
            P = layers[p]
            made = P.G * P.M * P.N  # the producer's output values
            # the operand whose size the producer's output matches; the first free one if both do
            fits = [op for op in free if need[op] == made] or free[:1]
            if fits:
                src[fits[0]] = p
                free.remove(fits[0])
        out.append(src)
    return out
