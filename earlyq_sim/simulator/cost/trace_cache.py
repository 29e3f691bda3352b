"""On-disk cache of traces: ops as Parquet, graph edges and metadata as JSON.

Directory: ``$EARLYQ_CACHE_DIR`` or ``~/.cache/earlyq-sim/traces``. Entries are keyed by a hash
of everything that can change a trace (model identity, input shapes, cfg, tracer/torch/diffusers
versions). Writes are atomic (temporary file + ``os.replace``); an unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from earlyq_sim.atomic_io import atomic_path, atomic_write_bytes
from earlyq_sim.simulator.cost.graph import Trace, build_graph, graph_edges
from earlyq_sim.simulator.cost.optable import make_table


def cache_dir() -> Path:
    env = os.environ.get("EARLYQ_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "earlyq-sim" / "traces"


def cache_key(**identity) -> str:
    """Stable hex key of JSON-serialisable identity fields."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def save_trace(key: str, trace: Trace, directory: Path | None = None) -> None:
    d = directory or cache_dir()
    meta = {"model_name": trace.model_name, "params": trace.params,
            "input_shapes": {k: list(v) for k, v in trace.input_shapes.items()},
            "edges": graph_edges(trace.graph), "graph": trace.graph.graph}
    # Parquet first: the JSON is what marks an entry complete.
    with atomic_path(d / f"{key}.parquet") as p:
        trace.ops.to_parquet(p, index=False)
    atomic_write_bytes(d / f"{key}.json", json.dumps(meta).encode())


def load_trace(key: str, directory: Path | None = None) -> Trace | None:
    """The cached trace, or None if absent or unreadable."""
    d = directory or cache_dir()
    pq, js = d / f"{key}.parquet", d / f"{key}.json"
    if not (pq.is_file() and js.is_file()):
        return None
    try:
        meta = json.loads(js.read_text())
        ops = make_table(pd.read_parquet(pq).to_dict("records"))
        g = meta["graph"]
        graph = build_graph(ops, [tuple(e) for e in meta["edges"]], g["inputs"], g["outputs"])
        return Trace(model_name=meta["model_name"], params=int(meta["params"]),
                     input_shapes={k: tuple(v) for k, v in meta["input_shapes"].items()},
                     ops=ops, graph=graph)
    except Exception:  # a corrupt or foreign entry: trace again and overwrite it
        return None
