"""`earlyq-sim report DIR`: the PDF and page PNGs of a run and of a sweep, text inside every page,
one page size, and one-line errors for folders that are not a run or a sweep."""

import json
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from earlyq_sim.errors import UserError
from earlyq_sim.reports.inputs import load_report_input
from earlyq_sim.reports.page import PAGE_SIZE_IN, close_pages
from earlyq_sim.reports.pdf import RC, build_pages


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real `run --out` folder: fmnist16, 4 steps, quality on 4 images (samples page included)."""
    from earlyq_sim.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    with pytest.raises(SystemExit) as e:
        main(["run", "--arch", "stripes", "--steps", "4", "--schedule", "a4@0-0.5,a8@0.5-1", "--n", "4",
              "--calib-n", "4", "--out", str(out), "--json"])
        raise SystemExit(0)
    assert e.value.code == 0
    return out


def sweep_table(quality: bool, n_sched: int = 6) -> pd.DataFrame:
    """A synthetic sweep results table (the columns `sweep` writes), two archs x an override."""
    rows = []
    for arch, area in (("stripes", 37.5), ("int8-systolic", 35.4)):
        for rows_ in (16, 32):
            for i in range(n_sched):
                b = 0.1 * (i + 1)
                sp = 1 + (0.5 if arch == "stripes" else 0.05) * b * (rows_ / 32)
                r = {"point_key": f"{arch}{rows_}{i}", "model": "ddpm-cifar10", "arch": arch,
                     "normalise": "as-specified", "array.rows": rows_, "area_mm2": area * rows_ / 32,
                     "schedule": f"w8,a4@0-{b:g},a8@{b:g}-1", "baseline": "W8A8", "num_steps": 100,
                     "latency_ms": 1000 / sp, "energy_mj": 2000 / sp ** 0.5, "speedup": sp,
                     "speedup_vs_ref": sp * 0.98, "energy_saving": sp ** 0.5}
                if quality:
                    r.update(fd=10 + 30 * b ** 2, psnr_db_mean=40 - 15 * b, baseline_fd=10.0, quality_ok=b < 0.4)
                rows.append(r)
    return pd.DataFrame(rows)


@pytest.fixture(params=[False, True], ids=["cost-only", "with-quality"])
def sweep_dir(request, tmp_path):
    df = sweep_table(request.param)
    if request.param:
        from earlyq_sim.workloads.sweeps.pareto import pareto_front

        df["pareto"] = pareto_front(df, ("speedup",), ("fd",))
    df.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "synthetic", "points": len(df), "computed": len(df),
                                                         "seconds": 1.0, "source": "synthetic.yaml"}))
    return tmp_path


def overflowing_text(fig) -> list[str]:
    """Text past the page edge (1 px tolerance): every page-level text (headers, tables, notes)
    and each axes' drawn extent (title, axis labels, the tick labels actually drawn, legend,
    annotations)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    page = fig.bbox
    boxes = [(t.get_text()[:60], t.get_window_extent(r)) for t in fig.texts
             if t.get_visible() and t.get_text().strip()]
    for ax in fig.axes:
        if ax.get_visible():
            boxes.append((f"axes {ax.get_title() or ax.get_ylabel()!r}", ax.get_tightbbox(r)))
            boxes += [(t.get_text()[:60], t.get_window_extent(r)) for t in ax.texts if t.get_text().strip()]
    return [f"{name!r} at {bb}" for name, bb in boxes
            if bb.x0 < page.x0 - 1 or bb.y0 < page.y0 - 1 or bb.x1 > page.x1 + 1 or bb.y1 > page.y1 + 1]


def check_pages(folder, expect: set):
    with matplotlib.rc_context(RC):
        pages = build_pages(load_report_input(folder))
        try:
            names = [p.name for p in pages]
            assert expect <= set(names), names
            for p in pages:
                assert tuple(p.fig.get_size_inches()) == PAGE_SIZE_IN, p.name
                assert overflowing_text(p.fig) == [], p.name
        finally:
            close_pages(pages)
    return names


def test_run_report_pages_fit_and_share_one_size(run_dir):
    check_pages(run_dir, {"title", "stages", "steps", "layers", "notes", "quality", "samples"})


