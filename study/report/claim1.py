"""Claim 1 (paper §4.3, Figs. 5-7): WGAN is robust to the choice of architecture where the GAN is not."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.report.cells import (IMPROVING, Verdict, cells, ci, counts, diff_ci, fmt, ids, last_change,
                                metric_label, primary_metric, quality_metrics, summarize)

FAIL_GAP = 0.5   # a failure-rate gap this large decides a pair on its own (e.g. GAN diverges, WGAN does not)
MIN_SEEDS = 2

RULE = [
    "Compare GAN and WGAN per backbone (within a data set, all shared settings equal) on the final quality "
    "metric (lower is better): Δ = mean(GAN) − mean(WGAN), with a bootstrap 95% CI (each cell's seeds "
    "resampled independently).",
    "Failure rate = (diverged trials + completed trials with no finite value) / (completed + diverged); "
    "failed trials (errors) and unfinished ones are counted, not used.",
    f"A pair is **WGAN better** if the GAN's failure rate exceeds the WGAN's by ≥ {FAIL_GAP:g}, or Δ's CI lies "
    "above 0; **GAN better** in the mirror case; **tie** if Δ's CI contains 0.",
    f"A pair is **undecided** if a cell has fewer than {MIN_SEEDS} finished seeds, or (failure rates not deciding "
    f"it) either cell's quality still improved by more than {-IMPROVING:.0%} over its last evaluation interval "
    "(not converged: a difference could be speed, not outcome); with fewer than 2 evaluations convergence "
    "cannot be checked and is shown as n/a.",
    "Verdict: *not supported* if any pair is GAN better; else *inconclusive* if any pair is undecided or fewer "
    "than 2 backbones were compared; else *supported* if at least one pair is WGAN better (ties on strong "
    "backbones are what the paper shows, Fig. 5); else *not supported* (no backbone separates them).",
    "Only cells at the paper's settings for their loss enter the verdict; other swept values of a loss's own "
    "settings are ablations (e.g. WGAN with Adam, which §4.2 reports as unstable).",
    "Deciding metric: Inception FID where every completed trial has it, else domain-feature FID, else (toys) "
    "exact W1; the same rule on the other metrics is listed as a check."]


def quality_table(run) -> pd.DataFrame:
    """One row per cell x quality metric: mean ± std, bootstrap CI, failure rate, convergence."""
    rows = []
    for cell, t in cells(run.trials):
        first, done, c = t.iloc[0], t[t["status"] == "completed"], counts(t)
        terminal = c["n_completed"] + c["n_diverged"]
        for key in quality_metrics(run.trials, first["data"]):
            vals = done[key].astype(float) if key in done else pd.Series(math.nan, index=done.index)
            s = summarize(vals)
            bad = c["n_diverged"] + int((~np.isfinite(vals)).sum())  # completed without a value count as failed
            rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                         "loss": first["loss"], "hue": first["hue"], "cell": cell, "metric": key,
                         "num_samples": t["num_samples"].median() if "num_samples" in t else math.nan,
                         **c, "n_values": s.pop("n"), **s,
                         "failure_rate": bad / terminal if terminal else math.nan,
                         "last_change": last_change(run.metrics, done["trial_id"], key),
                         "in_verdict": bool(first["in_verdict"]), "trials": ids(t)})
    return pd.DataFrame(rows)


def _outcome(g: pd.Series, w: pd.Series, lo: float, hi: float) -> tuple[str, str]:
    term_g, term_w = g["n_completed"] + g["n_diverged"], w["n_completed"] + w["n_diverged"]
    if min(term_g, term_w) < MIN_SEEDS:
        return "undecided", f"fewer than {MIN_SEEDS} finished seeds"
    gap = g["failure_rate"] - w["failure_rate"]
    if gap >= FAIL_GAP:
        return "WGAN better", "GAN fails more often"
    if gap <= -FAIL_GAP:
        return "GAN better", "WGAN fails more often"
    if min(g["n_values"], w["n_values"]) < MIN_SEEDS:
        return "undecided", f"fewer than {MIN_SEEDS} seeds with a final value"
    slow = [name for name, r in (("GAN", g), ("WGAN", w)) if r["last_change"] < IMPROVING]
    if slow:
        return "undecided", f"{' and '.join(slow)} still improving"
    if lo > 0:
        return "WGAN better", "Δ CI above 0"
    if hi < 0:
        return "GAN better", "Δ CI below 0"
    return "tie", "Δ CI contains 0"


def difference_table(q: pd.DataFrame, run) -> pd.DataFrame:
    """GAN − WGAN per group x metric x (GAN cell, WGAN cell), with the pair's outcome."""
    rows = []
    for (group, key), sub in q.groupby(["group", "metric"], sort=False):
        for _, g in sub[sub["loss"] == "gan"].iterrows():
            for _, w in sub[sub["loss"] == "wgan"].iterrows():
                tg = run.trials[(run.trials["cell"] == g["cell"]) & (run.trials["status"] == "completed")]
                tw = run.trials[(run.trials["cell"] == w["cell"]) & (run.trials["status"] == "completed")]
                lo, hi = diff_ci(tg[key].to_numpy(float), tw[key].to_numpy(float))
                outcome, why = _outcome(g, w, lo, hi)
                rows.append({"data": g["data"], "backbone": g["backbone"], "group": group, "metric": key,
                             "gan": g["hue"], "wgan": w["hue"], "gan_mean": g["mean"], "wgan_mean": w["mean"],
                             "diff": g["mean"] - w["mean"], "diff_ci_lo": lo, "diff_ci_hi": hi,
                             "gan_failure_rate": g["failure_rate"], "wgan_failure_rate": w["failure_rate"],
                             "gan_last_change": g["last_change"], "wgan_last_change": w["last_change"],
                             "gan_n": g["n_values"], "wgan_n": w["n_values"], "outcome": outcome, "why": why,
                             "in_verdict": bool(g["in_verdict"] and w["in_verdict"]),
                             "trials": g["trials"] + " " + w["trials"]})
    return pd.DataFrame(rows)


