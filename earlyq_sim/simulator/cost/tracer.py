"""Trace one forward pass of any nn.Module into an op table and op graph.

A ``TorchDispatchMode`` sees every aten op the module executes (on meta, fake or real tensors)
and records the ones that cost time (see :mod:`earlyq_sim.simulator.cost.oprules`). Module forward
hooks keep a stack so each row knows the innermost module that issued it. Graph edges come from
tensor identity: views and aliases inherit the producers of the tensor they view.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils._pytree import tree_leaves
from torch.utils._python_dispatch import TorchDispatchMode

from earlyq_sim.simulator.cost import oprules
from earlyq_sim.simulator.cost.graph import Trace, build_graph
from earlyq_sim.simulator.cost.optable import make_table

#: Bump when rows or edges change, so cached traces are rebuilt.
TRACER_VERSION = "2"


class _Recorder(TorchDispatchMode):
    """Records cost rows; ``tensors`` maps id -> (tensor, producers, is_weight)."""

    def __init__(self, weights: list[torch.Tensor], inputs: dict[str, torch.Tensor]):
        super().__init__()
        self.rows: list[dict] = []
        self.preds: list[set[int]] = []
        self.operands: dict[int, tuple[frozenset, frozenset]] = {}  # matmul rows: (a, b) producers
        self.tensors: dict[int, tuple[torch.Tensor, frozenset, bool]] = {}
        self.input_uses: dict[str, list[int]] = defaultdict(list)
        self.stack: list[str] = [""]
        for w in weights:
            self.tensors[id(w)] = (w, frozenset(), True)
        for name, t in inputs.items():
            self.tensors[id(t)] = (t, frozenset({name}), False)

    # -- tensor bookkeeping ------------------------------------------------------------------
    def _info(self, t: torch.Tensor) -> tuple[frozenset, bool]:
        hit = self.tensors.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1], hit[2]
        # Untracked: a constant made outside the trace, or a parameter we were not told of.
        return frozenset(), isinstance(t, torch.nn.Parameter) or bool(getattr(t, "_is_param", False))

    def _set(self, outs, producers: frozenset, is_weight: bool) -> None:
        for t in outs:
            self.tensors[id(t)] = (t, producers, is_weight)  # holding t keeps its id unique

    def _add(self, row: dict, ins: list[torch.Tensor]) -> int:
        idx = len(self.rows)
        row["module"] = self.stack[-1]
        preds: set[int] = set()
        for t in ins:
            for p in self._info(t)[0]:
                if isinstance(p, int):
                    preds.add(p)
                else:
                    self.input_uses[p].append(idx)
        self.rows.append(row)
        self.preds.append(preds)
        return idx

    # -- dispatch ------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = oprules.classify(func)  # raises UnsupportedOpError before running anything
        out = func(*args, **kwargs)
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        ins = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        name = oprules.base_name(func)
        if kind == "free":
            if name in oprules.VIEW_OPS and ins:
                infos = [self._info(t) for t in ins]
                self._set(outs, frozenset().union(*(i[0] for i in infos)), any(i[1] for i in infos))
            else:
                self._set(outs, frozenset(), False)
            return out
        if kind == "vector":
            is_w = [self._info(t)[1] for t in ins]
            acts = [t for t, w in zip(ins, is_w) if not w]
            row = oprules.vector_row(func, oprules.VECTOR_CATEGORY[name], acts,
                                     [t for t, w in zip(ins, is_w) if w], outs[:1])
            idx = self._add(row, ins)
            # A copy/cast of a weight is still a weight (e.g. a dtype cast before a GEMM).
            self._set(outs, frozenset({idx}), bool(ins) and all(is_w))
            return out
        return self._gemm(func, name, args, ins, out, outs)

    def _gemm(self, func, name, args, ins, out, outs):
        if name == "convolution":
            idx = self._add(oprules.conv_row(func, args, out, self._info(args[1])[1]), ins)
        elif name in oprules.SDPA:
            q, k, v = args[0], args[1], args[2]
            qk, sm, pv = oprules.sdpa_rows(func, q, k, v)
            i_qk = self._add(qk, [q, k] + [t for t in ins[3:]])  # masks feed the scores
            i_sm = self._add(sm, [])
            self.preds[i_sm].add(i_qk)
            idx = self._add(pv, [v])
            self.preds[idx].add(i_sm)
        else:
            a, b = (args[0], args[1]) if name in ("mm", "bmm") else (args[1], args[2])
            (pa, wa), (pb, wb) = self._info(a), self._info(b)
            row, _ = oprules.matmul_row(func, a, b, out, wa, wb)
            idx = self._add(row, ins)
            if row["op"] == "matmul":
                self.operands[idx] = (pa, pb)
        self._set(outs, frozenset({idx}), False)
        return out


def _push(stack: list[str], name: str):
    def pre(module, args):
        stack.append(name)
    return pre


def _pop(stack: list[str]):
    def post(module, args, output):
        stack.pop()
    return post


def _from_softmax(rec: _Recorder, producers, depth: int = 2) -> bool:
    """Does a value derive from a softmax row, through at most ``depth`` cheap vector ops?"""
    for p in producers:
        if not isinstance(p, int):
            continue
        row = rec.rows[p]
        if row["op"] == "softmax":
            return True
        if depth > 0 and row["op"] in ("elementwise", "copy") and _from_softmax(rec, rec.preds[p], depth - 1):
            return True
    return False


def _name_attention(rec: _Recorder) -> None:
    """Weight-free matmuls: PV if an operand came from a softmax, QK^T if a softmax consumes the
    result (through scale/mask/cast ops), otherwise a plain activation x activation matmul."""
    succ: dict[int, list[int]] = defaultdict(list)
    for v, ps in enumerate(rec.preds):
        for u in ps:
            succ[u].append(v)

    def to_softmax(i: int, depth: int) -> bool:
        for c in succ[i]:
            op = rec.rows[c]["op"]
            if op == "softmax" or (depth > 0 and op in ("elementwise", "copy") and to_softmax(c, depth - 1)):
                return True
        return False

    for idx, (pa, pb) in rec.operands.items():
        row = rec.rows[idx]
        if _from_softmax(rec, pa) or _from_softmax(rec, pb):
            row.update(op="attn_pv", operand_kind="pa")
            if not _from_softmax(rec, pa):  # keep P as the streamed operand
                row.update(M=row["N"], N=row["M"], in_elems=row["w_elems"], w_elems=row["in_elems"])
        elif to_softmax(idx, 3):
            row.update(op="attn_qk", operand_kind="aa")


def _name_rows(rows: list[dict]) -> None:
    """Sole op of a module -> the module path; otherwise '<module>/<op>#k'."""
    per_module: dict[str, int] = defaultdict(int)
    for r in rows:
        per_module[r["module"]] += 1
    counter: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        mod = r["module"]
        if per_module[mod] == 1 and mod:
            r["name"] = mod
        else:
            k = counter[(mod, r["op"])]
            counter[(mod, r["op"])] += 1
            r["name"] = f"{mod or '<root>'}/{r['op']}#{k}"


def _leading_batch(inputs: dict[str, torch.Tensor]) -> int:
    for t in inputs.values():
        if t.dim() > 0:
            return int(t.shape[0])
    return 1


def trace_module(module: torch.nn.Module, *args, model_name: str | None = None, **kwargs) -> Trace:
    """Trace ``module(*args, **kwargs)`` once and return its :class:`Trace`.

    Works on meta, fake (build module and inputs inside a FakeTensorMode and call this inside
    it) or real tensors; use meta/fake for large models so nothing is computed. Tensor inputs
    are named by keyword, or ``arg<i>`` when positional.
    """
    inputs = {f"arg{i}": a for i, a in enumerate(args) if isinstance(a, torch.Tensor)}
    inputs.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
    # Nested conditioning (SDXL's added_cond_kwargs): 'added_cond_kwargs.text_embeds'.
    inputs.update({f"{k}.{kk}": vv for k, v in kwargs.items() if isinstance(v, dict)
                   for kk, vv in v.items() if isinstance(vv, torch.Tensor)})
    weights = list(module.parameters()) + list(module.buffers())
    rec = _Recorder(weights, inputs)
    handles = []
    for name, m in module.named_modules():
        if name:  # the root's path is '' and sits at the bottom of the stack already
            handles.append(m.register_forward_pre_hook(_push(rec.stack, name)))
            handles.append(m.register_forward_hook(_pop(rec.stack, )))
    try:
        with torch.no_grad(), rec:
            result = module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    if hasattr(result, "to_tuple"):  # diffusers BaseOutput
        result = result.to_tuple()
    outputs = sorted({p for t in tree_leaves(result) if isinstance(t, torch.Tensor)
                      for p in rec._info(t)[0] if isinstance(p, int)})
    _name_attention(rec)
    _name_rows(rec.rows)
    batch = _leading_batch(inputs)
    for r in rec.rows:
        if r["op"] != "conv":
            r["batch"] = batch
    ops = make_table(rec.rows)
    edges = [(u, v) for v, ps in enumerate(rec.preds) for u in ps]
    graph = build_graph(ops, edges, dict(rec.input_uses), outputs)
    return Trace(model_name=model_name or type(module).__name__,
                 params=int(sum(p.numel() for p in module.parameters())),
                 input_shapes={k: tuple(int(s) for s in v.shape) for k, v in inputs.items()},
                 ops=ops, graph=graph)


def trace_model(model: str, batch: int = 1, cfg: bool = False, cache: bool = True,
                mode: str = "fake") -> Trace:
    """Trace a built-in model name or a local diffusers UNet folder at ``batch`` samples.

    ``cfg`` (classifier-free guidance, conditional models only) doubles the UNet batch.
    ``mode``: 'fake' (FakeTensorMode; the ops a CPU would run, fused SDPA included) or 'meta'
    (meta tensors; SDPA falls back to bmm + softmax). Nothing is allocated or downloaded.
    Cached on disk unless ``cache`` is False (see :mod:`earlyq_sim.simulator.cost.trace_cache`).
    """
    import diffusers
    from torch._subclasses.fake_tensor import FakeTensorMode

    from earlyq_sim.errors import UserError
    from earlyq_sim.models.loader import build_unet, config_for, example_inputs
    from earlyq_sim.models.registry import resolve_model
    from earlyq_sim.simulator.cost import trace_cache

    info = resolve_model(model)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"batch must be a positive integer, got {batch!r}")
    if cfg and not info.conditional:
        raise UserError(f"cfg=True needs a conditional model; {info.name!r} is unconditional "
                        "(allowed: cfg=False)")
    if cfg and not info.uses_cfg:
        raise UserError(f"cfg=True: {info.name!r} is guidance-distilled and samples without classifier-free "
                        "guidance (allowed: cfg=False)")
    if mode not in ("fake", "meta"):
        raise UserError(f"trace mode must be 'fake' or 'meta', got {mode!r}")
    config = config_for(info)
    unet_batch = batch * (2 if cfg else 1)
    key = trace_cache.cache_key(
        model=info.name, config=config, batch=unet_batch, cfg=cfg, mode=mode,
        sample=info.sample_shape, encoder=info.encoder_shape, tracer=TRACER_VERSION,
        torch=torch.__version__, diffusers=diffusers.__version__)
    if cache:
        hit = trace_cache.load_trace(key)
        if hit is not None:
            return hit
    ctx = FakeTensorMode() if mode == "fake" else torch.device("meta")
    with ctx:
        unet = build_unet(config, str(info.config_path))
        inputs = example_inputs(info, unet_batch, config)
        trace = trace_module(unet, model_name=info.name, **inputs)
    if cache:
        try:
            trace_cache.save_trace(key, trace)
        except OSError as e:  # a read-only or full cache disk must not fail the trace
            import warnings
            warnings.warn(f"earlyq-sim: trace not cached ({e})", stacklevel=2)
    return trace
