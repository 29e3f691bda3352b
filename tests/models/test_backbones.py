"""Modern backbones (issue 16): SDXL, DiT-XL/2, PixArt-alpha, SD3 Medium and FLUX.1 schnell traced
on fake tensors with conditioning of the published shapes, checked against published sizes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import networkx as nx
import pytest

from earlyq_sim.api import cost_run, default_num_steps, make_schedule
from earlyq_sim.errors import UserError
from earlyq_sim.models.registry import MODELS
from earlyq_sim.simulator.cost.optable import validate_table
from earlyq_sim.simulator.cost.tracer import trace_model

NEW = ("sdxl", "dit-xl-2-256", "dit-xl-2-512", "pixart-alpha-512", "pixart-alpha-1024", "sd3-medium",
       "flux1-schnell")
#: the rounded figure each paper or model card states, and the half-unit its rounding allows
ROUNDED = {"sdxl": (2.6e9, 0.05e9), "dit-xl-2-256": (675e6, 0.5e6), "dit-xl-2-512": (675e6, 0.5e6),
           "pixart-alpha-512": (0.6e9, 0.05e9), "pixart-alpha-1024": (0.6e9, 0.05e9),
           "sd3-medium": (2e9, 0.5e9), "flux1-schnell": (12e9, 0.5e9)}

pytestmark = pytest.mark.usefixtures("one_thread")
_TRACES: dict = {}


def traced(name):
    """One fake-tensor trace per model per test session (FLUX takes about 20 s here)."""
    if name not in _TRACES:
        _TRACES[name] = trace_model(name, cache=False)
    return _TRACES[name]


@pytest.mark.parametrize("name", NEW)
def test_params_match_published_and_every_op_is_costed(name):
    info, tr = MODELS[name], traced(name)
    validate_table(tr.ops)  # every aten op had a rule (an unknown op raises while tracing)
    assert tr.params == pytest.approx(info.params_published, rel=0.01)
    centre, half = ROUNDED[name]
    assert abs(tr.params - centre) <= half, (tr.params, centre)
    assert tr.params == info.traced_params and tr.macs() / 1e9 == pytest.approx(info.traced_macs_g, rel=1e-3)
    g = tr.graph
    assert nx.is_directed_acyclic_graph(g) and g.graph["outputs"]
    live = set(g.graph["outputs"]).union(*(nx.ancestors(g, o) for o in g.graph["outputs"]))
    assert live == set(g.nodes)  # every costed op feeds the output
    assert tr.ops.name.is_unique and info.params_source and info.description


@pytest.mark.parametrize("name,gmacs", [("dit-xl-2-256", 118.6), ("dit-xl-2-512", 524.6)])
def test_dit_macs_match_the_paper(name, gmacs):
    tr = traced(name)
    assert tr.macs() / 1e9 == pytest.approx(gmacs, rel=0.02)
    assert tr.macs() / 1e9 == pytest.approx(MODELS[name].macs_with_attention_g, rel=0.001)  # tighter than asked
    tokens = (int(name[-3:]) // 16) ** 2
    qk = tr.ops[tr.ops.op == "attn_qk"]
    assert len(qk) == 28 and set(zip(qk.G, qk.M, qk.N, qk.K)) == {(16, tokens, tokens, 72)}
    mod = tr.ops[tr.ops.module.str.endswith("norm1.linear")]  # adaLN-Zero: 6 x 1152 from one vector
    assert len(mod) == 28 and set(zip(mod.M, mod.N, mod.K)) == {(1, 6 * 1152, 1152)}
    # Tied for the count (one module, named after block 0), but run by each block and by the final
    # layer, as diffusers does: 29 embedding lookups.
    emb = tr.ops[tr.ops.module == "transformer_blocks.0.norm1.emb.class_embedder.embedding_table"]
    assert len(emb) == 29


def test_sdxl_added_conditioning():
    tr = traced("sdxl")
    shapes = tr.input_shapes
    assert shapes["added_cond_kwargs.text_embeds"] == (1, 1280) and shapes["added_cond_kwargs.time_ids"] == (1, 6)
    assert shapes["encoder_hidden_states"] == (1, 77, 2048) and shapes["sample"] == (1, 4, 128, 128)
    assert tr.graph.graph["inputs"]["added_cond_kwargs.text_embeds"]
    add = tr.ops[tr.ops.module == "add_embedding.linear_1"].iloc[0]
    assert (add.M, add.N, add.K) == (1, 1280, 2816)  # pooled 1280 + 6 ids x 256
    cross = tr.ops[tr.ops.module.str.endswith("attn2") & (tr.ops.op == "attn_qk")]
    assert set(cross.N) == {77} and len(cross) == 2 * 2 + 2 * 10 + 10 + 3 * 10 + 3 * 2  # 70 transformer blocks


def test_pixart_size_conditioning_only_at_1024():
    small, big = traced("pixart-alpha-512"), traced("pixart-alpha-1024")
    assert "added_cond_kwargs.resolution" in big.input_shapes
    assert "added_cond_kwargs.resolution" not in small.input_shapes
    assert big.params - small.params == 493_056  # resolution + aspect-ratio embedders
    cross = big.ops[big.ops.module.str.endswith("attn2") & (big.ops.op == "attn_qk")]
    assert len(cross) == 28 and set(zip(cross.M, cross.N)) == {(4096, 120)}
    proj = big.ops[big.ops.module == "caption_projection.linear_1"].iloc[0]
    assert (proj.M, proj.K) == (120, 4096)


def test_sd3_joint_attention_over_image_and_text_tokens():
    tr = traced("sd3-medium")
    qk = tr.ops[tr.ops.op == "attn_qk"]
    assert len(qk) == 24 and set(zip(qk.G, qk.M, qk.N, qk.K)) == {(24, 4096 + 333, 4096 + 333, 64)}
    assert tr.input_shapes["pooled_projections"] == (1, 2048)


def test_flux_rope_double_and_single_stream_blocks():
    tr = traced("flux1-schnell")
    qk = tr.ops[tr.ops.op == "attn_qk"]
    assert len(qk) == 19 + 38 and set(zip(qk.G, qk.M, qk.K)) == {(24, 4096 + 256, 128)}
    assert tr.input_shapes["hidden_states"] == (1, 4096, 64) and tr.input_shapes["img_ids"] == (4096, 3)
    # RoPE: rotate-half (neg + stack) and two products per q and k, before the fused attention
    rope = tr.ops[(tr.ops.module == "transformer_blocks.0.attn") & (tr.ops.aten == "aten.neg.default")]
    assert len(rope) == 2 and (rope.elems == 24 * 4352 * 64).all()
    assert tr.graph.graph["inputs"]["img_ids"]  # position ids feed the RoPE table


def test_cfg_doubles_guided_models_and_is_refused_for_schnell():
    one = traced("dit-xl-2-256")
    two = trace_model("dit-xl-2-256", cfg=True, cache=False)
    assert two.macs() == pytest.approx(2 * one.macs(), rel=1e-4) and two.input_shapes["class_labels"] == (2,)
    with pytest.raises(UserError, match="guidance-distilled") as e:
        trace_model("flux1-schnell", cfg=True, cache=False)
    assert "\n" not in str(e.value)


def test_default_steps_per_model():
    assert {n: default_num_steps(n) for n in NEW} == {
        "sdxl": 50, "dit-xl-2-256": 50, "dit-xl-2-512": 50, "pixart-alpha-512": 20, "pixart-alpha-1024": 20,
        "sd3-medium": 28, "flux1-schnell": 4}


def test_interval_rounding_to_no_step_is_an_error_naming_it():
    with pytest.raises(UserError, match=r"interval a4@0-0\.1 holds no step of 4") as e:
        make_schedule("a4@0-0.1,a8@0.1-1", 4)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"a6@0\.4-0\.6 holds no step of 4"):  # five intervals on 4 steps
        make_schedule("a4@0-0.2,a5@0.2-0.4,a6@0.4-0.6,a7@0.6-0.8,a8@0.8-1", 4)
    ok = make_schedule("a4@0-0.1,a8@0.1-1", 10)
    assert [st.steps for st in ok.stages()] == [1, 9]
    assert [st.steps for st in make_schedule(None, 4).stages()] == [2, 2]  # default two-stage at 4 steps


def test_cost_run_on_a_transformer(isolated_cache):
    r = cost_run("dit-xl-2-256", "stripes", "a4@0-0.4,a8@0.4-1")
    st = r.run.per_stage
    assert list(st["steps"]) == [20, 30] and r.macs_per_step == traced("dit-xl-2-256").macs()
    assert st["speedup"].iloc[0] > 1.0 and st["speedup"].iloc[1] == pytest.approx(1.0)


def test_cli_runs_and_lists(run_cli, isolated_cache):
    code, out, err = run_cli(["run", "--model", "dit-xl-2-256", "--arch", "stripes"])
    assert code == 0, err
    assert "dit-xl-2-256" in out and "50 steps" in out
    code, out, err = run_cli(["models"])
    assert code == 0 and all(n in out for n in NEW)
    line = next(ln for ln in out.splitlines() if ln.startswith("dit-xl-2-256"))
    assert "674.8M params" in line and "118.67 GMACs/fwd" in line
    code, _, err = run_cli(["run", "--model", "flux1-schnell", "--arch", "stripes", "--schedule", "a4@0-0.1,a8@0.1-1"])
    assert code == 2 and "a4@0-0.1 holds no step of 4" in err and err.count("\n") == 1
