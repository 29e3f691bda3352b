"""Command-line interface: thin click commands over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from earlyq_sim.commands import types as T

from earlyq_sim.errors import UserError

DEFAULT_MODEL = "fmnist16"


def schedule_options(f):
    """Schedule flags shared by `run`, `sample` and `calibrate` (one schedule object for both lanes)."""
    opts = [
        click.option("--schedule", "schedule_spec", type=T.SCHEDULE, default=None,
                     help="Interval form, e.g. 'a4@0-0.2,a6@0.2-0.6,a8@0.6-1,w4' (0 = first, noisiest step). "
                          "Overrides --early-bits/--late-bits/--boundary."),
        click.option("--early-bits", type=T.BITS, default=4, show_default=True, help="Activation bits of the early stage."),
        click.option("--late-bits", type=T.BITS, default=8, show_default=True, help="Activation bits of the late stage."),
        click.option("--boundary", type=T.FRACTION, default=0.4, show_default=True,
                     help="Fraction of steps (from the first) run at --early-bits."),
        click.option("--weight-bits", type=T.BITS, default=8, show_default=True, help="Weight bits."),
        click.option("--prob-bits", type=T.BITS, default=None,
                     help="Attention-probability bits (default: the step's activation bits)."),
        click.option("--keep", default=None,
                     help="Layers held at 8 bits (weights and activations) in every step: glob patterns "
                          "joined by '|' or ',', e.g. 'io' (= conv_in|conv_out) or 'conv_in|time_embedding.*'. "
                          "Same as the schedule token k8:PATTERNS."),
        click.option("--steps", "num_steps", type=T.STEPS, default=None,
                     help="Denoising steps (default per model: DDIM 100 CIFAR-10, 200 LDM-4, 50 SD)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _schedule_kw(early_bits, late_bits, boundary, weight_bits, prob_bits, keep=None) -> dict:
    return dict(early_bits=early_bits, late_bits=late_bits, boundary=boundary, weight_bits=weight_bits,
                prob_bits=prob_bits, keep=keep)


@click.group()
@click.version_option(package_name="earlyq-sim")
def cli() -> None:
    """earlyq-sim: speed, energy and image quality of per-step precision schedules."""


@cli.command()
@click.option("--arch", required=True, help="Arch name (see `earlyq-sim archs`) or a path to an arch YAML file.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Built-in model name (see `earlyq-sim models`) or a local diffusers UNet folder.")
@schedule_options
@click.option("--baseline", default="W8A8", show_default=True, help="Uniform precision to compare with.")
@click.option("--ref-arch", default="int8-systolic", show_default=True, help="Reference arch for 'vs' speedup.")
@click.option("--normalise", type=click.Choice(T.normalisation_choices()), default="as-specified", show_default=True,
              help="Resize the arch's PE array against --ref-arch first: as written, to the same peak 8x8 "
                   "throughput, or to the same silicon area (speedup vs the reference is also shown at both).")
@click.option("--batch", type=T.BATCH, default=1, show_default=True, help="Batch size of one UNet call.")
@click.option("--cfg/--no-cfg", default=False, show_default=True,
              help="Classifier-free guidance (doubles the UNet batch).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for summary.json, CSV/Parquet tables, report.pdf and report_pages/ (one PNG per page).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON to stdout instead of the table.")
@click.option("--quality/--no-quality", default=None,
              help="Sample images and measure quality (default: on for models with shipped weights).")
@click.option("--n", "n_images", type=T.IMAGES, default=64, show_default=True, help="Images per quality run.")
@click.option("--seed", type=T.SEED, default=0, show_default=True, help="Seed of the first image.")
@click.option("--calib-n", type=T.IMAGES, default=64, show_default=True, help="Calibration images.")
@click.option("--threads", type=T.THREADS, default=1, show_default=True,
              help="Torch threads for sampling (1 avoids OpenMP spin-waits when the machine is shared).")
def run(arch, model, schedule_spec, early_bits, late_bits, boundary, weight_bits, prob_bits, keep, num_steps,
        baseline, ref_arch, normalise, batch, cfg, out_dir, as_json, quality, n_images, seed, calib_n, threads):
    """Cost a sampling run under a precision schedule on an accelerator; print speedup per stage
    alongside image quality (FD, precision/recall, PSNR/SSIM) where the model has trained weights."""
    from earlyq_sim.atomic_io import atomic_dir, check_out_dir, to_json

    if out_dir:
        check_out_dir(out_dir)  # before the work, not after it
    _check_early(arch, ref_arch, model, normalise)  # before torch and the tracer are imported
    schedule_spec, baseline, choice = _default_schedule(model, schedule_spec, baseline)
    from earlyq_sim.api import cost_run
    from earlyq_sim.reports.summary import format_stage_table
    r = cost_run(model, arch, schedule_spec, baseline=baseline, num_steps=num_steps, batch=batch, cfg=cfg,
                 ref_arch=ref_arch, normalise=normalise, **_schedule_kw(early_bits, late_bits, boundary, weight_bits, prob_bits, keep))
    summary = r.summary
    summary["schedule"]["chosen_by"] = choice
    q, note = _quality(r, model, quality, n_images, seed, calib_n, threads, progress=not as_json)
    if q is not None:
        from earlyq_sim.reports.quality import quality_summary
        from earlyq_sim.workloads.quality.quality_check import judge

        summary["quality"] = quality_summary(q)
        verdict = judge(q.images)
        summary["quality"]["check"] = verdict.as_dict()
        if not verdict.ok:
            click.echo(verdict.warning(), err=True)
    else:
        summary["quality"]["note"] = note
    if out_dir:
        with atomic_dir(out_dir) as tmp:  # the folder holds this run or the previous one, never a mix
            _write_outputs(tmp, r, summary, q, source=str(out_dir))
    if as_json:
        click.echo(to_json(summary))
    else:
        click.echo(format_stage_table(summary))
        if out_dir:
            click.echo(f"wrote summary.json, per_stage/per_step/per_layer tables, report.pdf and report_pages/ "
                       f"to {out_dir}")


SCHEDULE_OPTIONS = ("schedule_spec", "early_bits", "late_bits", "boundary", "weight_bits", "prob_bits", "keep")


def _default_schedule(model, schedule_spec, baseline):
    """With no schedule option given, a built-in model runs the schedule the reproduction found
    to keep quality (and its baseline with the same probabilities and held layers), not the
    optimistic two-stage default. Returns (schedule spec, baseline, how it was chosen)."""
    from click.core import ParameterSource

    from earlyq_sim.workloads.quality.recommended import SOURCE, recommended_schedule

    ctx = click.get_current_context()
    given = [n for n in SCHEDULE_OPTIONS if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]
    rec = recommended_schedule(str(model))
    if given or rec is None:
        return schedule_spec, baseline, "given on the command line" if given else "two-stage defaults"
    if ctx.get_parameter_source("baseline") == ParameterSource.DEFAULT:
        baseline = "W8A8,p16,k8:io|*conv_shortcut"  # compare like with like: same probabilities and held layers
    return rec, baseline, f"the quality-preserving default for {model} ({SOURCE})"


def _check_early(arch, ref_arch, model, normalise="as-specified") -> None:
    """Arch specs, the normalisation and the model name are checked before torch and the tracer
    load (seconds)."""
    from earlyq_sim.models.registry import resolve_model
    from earlyq_sim.simulator.cost.arch import load_arch
    from earlyq_sim.simulator.cost.normalise import normalise as normalise_arch
    from earlyq_sim.simulator.cost.topology import is_topology, read_topology

    normalise_arch(load_arch(arch), load_arch(ref_arch), normalise)
    if is_topology(model):
        read_topology(model)
    elif not Path(str(model)).exists():
        resolve_model(model)  # a built-in name (a folder is read by the tracer)


def _quality(r, model, quality, n_images, seed, calib_n, threads, progress):
    """Run the quality lane when asked, or by default when the model supports it.

    Returns (QualityResult or None, note saying why quality was not computed)."""
    from earlyq_sim.workloads.quality.evaluate import evaluate_quality, quality_supported

    if quality is False:
        return None, "skipped (--no-quality)"
    reason = quality_supported(model)
    if reason:
        if quality:
            raise UserError(f"--quality: {reason}")
        return None, reason
    if r.cfg or r.batch != 1:
        raise UserError("--quality: --cfg and --batch apply to the cost lane of conditional models only")
    return evaluate_quality(model, r.schedule, r.baseline, n=n_images, seed=seed, calib_n=calib_n,
                            progress=progress, threads=threads), ""


def _write_outputs(out: Path, r, summary: dict, q=None, source: str = "") -> None:
    """summary.json, the tables, sample grids and the report (PDF + one PNG per page) of a run."""
    from earlyq_sim.atomic_io import write_csv, write_json, write_npy, write_table
    from earlyq_sim.reports.grids import save_grid_png
    from earlyq_sim.reports.inputs import RunData
    from earlyq_sim.reports.pdf import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    write_csv(out / "per_stage.csv", r.run.per_stage)
    write_table(out, "per_step", r.run.per_step)
    write_table(out, "per_layer", r.per_layer)
    data = RunData(summary, r.run.per_stage, r.run.per_step, r.per_layer, source=source or str(out))
    if q is not None:
        data.quality, data.images = q.table(), q.images
        write_csv(out / "quality.csv", data.quality)
        for label, imgs in q.images.items():
            stem = label.replace(" ", "_")
            save_grid_png(out / f"samples_{stem}.png", imgs[:64])
            write_npy(out / f"samples_{stem}.npy", imgs)
    write_report(out / "report.pdf", data, png_dir=out / "report_pages")


@cli.command()
def archs():
    """List the built-in accelerator specs."""
    from earlyq_sim.simulator.cost.arch import list_archs, load_arch

    for name in list_archs():
        spec = load_arch(name)
        click.echo(f"{name:16s} {getattr(spec, 'description', '')}")


@cli.command()
def models():
    """List the built-in models: class, parameters, GMACs per forward (batch 1), default steps."""
    from earlyq_sim.models.registry import MODELS, model_line

    for info in MODELS.values():
        click.echo(model_line(info))


def _add_commands() -> None:
    from earlyq_sim.commands import quality as cli_quality
    from earlyq_sim.commands.search import search
    from earlyq_sim.commands.pareto import pareto_command
    from earlyq_sim.commands.report import report_command
    from earlyq_sim.commands.sweep import sweep_command

    cli.add_command(sweep_command)
    cli.add_command(pareto_command)
    cli.add_command(report_command)
    cli.add_command(search)
    cli_quality.register(cli, schedule_options)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, no traceback."""
    from earlyq_sim.provenance import set_command_line

    set_command_line(["earlyq-sim", *(sys.argv[1:] if argv is None else argv)])
    try:
        cli.main(args=argv, standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:  # bad options: one line, like every other user error
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
