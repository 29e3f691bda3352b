"""Cost rules: which aten ops are free, which become op-table rows, and how to fill the rows.

Every op the tracer sees is looked up by its overload-packet name (in-place variants such as
``add_`` use the rule of ``add``). Free ops (views, metadata, tensor factories) are not rows; an
op with no rule and not on the free list raises :class:`UnsupportedOpError`, so nothing is ever
costed as zero by accident.
"""

from __future__ import annotations

import math

import torch

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.optable import empty_row


class UnsupportedOpError(UserError):
    """The traced model executes an aten op the tracer has no cost rule for."""


#: Views, aliases and metadata: outputs alias an input; no data moves.
VIEW_OPS = frozenset("""
view _unsafe_view reshape _reshape_alias permute expand expand_as t transpose unsqueeze squeeze
slice select split split_with_sizes chunk unbind as_strided detach alias lift_fresh narrow movedim
view_as unflatten flatten diagonal numpy_T real view_as_real
""".split())
#: Tensor factories and shape queries: no input data is read (outputs have no producer).
FACTORY_OPS = frozenset("""
empty empty_like empty_strided zeros zeros_like ones ones_like full full_like arange scalar_tensor
new_empty new_empty_strided new_zeros new_ones new_full linspace randn randn_like rand rand_like
randint normal_ uniform_ lift_fresh_copy sym_size sym_stride sym_numel sym_storage_offset device
is_contiguous dim size stride
""".split())
FREE_OPS = VIEW_OPS | FACTORY_OPS

ELEMENTWISE = frozenset("""
add sub rsub mul div neg exp exp2 log log2 sin cos pow sqrt rsqrt reciprocal abs clamp clamp_min
clamp_max where maximum minimum floor ceil round trunc sign lerp addcmul addcdiv masked_fill eq ne
lt gt le ge logical_and logical_or logical_not erf expm1 log1p square fmod remainder fill zero
bitwise_and bitwise_or bitwise_not native_dropout
""".split())
ACTIVATION = frozenset("silu gelu relu sigmoid tanh softplus mish hardswish hardsigmoid elu leaky_relu".split())
SOFTMAX = frozenset("_softmax _safe_softmax _log_softmax softmax log_softmax".split())
NORM = frozenset("""native_group_norm native_layer_norm native_batch_norm _native_batch_norm_legit
_native_batch_norm_legit_no_training _fused_rms_norm""".split())
UPSAMPLE = frozenset("""upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d
_upsample_nearest_exact2d upsample_bilinear2d upsample_bicubic2d upsample_linear1d""".split())
CONCAT = frozenset("cat stack".split())
REDUCE = frozenset("""sum mean amax amin max min var var_mean std std_mean linalg_vector_norm prod logsumexp
avg_pool1d avg_pool2d max_pool2d max_pool2d_with_indices adaptive_avg_pool2d _adaptive_avg_pool2d""".split())
COPY = frozenset("""clone _to_copy copy copy_ contiguous constant_pad_nd reflection_pad1d reflection_pad2d
replication_pad2d embedding index_select gather index repeat flip roll""".split())
SDPA = frozenset("""_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_flash_attention
_scaled_dot_product_efficient_attention _scaled_dot_product_cudnn_attention""".split())

#: Passes of each element through the vector unit. Softmax: max, exp+sum, divide. Norm:
#: statistics, then normalise+affine. Everything else streams once.
PASSES = {"softmax": 3, "norm": 2}

_VECTOR_TABLE = [(ELEMENTWISE, "elementwise"), (ACTIVATION, "activation"), (SOFTMAX, "softmax"),
                 (NORM, "norm"), (UPSAMPLE, "upsample"), (CONCAT, "concat"), (REDUCE, "reduce"),
                 (COPY, "copy")]
VECTOR_CATEGORY = {name: cat for names, cat in _VECTOR_TABLE for name in names}
GEMM_ATEN = frozenset({"convolution", "mm", "addmm", "bmm", "baddbmm"}) | SDPA


def base_name(func) -> str:
    """Overload-packet name without the in-place underscore: aten.add_.Tensor -> 'add'."""
    name = func.overloadpacket.__name__
    if name.endswith("_") and not name.startswith("_") and name[:-1] in VECTOR_CATEGORY:
        return name[:-1]
    return name


def classify(func) -> str:
    """'free', 'gemm', 'vector'; raises UnsupportedOpError otherwise."""
    name = base_name(func)
    ns = func.namespace
    if ns == "prim" or name in FREE_OPS:
        return "free"
    if name in GEMM_ATEN:
        return "gemm"
    if name in VECTOR_CATEGORY:
        return "vector"
    raise UnsupportedOpError(
        f"the model runs {func}, which earlyq-sim cannot cost; add a rule in "
        "earlyq_sim/simulator/cost/oprules.py (or put it on FREE_OPS if it moves no data)")


