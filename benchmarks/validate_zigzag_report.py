"""Markdown report of ``validate_zigzag.py``: per-layer latency and energy, ours vs ZigZag."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _zz_split(r: dict) -> dict:
    """ZigZag energy by component (pJ): MAC, on-chip SRAM (our three buffers), registers, DRAM."""
    lv = r["levels"]
    part = lambda prefix: sum(v for k, v in lv.items() if k.split(":")[0] in prefix)  # noqa: E731
    return {"mac": r["mac_pj"], "sram": part(("ifmap", "filter", "ofmap")), "reg": part(("reg_W", "reg_O")),
            "dram": part(("dram",))}


def table(models, points, jobs, cache, mine, scalesim) -> pd.DataFrame:
    """One row per (model, design point, layer): ours (``mine``: fold_overlap wavefront;
    ``scalesim``: none) and ZigZag's latency and energy parts. ZigZag's DRAM bytes are its DRAM
    energy over our pJ/byte (the exported cost is per byte)."""
    dram_pj = {label: arch.energy.dram_pj_per_byte for label, arch in points}
    rows = []
    for j in jobs:
        u = models[j["model"]]
        L = u.iloc[j["row"]]
        o = mine[(j["model"], j["point"])].iloc[j["row"]]
        s = scalesim[(j["model"], j["point"])].iloc[j["row"]]
        z = cache.get(j["key"])
        row = {"model": j["model"], "point": j["point"], "layer": j["name"], "op": L["op"], "G": int(L["G"]),
               "M": int(L["M"]), "N": int(L["N"]), "K": int(L["K"]), "count": int(L["count"]),
               "ours_cycles": float(o["cycles"]), "ours_compute": float(o["compute_cycles"]),
               "ours_none_cycles": float(s["cycles"]), "ours_none_compute": float(s["compute_cycles"]),
               "ours_dram_B": float(o["dram_bytes"]), "ours_mac": float(o["energy_compute_pj"]),
               "ours_sram": float(o["energy_sram_pj"]), "ours_dram": float(o["energy_dram_pj"]),
               "ours_leak": float(o["energy_leak_pj"]), "zz_ok": bool(z and "error" not in z),
               "zz_error": (z or {}).get("error", "" if z else "not run")}
        if row["zz_ok"]:
            sp = _zz_split(z)
            row.update(zz_cycles=z["latency"], zz_temporal=z["ideal_temporal"], zz_stall=z["stall"],
                       zz_onload=z["onload"], zz_offload=z["offload"], zz_drain=z["drain"], zz_mac=sp["mac"],
                       zz_sram=sp["sram"], zz_reg=sp["reg"], zz_dram=sp["dram"],
                       zz_dram_B=sp["dram"] / dram_pj[j["point"]], zz_tm=z.get("tm", ""))
        rows.append(row)
    df = pd.DataFrame(rows)
    for c in ("zz_cycles", "zz_temporal", "zz_stall", "zz_onload", "zz_offload", "zz_drain", "zz_mac", "zz_sram",
              "zz_reg", "zz_dram", "zz_dram_B"):
        if c not in df:
            df[c] = np.nan
    df["err_pct"] = 100.0 * (df["ours_cycles"] - df["zz_cycles"]) / df["zz_cycles"]
    df["err_none_pct"] = 100.0 * (df["ours_none_cycles"] - df["zz_cycles"]) / df["zz_cycles"]
    # cases where both mappers move the same DRAM traffic (within 5 %): the cost models compared on
    # equal mappings' traffic, apart from which tile sizes each search chose
    df["same_traffic"] = (df["ours_dram_B"] / df["zz_dram_B"] - 1.0).abs() < 0.05
    bw = df["point"].str.extract(r"/(\d+)B")[0].astype(float)
    df["below_floor"] = df["ours_cycles"] < df["ours_dram_B"] / bw - 1  # a check: latency >= DRAM time
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and design point: count-weighted mean |err|, worst, whole-network error, energy."""
    out = []
    for (m, p), g in df.groupby(["model", "point"], sort=False):
        ok = g[g["zz_ok"]]
        e = ok["err_pct"].abs().to_numpy()
        worst = ok.loc[ok["err_pct"].abs().idxmax()] if len(ok) else None
        tot = lambda c: float((ok[c] * ok["count"]).sum())  # noqa: E731
        wm = lambda c, sel=slice(None): (float(np.average(ok[c].abs()[sel], weights=ok["count"][sel]))  # noqa: E731
                                         if len(ok[sel]) else np.nan)
        st = ok["same_traffic"]
        out.append({"model": m, "point": p, "ran": f"{len(ok)}/{len(g)}",
                    "mean_abs_err_pct": wm("err_pct"), "mean_abs_err_unweighted_pct": float(e.mean()) if len(ok) else np.nan,
                    "mean_abs_err_none_pct": wm("err_none_pct"), "same_traffic": f"{int(st.sum())}/{len(ok)}",
                    "mean_abs_err_same_traffic_pct": wm("err_pct", st),
                    "below_floor": f"{int(ok['below_floor'].sum())}/{len(ok)}",
                    "worst_err_pct": float(worst["err_pct"]) if worst is not None else np.nan,
                    "worst_layer": worst["layer"] if worst is not None else "",
                    "network_err_pct": 100.0 * (tot("ours_cycles") / tot("zz_cycles") - 1.0) if len(ok) else np.nan,
                    **{c: tot(c) for c in ("ours_cycles", "zz_cycles", "ours_compute", "zz_temporal", "zz_drain",
                                           "zz_stall", "zz_onload", "zz_offload", "ours_dram_B", "zz_dram_B",
                                           "ours_mac", "zz_mac", "ours_sram", "zz_sram", "ours_dram", "zz_dram",
                                           "ours_leak", "zz_reg", "ours_none_compute", "ours_none_cycles")}})
    return pd.DataFrame(out)


def render(models, points, jobs, cache, mine, scalesim, meta) -> str:
    """The whole markdown document (tables from here, prose from ``validate_zigzag_text``)."""
    from validate_zigzag_text import document

    df = table(models, points, jobs, cache, mine, scalesim)
    return document(df, summary(df), points, meta)
