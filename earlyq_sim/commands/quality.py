"""CLI commands of the quality lane and the tools around it: sample, calibrate, train, export, trace."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from earlyq_sim.commands import types as T

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.sampling.sampler_registry import sampler_names

QUALITY_MODEL = "fmnist16"


def _schedule(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps):
    from earlyq_sim.api import default_num_steps, make_schedule

    steps = num_steps or default_num_steps(model)
    return make_schedule(schedule_spec, steps, early_bits=early_bits, late_bits=late_bits, boundary=boundary,
                         weight_bits=weight_bits, prob_bits=prob_bits, keep=keep)


def _sampler_options(f):
    for o in reversed([
        click.option("--sampler", type=click.Choice(sampler_names()), default="ddim", show_default=True,
                     help="Sampler (registry: workloads/sampling/sampler_registry.py)."),
        click.option("--eta", type=T.FRACTION, default=0.0, show_default=True, help="DDIM eta (0 = deterministic)."),
        click.option("--range-mode", type=click.Choice(["interval", "shared"]), default="interval", show_default=True,
                     help="Activation ranges fitted per precision interval or one shared set."),
        click.option("--batch-size", type=T.BATCH, default=128, show_default=True, help="Images per sampling batch."),
        click.option("--threads", type=T.THREADS, default=1, show_default=True,
                     help="Torch threads (1 avoids OpenMP spin-waits when the machine is shared)."),
    ]):
        f = o(f)
    return f


def register(cli, schedule_options) -> None:
    """Add this module's commands to the top-level click group."""

    @cli.command()
    @click.option("--model", default=QUALITY_MODEL, show_default=True,
                  help="Built-in model with weights, or a local diffusers UNet folder.")
    @schedule_options
    @click.option("--n", "n_images", type=T.IMAGES, default=64, show_default=True, help="Images to generate.")
    @click.option("--seed", type=T.SEED, default=0, show_default=True, help="Seed of the first image.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
                  help="Folder for samples.png, samples.npy and sample.json.")
    @click.option("--full-precision", is_flag=True, help="Float32 sampling, no quantization.")
    @click.option("--mode", type=click.Choice(["int", "fake"]), default="int", show_default=True,
                  help="Bit-accurate integer emulation or fake quantization (float compute).")
    @click.option("--calibration", type=click.Path(dir_okay=False), default=None,
                  help="Load a calibration file from `earlyq-sim calibrate` instead of calibrating.")
    @click.option("--calib-n", type=T.IMAGES, default=64, show_default=True, help="Calibration images.")
    @click.option("--engine", type=click.Choice(["auto", "i16", "f32", "f64", "int8"]), default="auto",
                  show_default=True,
                  help="Exact integer GEMM kernels (all give the same bits): auto = i16 (int16/int32 AVX2 C "
                       "kernels) where available, else float32/float64 GEMMs proved exact; int8 = torch._int_mm.")
    @_sampler_options
    def sample(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps,
               n_images, seed, out_dir, full_precision, mode, calibration, calib_n, engine, sampler, eta, range_mode,
               batch_size, threads):
        """Generate images under a precision schedule (integer emulation) and write a PNG grid and .npy."""
        from earlyq_sim.models.loader import load_unet
        from earlyq_sim.reports.grids import save_grid_png
        from earlyq_sim.atomic_io import write_json, write_npy
        from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate
        from earlyq_sim.workloads.quality.evaluate import scheduler_config_for
        from earlyq_sim.workloads.sampling.samplers import sample as run_sample

        from earlyq_sim.workloads.quality.evaluate import set_threads

        from earlyq_sim.atomic_io import check_out_dir

        if n_images < 1:
            raise UserError(f"--n: {n_images} must be >= 1")
        check_out_dir(out_dir)  # before minutes of sampling, not after
        if calibration is not None and not Path(calibration).is_file():
            raise UserError(f"--calibration {calibration}: file not found")
        set_threads(threads)
        sch = _schedule(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps)
        unet = load_unet(model)
        cfg = scheduler_config_for(model)
        run_info: dict = {}
        if full_precision:
            t0 = time.perf_counter()
            imgs = run_sample(unet, None, n_images, seed, sampler, sch.num_steps, batch_size, eta, cfg)
        else:
            qm = quantize_and_calibrate(unet, sch, n_calib=calib_n, range_mode=range_mode, sampler=sampler, eta=eta,
                                        batch_size=batch_size, scheduler_config=cfg, load=calibration, engine=engine)
            qm.qstate.engine_calls.clear()
            qm.qstate.saturated.clear()
            t0 = time.perf_counter()
            imgs = run_sample(qm, sch, n_images, seed, sampler, None, batch_size, eta, cfg, mode=mode)
            if mode == "int":       # which exact kernels ran (all give the same bits) and any saturation
                run_info = {"engine": engine, "gemm_engine_calls": dict(qm.qstate.engine_calls),
                            "accumulator_saturated": int(sum(qm.qstate.saturated.values()))}
        secs = time.perf_counter() - t0
        out = Path(out_dir)
        save_grid_png(out / "samples.png", imgs[:256])
        write_npy(out / "samples.npy", imgs)
        write_json(out / "sample.json", {"model": model, "n": n_images, "seed": seed, "sampler": sampler, "eta": eta,
                                         "arithmetic": "float32" if full_precision else mode,
                                         "schedule": None if full_precision else sch.to_dict(),
                                         "range_mode": range_mode, "calibration": calibration,
                                         "sampling_seconds": round(secs, 3), "threads": threads, **run_info})
        engines = ", ".join(f"{k} x{v}" for k, v in run_info.get("gemm_engine_calls", {}).items())
        click.echo(f"wrote {n_images} images ({'fp32' if full_precision else sch.label}, {mode}) to {out}; "
                   f"sampling {secs:.1f} s ({n_images / secs:.1f} images/s, {threads} thread(s))"
                   + (f"; GEMM engines: {engines}" if engines else ""))

    @cli.command()
    @click.option("--model", default=QUALITY_MODEL, show_default=True)
    @schedule_options
    @click.option("--n", "calib_n", type=T.IMAGES, default=64, show_default=True, help="Calibration images.")
    @click.option("--calib-steps", type=T.STEPS, default=20, show_default=True,
                  help="Steps (spread uniformly over the trajectory) whose activations are observed.")
    @click.option("--out", "out_file", type=click.Path(dir_okay=False), required=True,
                  help="Calibration file to write (safetensors).")
    @_sampler_options
    def calibrate(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps,
                  calib_n, calib_steps, out_file, sampler, eta, range_mode, batch_size, threads):
        """Fit activation ranges (per precision interval and shared) and save them."""
        from earlyq_sim.models.loader import load_unet
        from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate
        from earlyq_sim.workloads.quality.evaluate import scheduler_config_for, set_threads

        from earlyq_sim.atomic_io import check_out_file

        check_out_file(out_file)
        set_threads(threads)
        sch = _schedule(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps)
        quantize_and_calibrate(load_unet(model), sch, n_calib=calib_n, calib_steps=calib_steps, range_mode=range_mode,
                               sampler=sampler, eta=eta, batch_size=batch_size,
                               scheduler_config=scheduler_config_for(model), save=out_file)
        click.echo(f"wrote calibration for {model}, schedule {sch.label}, {sch.num_steps} steps to {out_file}")

    passthrough = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}

    @cli.command(context_settings=passthrough)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def train(args):
        """Train the Fashion-MNIST DDPM (resumable); flags as `python -m earlyq_sim.workloads.training.train_unet --help`."""
        from earlyq_sim.workloads.training.train_unet import main as train_main

        sys.exit(train_main(list(args)))

    @cli.command("train-classifier", context_settings=passthrough)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def train_classifier(args):
        """Train the FD feature network; flags as `python -m earlyq_sim.workloads.training.train_classifier --help`."""
        from earlyq_sim.workloads.training.train_classifier import main as clf_main

        sys.exit(clf_main(list(args)))

    @cli.command()
    @click.option("--model", required=True, help="Built-in model name or local diffusers UNet folder.")
    @click.option("--format", "fmt", type=click.Choice(["scalesim", "zigzag"]), required=True)
    @click.option("--arch", default="int8-systolic", show_default=True, help="Arch whose array/buffers configure the export.")
    @schedule_options
    @click.option("--batch", type=T.BATCH, default=1, show_default=True, help="Samples per UNet call.")
    @click.option("--cfg/--no-cfg", default=False, help="Classifier-free guidance (doubles the UNet batch).")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
                  help="Folder for the exported files (one workload per precision stage).")
    def export(model, fmt, arch, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps,
               batch, cfg, out_dir):
        """Export traced conv/GEMM layers: SCALE-Sim topology+config, or ZigZag workloads per stage+mapping+hardware."""
        from earlyq_sim.simulator.cost.arch import load_arch
        from earlyq_sim.simulator.cost.exports.scalesim import export_scalesim
        from earlyq_sim.simulator.cost.exports.zigzag import export_zigzag
        from earlyq_sim.simulator.cost.tracer import trace_model
        from earlyq_sim.atomic_io import check_out_dir

        check_out_dir(out_dir)
        spec = load_arch(arch)  # a bad spec is an error before the trace, not after it
        if fmt == "zigzag":
            from earlyq_sim.simulator.cost.exports.zigzag_hardware import hardware

            hardware(spec)  # a bandwidth ZigZag cannot take (fractional bits/cycle) is refused before the trace
        trace = trace_model(model, batch=batch, cfg=cfg)
        sch = _schedule(model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps)
        if fmt == "scalesim":
            res = export_scalesim(trace, spec, out_dir, schedule=sch)
        else:
            res = export_zigzag(trace, out_dir, schedule=sch, arch=spec)
        files = sorted(p.name for p in Path(out_dir).iterdir() if p.is_file())
        click.echo(f"wrote {fmt} export of {model} ({sch.label}, {type(res).__name__}) to {out_dir}: {', '.join(files)}")

    @cli.command()
    @click.option("--model", required=True, help="Built-in model name or local diffusers UNet folder.")
    @click.option("--batch", type=T.BATCH, default=1, show_default=True, help="Samples per UNet call.")
    @click.option("--cfg/--no-cfg", default=False, help="Classifier-free guidance (doubles the UNet batch).")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                  help="Write the op table (CSV/Parquet) and graph edges (JSON) here.")
    def trace(model, batch, cfg, out_dir):
        """Trace a UNet into its op table; print params and MACs by op kind."""
        from earlyq_sim.atomic_io import check_out_dir, write_json, write_table
        from earlyq_sim.simulator.cost.tracer import trace_model

        if out_dir:
            check_out_dir(out_dir)

        t = trace_model(model, batch=batch, cfg=cfg)
        ops = t.ops
        click.echo(f"{t.model_name}: {t.params:,} params, {len(ops)} ops, batch {batch}{' (cfg x2)' if cfg else ''}")
        by = ops.groupby("op")["macs"].agg(["count", "sum"])
        for op, row in by.iterrows():
            click.echo(f"  {op:12s} {int(row['count']):5d} ops  {row['sum'] / 1e9:10.3f} GMACs")
        click.echo(f"  {'total':12s} {len(ops):5d} ops  {ops['macs'].sum() / 1e9:10.3f} GMACs per UNet forward")
        if out_dir:
            write_table(out_dir, "ops", ops)
            write_json(Path(out_dir) / "graph.json",
                       {"nodes": len(t.graph), "edges": [[int(a), int(b)] for a, b in t.graph.edges()]})
            click.echo(f"wrote ops.csv, ops.parquet and graph.json to {out_dir}")