def _numel(t) -> int:
    return int(t.numel()) if isinstance(t, torch.Tensor) else 0


def vector_row(func, category: str, ins: list, weights: list, outs: list) -> dict:
    """A vector-unit row. ``ins``/``weights``: tensor inputs (activations / parameters)."""
    row = empty_row()
    row.update(aten=str(func), op=category, unit="vector", operand_kind="")
    row["in_elems"] = sum(_numel(t) for t in ins)
    row["w_elems"] = sum(_numel(t) for t in weights)
    row["out_elems"] = sum(_numel(t) for t in outs)
    # Softmax/norm/reduce work on their input; the rest produce one value per output element.
    big_in = max((_numel(t) for t in ins), default=0)
    row["elems"] = big_in if category in ("softmax", "norm", "reduce") else row["out_elems"]
    if row["elems"] <= 0:  # e.g. a reduction of a 0-d tensor: still one element of work
        row["elems"] = max(row["out_elems"], big_in, 1)
    row["passes"] = PASSES.get(category, 1)
    return row


def gemm_row(func, op: str, kind: str, G: int, M: int, N: int, K: int,
             in_elems: int, w_elems: int, out_elems: int) -> dict:
    row = empty_row()
    row.update(aten=str(func), op=op, unit="gemm", operand_kind=kind, G=G, M=M, N=N, K=K,
               macs=G * M * N * K, in_elems=in_elems, w_elems=w_elems, out_elems=out_elems)
    return row


def conv_row(func, args, out, weight_is_param: bool) -> dict:
    """aten.convolution(input, weight, bias, stride, padding, dilation, transposed, out_pad, groups)."""
    x, w = args[0], args[1]
    stride, padding, transposed, groups = args[3], args[4], bool(args[6]), int(args[8])
    B, C_in, sp_in = int(x.shape[0]), int(x.shape[1]), [int(s) for s in x.shape[2:]]
    sp_out = [int(s) for s in out.shape[2:]]
    k = [int(s) for s in w.shape[2:]]
    C_out = int(out.shape[1])
    if transposed:  # scatter form: each input pixel times a (C_in/g) x (C_out/g * RS) weight
        M, N, K = B * math.prod(sp_in), C_out // groups * math.prod(k), C_in // groups
    else:           # im2col form
        M, N, K = B * math.prod(sp_out), C_out // groups, C_in // groups * math.prod(k)
    row = gemm_row(func, "conv", "wa" if weight_is_param else "aa", groups, M, N, K,
                   _numel(x), _numel(w), _numel(out))
    row.update(batch=B, C_in=C_in, C_out=C_out, H_in=sp_in[0] if sp_in else 1,
               W_in=math.prod(sp_in[1:]) if len(sp_in) > 1 else 1, R=k[0] if k else 1,
               S=math.prod(k[1:]) if len(k) > 1 else 1, stride=int(stride[0]) if stride else 1,
               pad=int(padding[0]) if padding else 0, groups=groups)
    return row


def matmul_row(func, a, b, out, a_param: bool, b_param: bool) -> tuple[dict, bool]:
    """mm/addmm/bmm/baddbmm as (row, swapped). With a weight operand the op is 'linear' and the
    weight is the stationary operand (swapped=True when the weight came first). Without one it
    is 'matmul' for now; the tracer later renames attention matmuls to attn_qk / attn_pv."""
    G = int(math.prod(a.shape[:-2])) if a.dim() > 2 else 1
    M, K, N = int(a.shape[-2]), int(a.shape[-1]), int(b.shape[-1])
    if b_param or not a_param:
        op = "linear" if b_param else "matmul"
        return gemm_row(func, op, "wa" if b_param else "aa", G, M, N, K, _numel(a), _numel(b), _numel(out)), False
    return gemm_row(func, "linear", "wa", G, N, M, K, _numel(b), _numel(a), _numel(out)), True


def sdpa_rows(func, q, k, v) -> list[dict]:
    """Fused attention -> [QK^T, softmax, PV] rows. q: [..., Lq, E]; k: [..., Lk, E]; v: [..., Lk, Ev]."""
    G = int(math.prod(q.shape[:-2]))
    Lq, E, Lk, Ev = int(q.shape[-2]), int(q.shape[-1]), int(k.shape[-2]), int(v.shape[-1])
    scores = G * Lq * Lk
    qk = gemm_row(func, "attn_qk", "aa", G, Lq, Lk, E, _numel(q), _numel(k), scores)
    sm = empty_row()
    sm.update(aten=str(func), op="softmax", unit="vector", in_elems=scores, out_elems=scores,
              elems=scores, passes=PASSES["softmax"])
    pv = gemm_row(func, "attn_pv", "pa", G, Lq, Ev, Lk, scores, _numel(v), G * Lq * Ev)
    return [qk, sm, pv]
