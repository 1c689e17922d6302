"""Claim 2 (paper §4.2, Figs. 3-4): the WGAN loss estimate tracks sample quality; the GAN's JS estimate does not."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from study.report.cells import (ESTIMATE, HIGHER_BETTER, Verdict, cells, ci, fmt, ids, metric_label,
                                primary_metric, summarize)

MIN_POINTS = 4     # evaluation points a per-trial rank correlation needs to mean anything
MIN_TRIALS = 2
TRACKS = 0.5       # mean per-trial Spearman rho a cell needs to "track" quality

RULE = [
    "Per trial, ρ = Spearman correlation, over the evaluation points, between the loss's estimate (W estimate "
    "for WGAN, JS estimate for GAN) and the quality metric, as the trainer stored it in result.json "
    "(`correlation`; recomputed from metrics.csv where absent). Trials with fewer than "
    f"{MIN_POINTS} evaluation points are left out (counted).",
    "Signs are aligned so that ρ > 0 means \"the estimate goes down as samples get better\".",
    f"A cell **tracks** quality if its mean ρ over completed seeds is ≥ {TRACKS:g} and its bootstrap 95% CI lies "
    f"above 0; it **does not track** if the CI's upper bound is below {TRACKS:g}; **undecided** with fewer than "
    f"{MIN_TRIALS} usable seeds; else **unclear**.",
    "Verdict (the WGAN claim): *supported* if every WGAN cell tracks; *not supported* if any WGAN cell does not "
    "track; else *inconclusive*.",
    "The paper's contrast (the GAN's JS estimate does not track) is decided the same way on the GAN cells and "
    "reported beside it. The across-trial correlation (final estimate vs final quality, all completed trials "
    "of one loss) is evidence, not part of the rule."]


def _sign(quality: str) -> int:
    return -1 if quality in HIGHER_BETTER else 1


def _trial_rhos(run, t: pd.DataFrame) -> pd.DataFrame:
    """Per-trial correlation from result.json; recomputed from metrics.csv where result.json lacks it."""
    t = t.copy()
    for i, r in t.iterrows():
        if pd.notna(r.get("corr_spearman", math.nan)) or r["trial_id"] not in run.metrics:
            continue
        q = primary_metric(run.trials, r["data"])
        try:
            from study.eval.stats import loss_quality_correlation
            c = loss_quality_correlation(run.metrics[r["trial_id"]], ESTIMATE[r["loss"]], q) if q else {}
        except Exception:  # no usable columns: the trial stays without a rho, and is counted as such
            c = {}
        for k in ("spearman", "pearson", "n"):
            t.at[i, f"corr_{k}"] = float(c[k]) if c.get(k) is not None else math.nan
        if c:
            t.at[i, "corr_quality"] = c.get("quality", q)
    return t


def _outcome(s: dict) -> str:
    if s["n"] < MIN_TRIALS:
        return "undecided"
    if s["mean"] >= TRACKS and s["ci_lo"] > 0:
        return "tracks"
    if s["ci_hi"] < TRACKS:
        return "does not track"
    return "unclear"


def cell_table(run) -> pd.DataFrame:
    rows = []
    for cell, t in cells(run.trials):
        first = t.iloc[0]
        done = _trial_rhos(run, t[t["status"] == "completed"])
        quality = done["corr_quality"].dropna().mode()
        quality = quality.iloc[0] if len(quality) else primary_metric(run.trials, first["data"])
        ok = done[(done["corr_n"] >= MIN_POINTS) & np.isfinite(done["corr_spearman"].astype(float))]
        sign = _sign(str(quality))
        s = summarize(sign * ok["corr_spearman"].astype(float))
        rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                     "loss": first["loss"], "hue": first["hue"], "cell": cell,
                     "estimate": ESTIMATE.get(first["loss"], "?"), "quality": quality,
                     "n_completed": len(done), "n_rho": s["n"], "eval_points": done["corr_n"].median(),
                     "rho_mean": s["mean"], "rho_std": s["std"], "rho_ci_lo": s["ci_lo"], "rho_ci_hi": s["ci_hi"],
                     "pearson_mean": (sign * ok["corr_pearson"].astype(float)).mean(),
                     "outcome": _outcome(s), "in_verdict": bool(first["in_verdict"]), "trials": ids(done)})
    return pd.DataFrame(rows)


def across_table(run) -> pd.DataFrame:
    """Final estimate vs final quality over every completed trial of one loss (per data set)."""
    rows = []
    done = run.trials[run.trials["status"] == "completed"]
    for (data, loss), t in done.groupby(["data", "loss"], sort=True):
        est, quality = ESTIMATE.get(loss), primary_metric(run.trials, data)
        if est not in t or quality is None or quality not in t:
            continue
        ok = t[np.isfinite(t[est].astype(float)) & np.isfinite(t[quality].astype(float))]
        sp = pe = (math.nan, math.nan)
        if len(ok) >= MIN_POINTS and ok[est].nunique() > 1 and ok[quality].nunique() > 1:
            sp = stats.spearmanr(ok[est], ok[quality])
            pe = stats.pearsonr(ok[est], ok[quality])
        sign = _sign(quality)
        rows.append({"data": data, "loss": loss, "estimate": est, "quality": quality, "n": len(ok),
                     "spearman": sign * float(sp[0]), "spearman_p": float(sp[1]),
                     "pearson": sign * float(pe[0]), "pearson_p": float(pe[1]),
                     "backbones": " ".join(sorted(ok["backbone"].astype(str).unique())), "trials": ids(ok)})
    return pd.DataFrame(rows)


def decide(c: pd.DataFrame, loss: str) -> tuple[str, str]:
    sub = c[(c["loss"] == loss) & c["in_verdict"]] if not c.empty else c
    if sub.empty:
        return "inconclusive", f"no {loss.upper()} cell"
    out = sub["outcome"]
    if loss == "wgan":
        if (out == "does not track").any():
            return "not supported", "a WGAN cell whose estimate does not track quality"
        if (out == "tracks").all():
            return "supported", "every WGAN cell tracks quality"
        return "inconclusive", "WGAN cells undecided or unclear"
    if (out == "tracks").any():
        return "not supported", "a GAN cell whose estimate tracks quality"
    if (out == "does not track").all():
        return "supported", "no GAN cell's estimate tracks quality"
    return "inconclusive", "GAN cells undecided or unclear"


def claim2(run) -> tuple[dict[str, pd.DataFrame], Verdict]:
    c, a = cell_table(run), across_table(run)
    verdict, reason = decide(c, "wgan")
    evidence = [f"`{r['cell']}`: mean ρ = {fmt(r['rho_mean'], 2)} {ci(r['rho_ci_lo'], r['rho_ci_hi'], 2)} over "
                f"{r['n_rho']} seeds (median {fmt(r['eval_points'])} evaluation points) → **{r['outcome']}**"
                for _, r in c.iterrows() if r["in_verdict"]]
    g_verdict, g_reason = decide(c, "gan")
    evidence.append(f"Contrast, \"the GAN's JS estimate does not track quality\": **{g_verdict}** ({g_reason}).")
    for _, r in a.iterrows():
        evidence.append(f"Across trials, {r['loss'].upper()} on {r['data']}: final {metric_label(r['estimate'])} vs "
                        f"final {metric_label(r['quality'])}, Spearman ρ = {fmt(r['spearman'], 2)} "
                        f"(p = {fmt(r['spearman_p'], 2)}, n = {r['n']} trials).")
    return {"claim2_correlation": c, "claim2_across_trials": a}, Verdict("2", verdict, RULE, evidence, reason)
