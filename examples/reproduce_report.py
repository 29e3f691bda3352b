"""Tables and plots from the CSVs that examples/reproduce_paper.py writes (its `report` part).

Writes into the results folder: table.md, probe.md, search.md (markdown fragments that
docs/reproduction.md quotes), fd_vs_a4_fraction.png, probe_fd_vs_interval.png, search_speedup.csv.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from earlyq_sim.workloads.quality.experiments import speedup_table, summarize  # noqa: E402

ARCHS = ("stripes", "bitfusion", "loom", "int8-systolic")
COST_MODELS = ("fmnist16", "ddpm-cifar10", "sd-v1.5")


def _pm(m, s, spec=".2f") -> str:
    return f"{m:{spec}}" if pd.isna(s) else f"{m:{spec}} ± {s:{spec}}"


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_table(summ: pd.DataFrame, n: int, steps: int) -> str:
    lines = [f"{n} images per seed, DDIM {steps} steps; mean ± sample std over seeds "
             "(FD lower is better; PSNR/SSIM vs full precision, same seeds).", "",
             "| configuration | schedule | seeds | FD | precision | recall | PSNR dB | SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in summ.iterrows():
        lines.append(f"| {_esc(r['label'])} | `{_esc(r['spec'])}` | {r['seeds']} | {_pm(r.fd_mean, r.fd_std)} | "
                     f"{_pm(r.precision_mean, r.precision_std, '.3f')} | {_pm(r.recall_mean, r.recall_std, '.3f')} | "
                     f"{_pm(r.psnr_db_mean_mean, r.psnr_db_mean_std)} | {_pm(r.ssim_mean_mean, r.ssim_mean_std, '.3f')} |")
    return "\n".join(lines) + "\n"


def _save(fig, ax, xlabel: str, title: str, path: Path) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("FD vs Fashion-MNIST test set (lower is better)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _a4_fraction(spec: str) -> float | None:
    if spec in ("W8A8",) or spec.startswith("W8A8,"):
        return 0.0
    if spec.startswith("W8A4"):
        return 1.0
    m = re.match(r"a4@0-([0-9.]+),a8@", spec)
    if spec.startswith("W8A8") or spec.startswith("W8A4"):
        return 0.0 if spec.startswith("W8A8") else 1.0
    return float(m.group(1)) if m else None


def table_report(out: Path) -> None:
    df = pd.read_csv(out / "table.csv")
    summ = summarize(df)
    (out / "table.md").write_text(_md_table(summ, int(df.n.iloc[0]), int(df.steps.iloc[0])))
    summ.to_csv(out / "table_summary.csv", index=False)
    if (out / "table_p16.csv").is_file():       # the same schedules with 16-bit probabilities
        summ = pd.concat([summ, summarize(pd.read_csv(out / "table_p16.csv"))], ignore_index=True)
        summ = summ.drop_duplicates("spec")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    summ["keep"] = summ["spec"].str.extract(r"k8:(.*)$")[0].fillna("none")
    p16 = summ["spec"].str.contains(",p16")
    summ.loc[p16, "keep"] = summ.loc[p16, "keep"] + ", 16-bit attention probabilities"
    summ["frac"] = summ["spec"].map(_a4_fraction)
    for keep, g in summ.dropna(subset=["frac"]).groupby("keep"):
        g = g.sort_values("frac")
        ax.errorbar(g.frac * 100, g.fd_mean, yerr=g.fd_std, marker="o", capsize=3,
                    label="all layers quantized, probabilities at activation bits" if keep == "none"
                    else f"held at 8 bits: {keep}")
    fp = summ[summ.spec == "fp32"]
    if len(fp):
        ax.axhline(float(fp.fd_mean.iloc[0]), color="k", ls=":", label="full precision")
    _save(fig, ax, "% of steps (from the first, noisiest) with 4-bit activations, 8-bit after",
          "fmnist16, W8, integer emulation", out / "fd_vs_a4_fraction.png")


def probe_report(out: Path) -> None:
    df = pd.read_csv(out / "probe.csv")
    held = df["spec"].str.extract(r"k8:(.*)$")[0]
    quant = df["label"].str.startswith("A") & held.notna()
    df.loc[quant, "label"] = df.loc[quant, "label"] + " (held at 8 bits: " + held[quant] + ")"
    df["interval"] = df["spec"].str.extract(r"@([0-9.]+-[0-9.]+)")[0]
    a4 = df["label"].str.startswith("A")
    df.loc[a4, "interval"] = df.loc[a4, "spec"].str.extract(r"a[0-9]+@([0-9.]+-[0-9.]+)")[0].where(
        ~df.loc[a4, "spec"].str.startswith("a8@0-"), df.loc[a4, "spec"].str.extract(r",a(?!8)[0-9]+@([0-9.]+-[0-9.]+)")[0])
    summ = df.groupby(["label", "interval"], dropna=False, sort=False)["fd"].agg(["mean", "std", "size"]).reset_index()
    summ.to_csv(out / "probe_summary.csv", index=False)
    fig, ax = plt.subplots(figsize=(7, 4))
    ref = {}
    for lab in ("full precision", "W8A8"):
        g = summ[summ.label == lab]
        if len(g):
            ref[lab] = float(g["mean"].iloc[0])
    for lab, g in summ.dropna(subset=["interval"]).groupby("label", sort=False):
        g = g.assign(start=g.interval.str.split("-").str[0].astype(float)).sort_values("start")
        ax.errorbar(g.start, g["mean"], yerr=g["std"], marker="o", capsize=3, label=lab)
    for lab, v in ref.items():
        ax.axhline(v, ls=":", color="k" if lab == "full precision" else "gray", label=lab)
    _save(fig, ax, "start of the perturbed interval (fraction of steps; 0 = first, noisiest)",
          "Robustness probe: perturbation on one interval, clean elsewhere", out / "probe_fd_vs_interval.png")
    ivs = sorted(summ.interval.dropna().unique(), key=lambda s: float(s.split("-")[0]))
    lines = ["| probe | " + " | ".join(ivs) + " |"]
    lines.append("|---" * (len(ivs) + 1) + "|")
    for lab, g in summ.dropna(subset=["interval"]).groupby("label", sort=False):
        cells = {r.interval: _pm(r["mean"], r["std"], ".1f") for _, r in g.iterrows()}
        lines.append(f"| {_esc(lab)} | " + " | ".join(cells.get(i, "") for i in ivs) + " |")
    refs = ", ".join(f"{k} FD {v:.2f}" for k, v in ref.items())
    (out / "probe.md").write_text(f"FD (mean ± std over seeds) with the perturbation on one interval only; {refs}.\n\n"
                                  + "\n".join(lines) + "\n")


def search_report(out: Path, src: Path | None = None) -> None:
    src = src or out / "search_result.json"
    suffix = src.stem[len("search_result"):]             # "" or "_NAME"
    res = json.loads(src.read_text())
    base = ",".join(t for t in res["baseline"].split(",") if not t.startswith("k8:"))   # uniform part
    sp = speedup_table(res["spec"], base, COST_MODELS, ARCHS)
    sp.to_csv(out / f"search_speedup{suffix}.csv", index=False)
    lines = [f"Baseline `{res['baseline']}` FD {res['baseline_fd']:.2f}; threshold +{res['threshold']:g} FD; "
             f"grid {res['grid']:g}; {res['n']} images x seeds {res['seeds']}, DDIM {res['steps']} steps. "
             f"Result `{res['spec']}`, FD {res['final_fd']:.2f}.", "",
             "| stage | start | end | activation bits |", "|---|---|---|---|"]
    lines += [f"| {i} | {a:g} | {b:g} | {bits} |" for i, (a, b, bits) in enumerate(res["stages"])]
    lines += ["", "Trials (interval index, bits tried, mean FD, accepted):", "",
              "| interval | bits | FD | accepted |", "|---|---|---|---|"]
    lines += [f"| {t['interval']} | {t['bits']} | {t['fd']:.2f} | {'yes' if t['accepted'] else 'no'} |"
              for t in res["trials"]]
    lines += ["", f"Speedup the found schedule buys (whole sampling run, latency vs uniform {base} on the "
              "same arch; cost lane, each model at its default step count):", "",
              "| model | " + " | ".join(ARCHS) + " |", "|---" * (len(ARCHS) + 1) + "|"]
    for model, g in sp.groupby("model", sort=False):
        d = dict(zip(g.arch, g.speedup))
        lines.append(f"| {model} | " + " | ".join(f"{d[a]:.3f}x" for a in ARCHS) + " |")
    (out / f"search{suffix}.md").write_text("\n".join(lines) + "\n")


def sensitivity_report(out: Path) -> None:
    df = pd.read_csv(out / "sensitivity.csv")
    summ = summarize(df)
    (out / "sensitivity.md").write_text(_md_table(summ, int(df.n.iloc[0]), int(df.steps.iloc[0])))


def generic_report(out: Path, csv: Path) -> None:
    """Any other cell file (custom --name lists): one markdown table of means and spreads."""
    df = pd.read_csv(csv)
    if "label" not in df.columns:           # not a cell file (e.g. a speedup table)
        return
    (out / (csv.stem + ".md")).write_text(_md_table(summarize(df), int(df.n.iloc[0]), int(df.steps.iloc[0])))


def write_report(out: Path) -> None:
    for csv in sorted(out.glob("*.csv")):
        if csv.stem not in ("table", "probe", "sensitivity") and "_summary" not in csv.stem \
                and (not csv.stem.startswith("search") or csv.stem == "search_check"):
            generic_report(out, csv)
            print(f"report from {csv}")
    for name, fn in (("table.csv", table_report), ("sensitivity.csv", sensitivity_report), ("probe.csv", probe_report)):
        if (out / name).is_file():
            fn(out)
            print(f"report from {out / name}")
    for res in sorted(out.glob("search_result*.json")):
        search_report(out, res)
        print(f"report from {res}")
