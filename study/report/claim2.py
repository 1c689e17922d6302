"""Claim 2 (paper §4.2, Figs. 3-4): the WGAN loss estimate tracks sample quality; the GAN's JS estimate does not."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from study.eval.stats import loss_quality_correlation
from study.metrics import higher_better
from study.report.cells import (ESTIMATE, LABEL, VARIANTS, variants_in, Verdict, cells, fmt, ids, metric_label,
                                primary_metric, summarize)
from study.report.outcomes import trial_evidence
from study.report.rules import ALPHA
from study.report import trendfree as tf

MIN_POINTS = 4     # evaluation points a per-trial rank correlation needs to mean anything
MIN_TRIALS = 3     # counted seeds a decided cell needs: 2 give a t-interval with 1 degree of freedom
R0 = 0.1           # the one threshold of the trend-free test (the cell's r): a perfect tracker with the
                   # estimate noise measured on real runs shows r ≈ 0.4 (seeds differ little at a step), so an
                   # estimate "tracks" when it shows over a quarter of that; 10 seeds reach it (docs/verdicts.md)

RULE = [
    "What the test controls for: the time trend every seed shares (and any level a seed or its critic keeps "
    "throughout) — seeds are compared with each other at the same evaluation step, so a curve that merely falls "
    "with training (the iteration counter) is no evidence.",
    "Per cell, the loss's estimate (W estimate for WGAN, JS estimate for GAN, the median of the per-iteration "
    "values within 50 iterations of each evaluation) and the quality metric are read at the evaluation steps after "
    "iteration 0 that every completed seed has. Each is replaced by its rank among the cell's seeds at that step "
    "and centred per seed: quality(s, t) = a_t + b · estimate(s, t) + u_s + ε on ranks. r_s is the correlation of "
    "a seed's two residual curves (sign aligned: r_s > 0 when a seed's estimate falls as its samples get better "
    "than the other seeds'); r the same over the whole cell; p the share of the cell's permutations of whole "
    "estimate curves between seeds (all S! orders up to 8 seeds) with an r at least as large.",
    f"r's uncertainty is its jackknife over seeds (each left out in turn, ranks recomputed; the seeds share each "
    "step's ranks, so their r_s are not independent). "
    f"A cell **tracks** quality when the one-sided Student-t lower bound of r (n − 1 df) is above {R0:g} and p ≤ "
    f"the same level (α/2 = {ALPHA / 2}); it **does not track** when the upper bound is below {R0:g} (α/2m over "
    "the m WGAN cells: \"some cell\" needs Bonferroni) — no convergence is needed, the shared trend is removed, "
    f"not waited out; **undecided** with fewer than {MIN_TRIALS} seeds with curves, when nothing varies "
    "between seeds at a step (no evidence), or, in an adaptive run, before the cell has its design size of "
    "seeds (α is spent over the iteration budgets); else **unclear**.",
    "Verdict (the WGAN claim): *supported* if every WGAN cell tracks; *not supported* if any WGAN cell does not "
    "track; else *inconclusive*.",
    "The paper's contrast (the GAN's JS estimate does not track) is decided the same way on the GAN cells, paired "
    "with the WGAN by backbone, and reported beside it (there \"tracks\" refutes, so it takes the Bonferroni share).",
    "Evidence, not the rule: per trial, the raw Spearman ρ of estimate and quality over training (which the shared "
    "trend alone makes large) and the Spearman ρ of their first differences; across trials, final estimate vs final "
    "quality. Per-trial values: tables/claim2_trials.csv."]


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


def outcome(st: dict, m: int = 1, refute_tracks: bool = False, alpha: float = ALPHA,
            design: int | None = None) -> tuple[str, float, float, str]:
    """(outcome, lower bound, upper bound, why) of one cell's trend-free test from trendfree.cell_stats: r, its
    jackknife se over seeds, the permutation p, the seed count. "Tracks" and "does not track" are one-sided
    tests against the one threshold R0, so a cell whose true r sits on it is decided either way with
    probability at most alpha. design: the seeds the cell may have (an adaptive run): decided only there."""
    n, r, p = st["n_seeds"], st["r"], st["p"]
    # each call gets half of alpha; the call that refutes a claim by "some cell" splits its half over the m
    # cells (Bonferroni): "does not track" for a Wasserstein variant, "tracks" for the GAN
    some = alpha / 2 / max(m, 1)
    a_lo, a_hi = (some, alpha / 2) if refute_tracks else (alpha / 2, some)
    lo, hi = tf.bounds(r, st["se"], n, a_lo, a_hi)
    if n < MIN_TRIALS or r != r:
        why = ("no evidence: nothing varies between seeds at a step" if n >= MIN_TRIALS
               else f"{n} seed(s) with curves, {MIN_TRIALS} needed")
        return "undecided", lo, hi, why
    if design and n < design:
        return "undecided", lo, hi, f"{n} of the design's {design} seeds: decided at the design size"
    if lo != lo:
        return "undecided", lo, hi, "r without a jackknife interval (fewer than 3 seeds left out give an r)"
    if lo > R0 and p <= a_lo * (1 + 1e-9):  # p can equal the level exactly (1/120 = α/6 at 5 seeds)
        return "tracks", lo, hi, f"lower bound {lo:.2f} > {R0:g}, permutation p = {p:.3g}"
    if hi < R0:
        return "does not track", lo, hi, f"upper bound {hi:.2f} < {R0:g}"
    return "unclear", lo, hi, f"[{lo:.2f}, {hi:.2f}] contains {R0:g}" + ("" if lo <= R0 else f", p = {p:.3g}")


def _panel(run, t: pd.DataFrame, estimate: str, quality: str) -> tuple[list, list]:
    """(trial ids, curves) of a cell's completed trials with a usable metrics.csv (one reader: trendfree)."""
    ids_, curves = [], []
    for tid in t["trial_id"]:
        c = tf.eval_curve(run.metrics[tid], estimate, quality) if tid in run.metrics and quality else None
        if c is not None and len(c) >= MIN_POINTS:
            ids_.append(tid), curves.append(c)
    return ids_, curves


