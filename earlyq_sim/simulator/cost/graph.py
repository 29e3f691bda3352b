"""The traced op graph and the :class:`Trace` result.

Nodes are op-table row indices (0..n-1) with the row dict as attributes; edges go producer ->
consumer. ``graph.graph["inputs"]`` maps each model input name to the rows that read it and
``graph.graph["outputs"]`` lists the rows whose results the model returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

from earlyq_sim.simulator.cost.optable import GEMM_OPS


def build_graph(ops: pd.DataFrame, edges: list[tuple[int, int]],
                inputs: dict[str, list[int]], outputs: list[int]) -> nx.DiGraph:
    """A DiGraph over the rows of ``ops`` (node i = row i, attributes = the row's dict)."""
    g = nx.DiGraph(inputs={k: list(v) for k, v in inputs.items()}, outputs=list(outputs))
    g.add_nodes_from(enumerate(ops.to_dict("records")))
    g.add_edges_from((int(u), int(v)) for u, v in edges)
    return g


def graph_edges(g: nx.DiGraph) -> list[tuple[int, int]]:
    return sorted((int(u), int(v)) for u, v in g.edges)


@dataclass(frozen=True)
class Trace:
    """One traced UNet forward pass.

    ``params``: parameter count of the module; ``input_shapes``: name -> shape of each input;
    ``ops``: op table per :mod:`earlyq_sim.simulator.cost.optable`; ``graph``: see module doc.
    """

    model_name: str
    params: int
    input_shapes: dict[str, tuple[int, ...]]
    ops: pd.DataFrame
    graph: nx.DiGraph = field(repr=False)

    def macs(self, op: str | tuple[str, ...] | None = None) -> int:
        """Multiply-accumulates of GEMM ops (all by default, or of the given categories)."""
        cats = GEMM_OPS if op is None else ((op,) if isinstance(op, str) else tuple(op))
        sel = self.ops["op"].isin(cats).to_numpy()
        return int(self.ops["macs"].to_numpy()[sel].sum(dtype=np.int64))

    @property
    def batch(self) -> int:
        shapes = list(self.input_shapes.values())
        return int(shapes[0][0]) if shapes and shapes[0] else 1

    def summary(self) -> pd.DataFrame:
        """Ops, MACs and vector elements per op category."""
        return (self.ops.groupby("op", sort=True)
                .agg(count=("op", "size"), macs=("macs", "sum"), elems=("elems", "sum"))
                .reset_index())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return (self.model_name == other.model_name and self.params == other.params
                and self.input_shapes == other.input_shapes and self.ops.equals(other.ops)
                and graph_edges(self.graph) == graph_edges(other.graph)
                and self.graph.graph == other.graph.graph)