def decide(pairs: pd.DataFrame) -> tuple[str, str]:
    if pairs.empty:
        return "inconclusive", "no backbone has both a GAN and a WGAN cell with a quality metric"
    out = pairs["outcome"]
    if (out == "GAN better").any():
        return "not supported", "a backbone where the GAN is better"
    if (out == "undecided").any():
        return "inconclusive", "undecided pairs (see the reasons)"
    if pairs["backbone"].nunique() < 2:
        return "inconclusive", "fewer than 2 backbones compared"
    if (out == "WGAN better").any():
        return "supported", "WGAN better on at least one backbone, never worse"
    return "not supported", "GAN and WGAN tie on every backbone"


def _pct(x: float) -> str:
    return f"{x:+.0%}" if x == x else "n/a"


def evidence_line(r: pd.Series) -> str:
    rate = lambda x: f"{x:.0%}" if x == x else "–"
    return (f"`{r['group']}`, {metric_label(r['metric'])}: GAN {fmt(r['gan_mean'])} vs {r['wgan']} "
            f"{fmt(r['wgan_mean'])}, Δ = {fmt(r['diff'])} {ci(r['diff_ci_lo'], r['diff_ci_hi'])}; "
            f"failure rate {rate(r['gan_failure_rate'])} vs {rate(r['wgan_failure_rate'])}; last-interval "
            f"change {_pct(r['gan_last_change'])} vs {_pct(r['wgan_last_change'])}; seeds {r['gan_n']} vs "
            f"{r['wgan_n']} → **{r['outcome']}**" + (f" ({r['why']})" if r["why"] else ""))


def claim1(run) -> tuple[dict[str, pd.DataFrame], Verdict]:
    q = quality_table(run)
    d = difference_table(q, run) if not q.empty else pd.DataFrame()
    primary = {data: primary_metric(run.trials, data) for data in run.trials["data"].unique()}
    if d.empty:
        verdict, reason = decide(d)
        return {"claim1_quality": q, "claim1_difference": d}, Verdict("1", verdict, RULE, [], reason)
    d["primary"] = [primary.get(r["data"]) == r["metric"] for _, r in d.iterrows()]
    head = d[d["primary"] & d["in_verdict"]]
    verdict, reason = decide(head)
    evidence = [evidence_line(r) for _, r in head.iterrows()]
    for key, other in d[~d["primary"] & d["in_verdict"]].groupby("metric"):
        evidence.append(f"Same rule on {metric_label(key)} (a check, not the deciding metric): "
                        f"{' — '.join(decide(other))}")
    return {"claim1_quality": q, "claim1_difference": d}, Verdict("1", verdict, RULE, evidence, reason)