def cell_and_trials(run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claim2_correlation: one row per cell, claim2_trials: one row per completed trial)."""
    ev = trial_evidence(run).set_index("trial_id")
    m = {loss: max(int(((run.trials["loss"] == loss) & run.trials["in_verdict"]).groupby(run.trials["cell"]).any().sum()), 1)
         for loss in ESTIMATE}
    rows, trials = [], []
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
        est = ESTIMATE.get(first["loss"], "?")
        used, curves = _panel(run, done, est, quality)
        E, Q, steps = tf.panel(curves)
        st = tf.cell_stats(E, Q, sign)
        refute = first["loss"] not in VARIANTS
        out, lo, hi, why = outcome(st, m.get(first["loss"], 1), refute_tracks=refute, alpha=run.design.alpha,
                                   design=run.design.seeds)
        fd = {tid: tf.first_diff_rho(sign * c["estimate"].to_numpy(), c["quality"].to_numpy())
              for tid, c in zip(used, curves)}
        rs = dict(zip(used, st["r_seeds"]))
        for _, r in done.iterrows():
            trials.append({"cell": cell, "trial_id": r["trial_id"], "seed": r.get("seed"), "loss": first["loss"],
                           "estimate": est, "quality": quality, "eval_points": r["corr_n"],
                           "rho_raw": sign * float(r["corr_spearman"]), "moved": ev["moved"].get(r["trial_id"]),
                           "r_trendfree": rs.get(r["trial_id"], math.nan),
                           "rho_first_diff": fd.get(r["trial_id"], math.nan),
                           "in_panel": r["trial_id"] in rs, "steps": len(steps)})
        rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                     "loss": first["loss"], "hue": first["hue"], "cell": cell, "estimate": est, "quality": quality,
                     "n_completed": len(done), "n_rho": len(ok), "n_counted": s["n"],
                     "n_flat": sum(mv is False for mv in moved), "n_no_noise": sum(mv is None for mv in moved),
                     "eval_points": done["corr_n"].median(),
                     "rho_mean": s["mean"], "rho_std": s["std"], "rho_ci_lo": s["ci_lo"], "rho_ci_hi": s["ci_hi"],
                     "pearson_mean": (sign * counted["corr_pearson"].astype(float)).mean(),
                     "n_seeds": len(used), "n_steps": len(steps), "r_tf": st["r"],
                     "r_seeds_mean": float(np.nanmean(st["r_seeds"])) if np.isfinite(st["r_seeds"]).any() else math.nan,
                     "r_se": st["se"], "r_lo_bound": lo, "r_hi_bound": hi, "p_perm": st["p"],
                     "rho_first_diff_mean": float(np.nanmean(list(fd.values()))) if np.isfinite(list(fd.values())).any()
                     else math.nan,
                     "outcome": out, "why": why, "in_verdict": bool(first["in_verdict"]), "trials": ids(done)})
    return pd.DataFrame(rows), pd.DataFrame(trials)


def cell_table(run) -> pd.DataFrame:
    return cell_and_trials(run)[0]


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
        return f" ({r['why']}); would decide it: more seeds (up to the design size in an adaptive run)"
    if r["outcome"] == "unclear":
        return f" ({r['why']}); would decide it: more seeds (the interval of r contains {R0:g})"
    return f" ({r['why']})"


def claim2(run) -> tuple[dict[str, pd.DataFrame], list[Verdict]]:
    (c, per_trial), a = cell_and_trials(run), across_table(run)
    g_verdict, g_reason = decide(c, "gan")
    verdicts = []
    for variant in variants_in(run.trials):
        verdict, reason = decide(c, variant)
        mine = c[c["in_verdict"] & c["loss"].isin(["gan", variant])] if not c.empty else c
        evidence = [f"`{r['cell']}`: trend-free r = {fmt(r['r_tf'], 2)} [{fmt(r['r_lo_bound'], 2)}, "
                    f"{fmt(r['r_hi_bound'], 2)}] (one-sided bounds; mean r_s {fmt(r['r_seeds_mean'], 2)}), permutation p = "
                    f"{fmt(r['p_perm'], 2)}, over {r['n_seeds']} seeds x {r['n_steps']} steps → **{r['outcome']}**"
                    + _need(r) + f". Raw ρ over training (the shared trend included): {fmt(r['rho_mean'], 2)}; "
                    f"ρ of first differences: {fmt(r['rho_first_diff_mean'], 2)}." for _, r in mine.iterrows()]
        evidence.append(f"Contrast, \"the GAN's JS estimate does not track quality\": **{g_verdict}** ({g_reason}).")
        for _, r in a[a["loss"].isin(["gan", variant])].iterrows() if not a.empty else []:
            evidence.append(f"Across trials, {LABEL.get(r['loss'], r['loss'])} on {r['data']}: final "
                            f"{metric_label(r['estimate'])} vs final {metric_label(r['quality'])}, Spearman ρ = "
                            f"{fmt(r['spearman'], 2)} (p = {fmt(r['spearman_p'], 2)}, n = {r['n']} trials).")
        verdicts.append(Verdict("2", verdict, RULE, evidence, reason, variant))
    return {"claim2_correlation": c, "claim2_trials": per_trial, "claim2_across_trials": a}, verdicts
