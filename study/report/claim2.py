"""Claim 2 (paper §4.2, Figs. 3-4): the WGAN loss estimate tracks sample quality; the GAN's JS estimate does not."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from study.eval.stats import loss_quality_correlation, t_bound
from study.metrics import higher_better
from study.report.cells import (ESTIMATE, LABEL, VARIANTS, variants_in, Verdict, cells, ci, fmt, ids, metric_label,
                                primary_metric, summarize)
from study.report.evidence import MOVED
from study.report.outcomes import trial_evidence
from study.report.rules import ALPHA

MIN_POINTS = 4     # evaluation points a per-trial rank correlation needs to mean anything
MIN_TRIALS = 3     # counted seeds a decided cell needs: 2 give a t-interval with 1 degree of freedom
TRACKS = 0.5       # mean per-trial Spearman rho a cell needs to "track" quality

RULE = [
    "Per trial, ρ = Spearman correlation, over the evaluation points after iteration 0, between the loss's "
    "estimate (W estimate for WGAN, JS estimate for GAN, median-filtered over 101 iterations) and the quality "
    "metric, as the trainer stored it in result.json (`correlation`; recomputed from metrics.csv where absent). "
    f"Trials with fewer than {MIN_POINTS} evaluation points are left out (counted).",
    "Signs are aligned so that ρ > 0 means \"the estimate goes down as samples get better\".",
    f"A trial's ρ counts only when its quality moved over training by more than its noise: its first and last "
    f"evaluations (normalised) differ by more than {MOVED:g} x the RMS difference between two independent "
    "evaluations of the final generators of its cell's seeds (measured, not assumed); a correlation of a flat "
    "curve with noise decides nothing.",
    f"A cell **tracks** quality when the one-sided Student-t lower bound of its mean ρ over counted seeds is "
    f"above {TRACKS:g} (α/2 = {ALPHA / 2}); it **does not track** when the upper bound is below {TRACKS:g} "
    f"(α/2m over the m WGAN cells: \"some cell\" needs Bonferroni) and every counted seed converged "
    "(an early transient of the critic is not the claim); **undecided** with fewer than "
    f"{MIN_TRIALS} counted seeds; else **unclear**.",
    "Verdict (the WGAN claim): *supported* if every WGAN cell tracks; *not supported* if any WGAN cell does not "
    "track; else *inconclusive*.",
    "The paper's contrast (the GAN's JS estimate does not track) is decided the same way on the GAN cells and "
    "reported beside it (there \"tracks\" refutes, so it takes the Bonferroni share). The across-trial correlation (final estimate vs final quality, all completed trials "
    "of one loss) is evidence, not part of the rule."]


def _sign(quality: str) -> int:
    return -1 if higher_better(quality) else 1


def _trial_rhos(run, t: pd.DataFrame) -> pd.DataFrame:
    """Per-trial correlation from result.json; recomputed from metrics.csv where result.json lacks it or
    stored it on another quality metric than the one this data set's verdicts use (one extractor per cell)."""
    t = t.copy()
    t["corr_quality"] = t["corr_quality"].astype(object)  # all-NaN (float) when no trial stored one
    qs = {d: primary_metric(run.trials, d) for d in t["data"].unique()}
    for i, r in t.iterrows():
        q = qs[r["data"]]
        stored_ok = pd.notna(r.get("corr_spearman", math.nan)) and r.get("corr_quality") in (q, None)
        if stored_ok or r["trial_id"] not in run.metrics:  # recomputed when stored on another metric
            continue
        try:
            c = loss_quality_correlation(run.metrics[r["trial_id"]], ESTIMATE[r["loss"]], q) if q else {}
        except Exception:  # no usable columns: the trial stays without a rho, and is counted as such
            c = {}
        for k in ("spearman", "pearson", "n"):
            t.at[i, f"corr_{k}"] = float(c[k]) if c.get(k) is not None else math.nan
        if c:
            t.at[i, "corr_quality"] = c.get("quality", q)
    return t


def outcome(rho: np.ndarray, converged: list, m: int = 1, refute_tracks: bool = False,
            alpha: float = ALPHA) -> tuple[str, float, float]:
    """(outcome, lower bound at α, upper bound at α/m) of one cell's counted per-seed ρ. "Tracks" and
    "does not track" are one-sided tests against the same threshold, so a cell whose true mean ρ sits on
    it is decided either way with probability at most α."""
    rho = np.asarray([r for r in rho if r == r], float)
    # both calls test against one threshold: each gets half of alpha, so a cell sitting on it is decided
    # (either way) with probability at most alpha. The call that refutes a claim by "some cell" splits its
    # half over the m cells (Bonferroni): "does not track" for a Wasserstein variant, "tracks" for the GAN.
    some = alpha / 2 / max(m, 1)
    lo = t_bound(rho, some if refute_tracks else alpha / 2, upper=False)
    hi = t_bound(rho, alpha / 2 if refute_tracks else some, upper=True)
    if len(rho) < MIN_TRIALS:
        return "undecided", lo, hi
    if lo > TRACKS:
        return "tracks", lo, hi
    if hi < TRACKS and all(c is True for c in converged):
        return "does not track", lo, hi
    return "unclear", lo, hi


