"""Setup and compute tables: what ran, where, with what, for how long; every trial accounted for."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from lightning_modules import ALGORITHMS
from study.config import TrialConfig, data_defaults
from study.data import DATASETS
from study.report.cells import LABEL, LOSS_ORDER, cells, flatten, ids, norm, paper_settings
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
    # wall_s: the whole training; a continued trial's own run (its extension) is wall_s_run, `continues` the trials
    # before it (study/report/load.whole_training)
    cols = ["trial_id", "cell", "seed", "status", "gen_iters", "wall_s", "wall_s_run", "continues", "device",
            "diverged_at", "error", "issues"]
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
    """Per cell: wall time and generator iterations per second (all trials that ran, any status). A continued
    trial's wall time and iterations are its whole training's, so its speed is that of every iteration it trained."""
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
    Adam): the verdicts then test the claim under those settings, and the reader must know. The paper's
    value is the one for each trial's data (WGAN-GP's λ: 10 on images, 0.1 on points)."""
    generic = paper_settings()
    got: dict[tuple[str, str, str], set] = {}  # (key, the published value, its words) -> values used instead
    used = run.trials[run.trials["in_verdict"]]
    for tid, loss, data in zip(used["trial_id"], used["loss"], used["data"]):
        c = run.configs.get(tid, {})
        for key, want in paper_settings(data).items():
            if key.split(".", 1)[0] == loss and key in c and norm(c[key]) != want:
                words = "the paper used" if want == generic[key] else \
                    f"the published setting on {DATASETS.get(data).kind} is"
                got.setdefault((key, want, words), set()).add(str(c[key]))
    return [f"{LABEL.get(key.split('.', 1)[0], key)} cells in the verdicts use `{key}` = {', '.join(sorted(vals))}; "
            f"{words} {json.loads(want)}." for (key, want, words), vals in sorted(got.items())]


def defaults_lines(run) -> list[str]:
    """Where the defaults came from: each algorithm's registration (and its value for the kinds of data run, where
    that differs), then per data set the settings its data decides (study.config.data_defaults) that trials use."""
    t = run.trials
    lines = []
    for n in [n for n in LOSS_ORDER if (t["loss"] == n).any()]:
        algo = ALGORITHMS.get(n)
        kinds = {DATASETS.get(d).kind for d in set(t.loc[t["loss"] == n, "data"]) if d in DATASETS}
        lines.append(f"{LABEL[n]}: defaults from {algo.reference}"
                     + (f"; {algo.by_data_reference}" if kinds & set(algo.by_data) else ""))
    for data in sorted(d for d in set(t["data"]) if d in DATASETS):
        full = flatten(TrialConfig.model_validate({"data": {"name": data}}).model_dump(mode="json"))
        tids = list(t.loc[t["data"] == data, "trial_id"])
        used = []
        for key, value in data_defaults({"data": {"name": data}}).items():
            at = {k: norm(v) for k, v in full.items() if k == key or k.startswith(key + ".")}  # backbone: G and D
            have = [tid for tid in tids if at.keys() <= run.configs.get(tid, {}).keys()]
            hits = sum(all(norm(run.configs[tid][k]) == v for k, v in at.items()) for tid in have)
            if hits:
                used.append(f"{key}={value}" + ("" if hits == len(have) else f" ({hits} of {len(have)} trials)"))
        if used:
            lines.append(f"Defaults from the data: {', '.join(used)} ({data} is {DATASETS.get(data).kind}; "
                         "applied where a spec leaves them unset)")
    return lines