def test_sweep_report_pages_fit_and_share_one_size(sweep_dir):
    quality = "fd" in pd.read_csv(sweep_dir / "results.csv").columns
    names = check_pages(sweep_dir, {"title", "best", "results"})
    pareto = [n for n in names if n.startswith("pareto_")]
    assert pareto == (["pareto_fd_speedup", "pareto_fd_energy_mj"] if quality
                      else ["pareto_energy_mj_speedup_vs_ref_area_mm2"])
    assert len([n for n in names if n.startswith("front_")]) == len(pareto)


def test_overflow_check_catches_text_off_the_page():
    from earlyq_sim.reports.page import new_page

    p = new_page("x", "t")
    p.fig.text(0.9, 0.5, "this line runs well past the right edge of the page " * 3)
    try:
        assert overflowing_text(p.fig)
    finally:
        close_pages([p])


def pdf_pages(path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def test_report_command_writes_pdf_and_one_png_per_page(tmp_path, run_cli):
    sweep_dir = tmp_path
    sweep_table(True, n_sched=3).to_parquet(sweep_dir / "results.parquet")
    code, out, err = run_cli(["report", str(sweep_dir)])
    assert code == 0, err
    pngs = sorted((sweep_dir / "report_pages").glob("*.png"))
    assert pngs and pdf_pages(sweep_dir / "report.pdf") == len(pngs)
    assert pngs[0].name == "01_title.png" and "sweep report" in out
    sizes = {matplotlib.image.imread(p).shape for p in pngs}
    assert len(sizes) == 1  # every page the same size


def test_run_report_command_matches_what_run_wrote(run_dir, run_cli, tmp_path):
    code, out, err = run_cli(["report", str(run_dir), "--out", str(tmp_path / "again.pdf"), "--no-png"])
    assert code == 0, err
    assert pdf_pages(tmp_path / "again.pdf") == pdf_pages(run_dir / "report.pdf") == 7
    assert not (tmp_path / "again_pages").exists()
    assert len(list((run_dir / "report_pages").glob("*.png"))) == 7  # `run --out` wrote the same pages


def corrupt(folder, what):
    folder.mkdir(exist_ok=True)
    if what == "missing":
        return folder / "nope"
    if what == "file":
        (folder / "f.txt").write_text("x")
        return folder / "f.txt"
    if what == "summary-json":
        (folder / "summary.json").write_text("{not json")
    if what == "summary-field":
        (folder / "summary.json").write_text(json.dumps({"model": {"name": "m"}}))
    if what == "summary-type":
        (folder / "summary.json").write_text("[1, 2]")
    if what == "results-empty":
        sweep_table(False).iloc[:0].to_csv(folder / "results.csv", index=False)
    if what == "results-column":
        sweep_table(False).drop(columns=["speedup"]).to_csv(folder / "results.csv", index=False)
    if what == "results-parquet":
        (folder / "results.parquet").write_bytes(b"PAR1 garbage")
    return folder


@pytest.mark.parametrize("what,word", [
    ("missing", "no such folder"), ("file", "not a folder"), ("empty", "neither summary.json"),
    ("summary-json", "cannot be read as JSON"), ("summary-field", "field 'model.params'"),
    ("summary-type", "allowed a JSON object"), ("results-empty", "no rows"),
    ("results-column", "column 'speedup'"), ("results-parquet", "cannot be read as a table"),
])
def test_bad_folder_is_one_line_exit_2(what, word, tmp_path, run_cli):
    folder = corrupt(tmp_path / "d", what)
    with pytest.raises(UserError):
        load_report_input(folder)
    code, out, err = run_cli(["report", str(folder)])
    assert code == 2 and word in err and err.count("\n") == 1 and "Traceback" not in err


def test_run_folder_missing_a_table_names_it(run_dir, tmp_path, run_cli):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)
    for f in d.glob("per_layer.*"):
        f.unlink()
    code, _, err = run_cli(["report", str(d)])
    assert code == 2 and "per_layer.parquet or per_layer.csv" in err


def test_samples_page_shows_every_run(run_dir):
    d = load_report_input(run_dir)
    assert set(d.images) == {"full precision", "baseline", "schedule"}
    assert all(v.dtype == np.uint8 and v.shape[0] == 4 for v in d.images.values())
