"""Setup and compute tables: what ran, where, with what, for how long; every trial accounted for."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from study.report.cells import LABEL, PAPER_SETTINGS, cells, ids, norm, paper_settings
from study.report.cells import flatten
from study.report.load import STATUSES


def status_table(run) -> pd.DataFrame:
    """Trial counts by status per cell, plus a total row: partial sweeps show what is missing."""
    rows = []
    for cell, t in cells(run.trials):
        vc = t["status"].value_counts()
        extra = sorted(set(vc.index) - set(STATUSES))  # a status the contract does not list still counts
        rows.append({"cell": cell, **{s: int(vc.get(s, 0)) for s in STATUSES + tuple(extra)},
                     "total": len(t), "trials": ids(t)})
    df = pd.DataFrame(rows).fillna(0)
    if not df.empty:
        total = {c: int(df[c].sum()) for c in df.columns if c not in ("cell", "trials")}
        df = pd.concat([df, pd.DataFrame([{"cell": "all cells", **total, "trials": ""}])], ignore_index=True)
    return df


def trials_table(run) -> pd.DataFrame:
    cols = ["trial_id", "cell", "seed", "status", "gen_iters", "wall_s", "device", "diverged_at", "error", "issues"]
    return run.trials[[c for c in cols if c in run.trials]].copy()


def versions_table(run) -> pd.DataFrame:
    counts: dict[tuple[str, str], int] = {}
    for v in run.trials["versions"].dropna():
        for pkg, ver in json.loads(v).items():
            counts[(pkg, str(ver))] = counts.get((pkg, str(ver)), 0) + 1
    return pd.DataFrame([{"package": p, "version": v, "n_trials": n} for (p, v), n in sorted(counts.items())],
                        columns=["package", "version", "n_trials"])


def devices_table(run) -> pd.DataFrame:
    t = run.trials[run.trials["device"].notna()]
    if t.empty:
        return pd.DataFrame(columns=["device", "compile", "n_trials", "wall_s"])
    df = t.fillna({"compile": "-"}).groupby(["device", "compile"]).agg(n_trials=("trial_id", "size"), wall_s=("wall_s", "sum")).reset_index()
    df["wall_s"] = df["wall_s"].astype(float).round(1)  # a sum of floats prints as 3409.1820000000002
    return df


def compute_table(run) -> pd.DataFrame:
    """Per cell: wall time and generator iterations per second (all trials that ran, any status)."""
    rows = []
    for cell, t in cells(run.trials):
        ran = t[t["wall_s"].astype(float) > 0]
        wall, ev, it = (ran[c].astype(float) for c in ("wall_s", "eval_s", "gen_iters"))
        rate = it / wall
        train_rate = it / (wall - ev.fillna(0)).where(lambda x: x > 0)
        rows.append({"cell": cell, "data": t.iloc[0]["data"], "backbone": t.iloc[0]["backbone"],
                     "loss": t.iloc[0]["loss"], "hue": t.iloc[0]["hue"], "n_ran": len(ran),
                     "wall_s_mean": wall.mean(), "wall_s_total": wall.sum(), "eval_s_mean": ev.mean(),
                     "gen_iters_mean": it.mean(), "critic_iters_mean": ran["critic_iters"].astype(float).mean(),
                     "gen_it_per_s": rate.mean(), "train_gen_it_per_s": train_rate.mean(),
                     "device": ", ".join(sorted(ran["device"].dropna().astype(str).unique())), "trials": ids(ran)})
    return pd.DataFrame(rows)


def eval_summary(run) -> list[str]:
    """One line per fact about evaluation a reader needs to compare numbers (N, classifier, notes)."""
    t = run.trials
    lines = []
    ns = sorted(t["num_samples"].dropna().astype(int).unique()) if "num_samples" in t else []
    if ns:
        mixed = " — differs across trials: FID is biased in N, compare within one N only" if len(ns) > 1 else ""
        lines.append(f"Samples per evaluation (N for FID/KID): {', '.join(map(str, ns))}{mixed}")
    if "domain_classifier_acc" in t and t["domain_classifier_acc"].notna().any():
        acc = t["domain_classifier_acc"].dropna()
        span = f"{acc.min():.3f}" + (f"–{acc.max():.3f}" if acc.max() > acc.min() else "")
        lines.append(f"Domain classifier accuracy on held-out real data: {span} (the FID@domain feature extractor)")
    if "eval_notes" in t:
        for note in sorted({n for n in t["eval_notes"].dropna() if n}):
            lines.append(f"Evaluation note: {note}")
    return lines


def wall_summary(run) -> str:
    w = run.trials["wall_s"].astype(float)
    total = float(np.nansum(w)) if w.notna().any() else math.nan
    return (f"Total trial wall time {total / 3600:.2f} h ({total:.0f} s summed over {int(w.notna().sum())} trials; "
            "trials may have run in parallel)") if total == total else "No wall time recorded."


def paper_deviations(run) -> list[str]:
    """Settings of verdict cells that differ from the paper's (e.g. a sweep whose base sets WGAN to
    Adam): the verdicts then test the claim under those settings, and the reader must know."""
    lines = []
    paper = paper_settings()
    used = run.trials[run.trials["in_verdict"]]
    for key, want in paper.items():
        loss = key.split(".", 1)[0]
        got = {str(run.configs[tid][key]) for tid in used[used["loss"] == loss]["trial_id"]
               if key in run.configs.get(tid, {}) and norm(run.configs[tid][key]) != want}
        if got:
            lines.append(f"{LABEL.get(loss, loss)} cells in the verdicts use `{key}` = {', '.join(sorted(got))}; the paper "
                         f"used {flatten(PAPER_SETTINGS)[key]}.")
    return lines
