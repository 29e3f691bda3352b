"""`earlyq-sim search`: find a per-interval precision schedule within an FD budget (Algorithm 1)."""

from __future__ import annotations

import json

import click

from earlyq_sim.commands import types as T

from earlyq_sim.errors import UserError

@click.command()
@click.option("--threshold", type=T.FD_THRESHOLD, required=True, help="Allowed FD above the uniform baseline (FD units).")
@click.option("--model", default="fmnist16", show_default=True, help="Model with trained weights (quality).")
@click.option("--grid", type=T.GRID, default=0.05, show_default=True, help="Interval width (fraction of steps).")
@click.option("--min-bits", type=T.BITS, default=4, show_default=True, help="Lowest activation bits tried.")
@click.option("--late-bits", type=T.BITS, default=8, show_default=True, help="Baseline activation bits.")
@click.option("--weight-bits", type=T.BITS, default=8, show_default=True, help="Weight bits.")
@click.option("--keep", default="", help="Layers held at 8 bits, e.g. 'io|*conv_shortcut'.")
@click.option("--prob-bits", type=T.BITS, default=None,
              help="Attention-probability bits in every candidate and the baseline (default: the "
                   "activation bits; 16 keeps the softmax output at 16 bits, as Q-Diffusion does).")
@click.option("--steps", "num_steps", type=T.STEPS, default=20, show_default=True, help="DDIM steps.")
@click.option("--n", "n_images", type=T.IMAGES, default=256, show_default=True, help="Images per seed.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds; FD is their mean.")
@click.option("--no-stop", is_flag=True, help="Go on after an interval that cannot be lowered.")
@click.option("--monotone", is_flag=True,
              help="Start each interval at the previous interval's bits (fewer evaluations).")
@click.option("--arch", "archs", multiple=True, help="Archs to price the result on (default: every built-in arch, `earlyq-sim archs`).")
@click.option("--cost-model", "cost_models", multiple=True,
              help="Models whose traces price the result (default: --model).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for search.csv (every evaluated cell; reruns resume), result.json, speedup.csv.")
@click.option("--calib-n", type=T.IMAGES, default=64, show_default=True, help="Calibration images per schedule.")
@click.option("--threads", type=T.THREADS, default=1, show_default=True, help="Torch threads.")
def search(threshold, model, grid, min_bits, late_bits, weight_bits, keep, prob_bits, num_steps, n_images, seeds,
           no_stop, monotone, archs, cost_models, out_dir, calib_n, threads):
    """Lower activation bits interval by interval from the first step while FD stays within
    --threshold of the baseline; print the bits-per-interval table and its speedup per arch."""
    from earlyq_sim.atomic_io import write_csv, write_json
    from earlyq_sim.simulator.cost.arch import list_archs
    from earlyq_sim.workloads.quality.experiments import QualityBench, search_on_bench, speedup_table
    from earlyq_sim.workloads.quality.evaluate import set_threads
    from earlyq_sim.schedule import check_bits

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: {seeds!r} is not a comma-separated list of integers") from None
    ptok = ""
    if prob_bits is not None:
        ptok = f"p{check_bits(prob_bits, '--prob-bits')}"
    from earlyq_sim.atomic_io import check_out_dir

    out = check_out_dir(out_dir)  # before minutes of sampling, not after
    set_threads(threads)
    bench = QualityBench(out / "search.csv", model=model, n=n_images, steps=num_steps, calib_n=calib_n,
                         progress=False)
    res, base = search_on_bench(
        bench, seed_list, threshold, grid=grid, min_bits=min_bits, max_bits=late_bits, weight_bits=weight_bits,
        keep=keep, stop_at_fail=not no_stop, monotone=monotone, tokens=ptok,
        log=lambda t: click.echo(f"  interval {t.interval} ({t.interval * grid:g}-{(t.interval + 1) * grid:g}) "
                                 f"a{t.bits}: FD {t.fd:.2f} {'accept' if t.accepted else 'reject'}"))
    sp = speedup_table(res.spec, f"W{weight_bits}A{late_bits}{ptok.upper()}", cost_models or (model,),
                       archs or tuple(list_archs()))
    write_csv(out / "speedup.csv", sp)
    write_json(out / "result.json", {
        "model": model, "baseline": base, "baseline_fd": res.baseline_fd, "threshold": threshold, "grid": grid,
        "n_images": n_images, "seeds": seed_list, "steps": num_steps, "bits": list(res.bits), "spec": res.spec,
        "stages": res.stages(), "final_fd": res.final_fd, "trials": [t.__dict__ for t in res.trials],
        "speedup": json.loads(sp.to_json(orient="records"))})
    click.echo(f"schedule found: {res.spec}  (FD {res.final_fd:.2f}, baseline {base} FD {res.baseline_fd:.2f}, "
               f"threshold +{threshold:g}; FD mean over seeds {seed_list}, {n_images} images each)")
    click.echo("stage  start  end   act bits")
    for i, (a, b, bits) in enumerate(res.stages()):
        click.echo(f"{i:5d}  {a:5g}  {b:4g}  {bits:8d}")
    click.echo("speedup of the whole sampling run vs the uniform baseline on the same arch (latency ratio):")
    for _, r in sp.iterrows():
        click.echo(f"  {r['model']:14s} {r['arch']:14s} {r['speedup']:.3f}x  (compute-only {r['compute_speedup']:.3f}x, "
                   f"energy saving {r['energy_saving']:.3f}x, {r['steps']} steps)")
    click.echo(f"wrote search.csv, result.json and speedup.csv to {out}")