def cell_table(run) -> pd.DataFrame:
    ev = trial_evidence(run).set_index("trial_id")
    m = {loss: max(int(((run.trials["loss"] == loss) & run.trials["in_verdict"]).groupby(run.trials["cell"]).any().sum()), 1)
         for loss in ESTIMATE}
    rows = []
    for cell, t in cells(run.trials):
        first = t.iloc[0]
        done = _trial_rhos(run, t[t["status"] == "completed"])
        quality = primary_metric(run.trials, first["data"])  # _trial_rhos put every counted rho on it
        ok = done[(done["corr_n"] >= MIN_POINTS) & np.isfinite(done["corr_spearman"].astype(float))]
        moved = [ev["moved"].get(tid) for tid in ok["trial_id"]]
        counted = ok[np.array([mv is True for mv in moved], dtype=bool)]
        sign = _sign(str(quality))
        rho = sign * counted["corr_spearman"].astype(float)
        s = summarize(rho)
        conv = [ev["converged"].get(tid) for tid in counted["trial_id"]]
        out, lo, hi = outcome(rho.to_numpy(), conv, m.get(first["loss"], 1), refute_tracks=first["loss"] not in VARIANTS,
                              alpha=run.design.alpha)
        rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                     "loss": first["loss"], "hue": first["hue"], "cell": cell,
                     "estimate": ESTIMATE.get(first["loss"], "?"), "quality": quality,
                     "n_completed": len(done), "n_rho": len(ok), "n_counted": s["n"],
                     "n_flat": sum(mv is False for mv in moved), "n_no_noise": sum(mv is None for mv in moved),
                     "eval_points": done["corr_n"].median(),
                     "rho_mean": s["mean"], "rho_std": s["std"], "rho_ci_lo": s["ci_lo"], "rho_ci_hi": s["ci_hi"],
                     "rho_lo_bound": lo, "rho_hi_bound": hi, "n_converged": sum(c is True for c in conv),
                     "pearson_mean": (sign * counted["corr_pearson"].astype(float)).mean(),
                     "outcome": out, "in_verdict": bool(first["in_verdict"]), "trials": ids(done)})
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
        return "inconclusive", f"no {LABEL.get(loss, loss)} cell"
    out = sub["outcome"]
    if loss in VARIANTS:
        if (out == "does not track").any():
            return "not supported", f"a {LABEL[loss]} cell whose estimate does not track quality"
        if (out == "tracks").all():
            return "supported", f"every {LABEL[loss]} cell tracks quality"
        return "inconclusive", f"{LABEL[loss]} cells undecided or unclear"
    if (out == "tracks").any():
        return "not supported", "a GAN cell whose estimate tracks quality"
    if (out == "does not track").all():
        return "supported", "no GAN cell's estimate tracks quality"
    return "inconclusive", "GAN cells undecided or unclear"


def _need(r: pd.Series) -> str:
    """What would decide an undecided or unclear cell."""
    if r["outcome"] == "undecided":
        short = MIN_TRIALS - r["n_counted"]
        why = (f"{short} more seed(s) whose quality moves beyond its noise" +
               (" (longer training, or more samples per evaluation to shrink the noise)" if r["n_flat"] else ""))
        return f"; would decide it: {why}"
    if r["outcome"] == "unclear":
        return "; would decide it: more seeds (the interval of mean ρ straddles the threshold) or converged runs"
    return ""


def claim2(run) -> tuple[dict[str, pd.DataFrame], list[Verdict]]:
    c, a = cell_table(run), across_table(run)
    g_verdict, g_reason = decide(c, "gan")
    verdicts = []
    for variant in variants_in(run.trials):
        verdict, reason = decide(c, variant)
        mine = c[c["in_verdict"] & c["loss"].isin(["gan", variant])] if not c.empty else c
        evidence = [f"`{r['cell']}`: mean ρ = {fmt(r['rho_mean'], 2)} {ci(r['rho_ci_lo'], r['rho_ci_hi'], 2)} over "
                    f"{r['n_counted']} counted seeds of {r['n_rho']} with ρ ({r['n_flat']} left out: quality moved "
                    f"less than its noise; {r['n_no_noise']} without a noise measurement), median "
                    f"{fmt(r['eval_points'])} evaluation points, {r['n_converged']} converged → **{r['outcome']}**"
                    + _need(r) for _, r in mine.iterrows()]
        evidence.append(f"Contrast, \"the GAN's JS estimate does not track quality\": **{g_verdict}** ({g_reason}).")
        for _, r in a[a["loss"].isin(["gan", variant])].iterrows() if not a.empty else []:
            evidence.append(f"Across trials, {LABEL.get(r['loss'], r['loss'])} on {r['data']}: final "
                            f"{metric_label(r['estimate'])} vs final {metric_label(r['quality'])}, Spearman ρ = "
                            f"{fmt(r['spearman'], 2)} (p = {fmt(r['spearman_p'], 2)}, n = {r['n']} trials).")
        verdicts.append(Verdict("2", verdict, RULE, evidence, reason, variant))
    return {"claim2_correlation": c, "claim2_across_trials": a}, verdicts
