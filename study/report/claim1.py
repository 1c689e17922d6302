"""Claim 1 (paper §4.3, Figs. 5-7): the WGAN is robust to the choice of architecture: it keeps
working on backbones where the GAN fails. Which of the two is *better* on a backbone is shown as
information; the paper never claims the WGAN beats the GAN where both work (Fig. 5)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.eval.stats import permutation_p
from study.report.cells import (LABEL, VARIANTS, Verdict, cells, ci, counts, diff_ci, fmt, ids, metric_label,
                                quality_metrics, summarize, variants_in)
from study.report import rules as R
from study.report.evidence import CONCENTRATED, CONV_TOL, LATE
from study.report import evidence as E
from study.report.outcomes import budget_evidence, cell_states, deciding_metrics, trial_evidence


def rule(design: R.Design) -> list[str]:
    """Claim 1's rule as printed in the report, at the run's design (an adaptive run splits α over its looks)."""
    a = design.alpha
    return [
        "Quality per trial is normalised between two anchors measured by the same evaluator: the real floor "
        "(the metric of N real samples) = 0 and the untrained generator (generator iteration 0) = 1. Deciding "
        "metric: Inception FID where every completed trial has it, else domain-feature FID, else (toys) exact W1. "
        f"Evaluation noise, per seed: {E.MOVED:g} x the difference between two scorings of the seed's own final "
        f"generator (at least {E.MOVED:g} x {R.NOISE_FLOOR} of the quality scale): a seed is read on its own numbers, so adding "
        "seeds never changes another seed's outcome.",
        *R.RULE_SEED,
        f"Concentrated: at most {CONCENTRATED:.0%} of the modes hold confident samples, by every classifier "
        "that can read them (images: the domain CNN and an independent pixel kNN; toys: geometry).",
        f"Converged: the 95% interval of the Theil–Sen trend over the last {LATE:.0%} of training projects at most "
        f"{CONV_TOL} improvement over the last quarter of training (a rate per generator iteration; an interval, "
        "so thinning the evaluations can only widen it).",
        R.rule_cell(a) + (f" This run declared its design before the data: cells are tested at their design size "
                          f"of {design.seeds} seeds at each declared budget ({', '.join(map(str, design.budgets))} "
                          f"generator iterations), at α = {design.alpha_total:.3g}/{len(design.budgets)} each (the α "
                          "its ledger gave this design)." if design.budgets else ""),
        f"Verdict (the claim as the paper states it): *supported* when the WGAN works on every backbone compared "
        f"(each test at α = {a:.3g}) and the GAN fails on at least one of them (α/m over the m backbones: "
        f"Bonferroni for \"at least one\"); *not supported* when on some backbone the GAN works (α) and the WGAN "
        f"fails (α/m: a wrong call needs a wrong WGAN call on some backbone), or the GAN fails somewhere and, on every backbone, the WGAN fails or the GAN works (α/m each); "
        f"else *inconclusive*. Fewer than 2 backbones: never supported.",
        "Which is better where both are decided is information (Welch interval of GAN − WGAN and an exact "
        "permutation p-value), not part of the verdict.",
        "Only cells at the paper's settings for their loss enter the verdict; other swept values of a loss's own "
        "settings are ablations."]


RULE = rule(R.Design())


def quality_table(run) -> pd.DataFrame:
    """One row per cell x quality metric: mean ± std and Student-t interval of the raw metric."""
    rows = []
    for cell, t in cells(run.trials):
        first, done, c = t.iloc[0], t[t["status"] == "completed"], counts(t)
        terminal = c["n_completed"] + c["n_diverged"]
        for key in quality_metrics(run.trials, first["data"]):
            vals = done[key].astype(float) if key in done else pd.Series(math.nan, index=done.index)
            s = summarize(vals)
            bad = c["n_diverged"] + int((~np.isfinite(vals)).sum())
            rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                         "loss": first["loss"], "hue": first["hue"], "cell": cell, "metric": key,
                         "num_samples": t["num_samples"].median() if "num_samples" in t else math.nan,
                         **c, "n_values": s.pop("n"), **s,
                         "failure_rate": bad / terminal if terminal else math.nan,
                         "in_verdict": bool(first["in_verdict"]), "trials": ids(t)})
    return pd.DataFrame(rows)


def state_table(ev: pd.DataFrame, m: int, design: R.Design = R.Design()) -> pd.DataFrame:
    """Per cell: seed outcomes, normalised quality, trend, noise, collapse counts and its state, at α (for
    "every cell" clauses) and at α/m (for "some cell" clauses)."""
    at, bonf = cell_states(ev, design.alpha, design.seeds), cell_states(ev, design.alpha / max(m, 1), design.seeds)
    rows = []
    for cell, t in ev.groupby("cell", sort=False):
        done = t[t["status"] == "completed"]
        s, sb = at[cell], bonf[cell]
        q = summarize(done["q"])
        why_unknown = t.loc[t["outcome"] == R.UNKNOWN, "outcome_why"].value_counts()
        why_failed = t.loc[t["outcome"] == R.FAILED, "outcome_why"].value_counts()
        rows.append({"data": t.iloc[0]["data"], "backbone": t.iloc[0]["backbone"], "group": t.iloc[0]["group"],
                     "loss": t.iloc[0]["loss"], "hue": t.iloc[0]["hue"], "cell": cell, "metric": t.iloc[0]["metric"],
                     "gen_iters": float(np.nanmax(t["gen_iters_total"])) if t["gen_iters_total"].notna().any() else math.nan,
                     "n_trials": len(t), "n_design": s.design,
                     "n_finished": int(t["status"].isin(["completed", "diverged"]).sum()), "n_completed": len(done),
                     "n_good": s.good, "n_failed": s.failed, "n_unknown": s.unknown,
                     "failed_why": "; ".join(f"{n} {w}" for w, n in why_failed.items()),
                     "unknown_why": "; ".join(f"{n} {w}" for w, n in why_unknown.items()),
                     "n_diverged": int((t["status"] == "diverged").sum()),
                     **{f"n_{k.replace(' ', '_')}": int(((t["outcome"] == R.FAILED) & (t["outcome_why"] == k)).sum())
                        for k in R.FAILURE_KINDS if k != R.DIVERGED},
                     "n_collapsed": int((done["collapse"] == True).sum()),  # noqa: E712
                     "n_concentrated": int((done["concentrated"] == True).sum()),  # noqa: E712
                     "ceiling": float(np.nanmedian(done["ceiling"])) if done["ceiling"].notna().any() else math.nan,
                     "floor": float(np.nanmedian(done["floor"])) if done["floor"].notna().any() else math.nan,
                     "q_mean": q["mean"], "q_lo": q["ci_lo"], "q_hi": q["ci_hi"],
                     "final_mean": float(done["final"].mean()), "final_std": float(done["final"].std()),
                     "noise_mean": float(done["noise"].mean()), "trend_median": float(done["trend"].median()),
                     "n_converged": int((done["converged"] == True).sum()),  # noqa: E712
                     "coverage_mean": float(done["coverage"].mean()), "coverage_knn_mean": float(done["coverage_knn"].mean()),
                     "state": s.state, "why": s.why, "need": "; ".join(map(str, s.need)),
                     "needs": s.need, "needs_bonferroni": sb.need,
                     "need_kinds": " ".join(sorted({n.kind for n in s.need})), "state_bonferroni": sb.state,
                     "in_verdict": bool(t["in_verdict"].all()), "trials": ids(t)})
    return pd.DataFrame(rows)


def difference_table(ev: pd.DataFrame) -> pd.DataFrame:
    """GAN − WGAN per group on the deciding metric, raw and normalised: information, not the verdict."""
    rows = []
    for group, sub in ev[ev["status"] == "completed"].groupby("group", sort=False):
        for g_hue, g in sub[sub["loss"] == "gan"].groupby("hue", sort=False):
            for w_hue, w in sub[sub["loss"].isin(VARIANTS)].groupby("hue", sort=False):
                lo, hi = diff_ci(g["final"].to_numpy(float), w["final"].to_numpy(float))
                rows.append({"data": g.iloc[0]["data"], "backbone": g.iloc[0]["backbone"], "group": group,
                             "metric": g.iloc[0]["metric"], "gan": g_hue, "wgan": w_hue,
                             "wgan_loss": w.iloc[0]["loss"],
                             "gan_mean": g["final"].mean(), "wgan_mean": w["final"].mean(),
                             "diff": g["final"].mean() - w["final"].mean(), "diff_ci_lo": lo, "diff_ci_hi": hi,
                             "perm_p": permutation_p(g["final"].to_numpy(float), w["final"].to_numpy(float)),
                             "gan_n": len(g), "wgan_n": len(w),
                             "in_verdict": bool(g["in_verdict"].all() and w["in_verdict"].all()),
                             "trials": ids(g) + " " + ids(w)})
    return pd.DataFrame(rows)


def decide(states: pd.DataFrame, variant: str = "wgan") -> tuple[str, str]:
    """The claim for one Wasserstein variant from cell states (columns group, loss, state,
    state_bonferroni, in_verdict): the variant plays the WGAN's part against the GAN."""
    s = states[states["in_verdict"] & states["loss"].isin(["gan", variant])] if not states.empty else states
    s = s.assign(loss=s["loss"].replace({variant: "wgan"})) if not s.empty else s
    name = LABEL.get(variant, variant)
    groups = [g for g, t in s.groupby("group", sort=False) if {"gan", "wgan"} <= set(t["loss"])]
    if not groups:
        return "inconclusive", "no backbone has both a GAN and a WGAN cell"
    pick = lambda g, loss, col: list(s[(s["group"] == g) & (s["loss"] == loss)][col])  # noqa: E731
    w_works = {g: all(x == "works" for x in pick(g, "wgan", "state")) for g in groups}
    g_works = {g: all(x == "works" for x in pick(g, "gan", "state")) for g in groups}
    g_fails_b = {g: all(x == "fails" for x in pick(g, "gan", "state_bonferroni")) for g in groups}
    g_works_b = {g: all(x == "works" for x in pick(g, "gan", "state_bonferroni")) for g in groups}
    w_fails_b = {g: all(x == "fails" for x in pick(g, "wgan", "state_bonferroni")) for g in groups}
    # "some backbone where the GAN works and the WGAN fails": a wrong call needs a wrong WGAN-fails call on some
    # backbone (Bonferroni); the GAN's call on that same backbone is an intersection, tested at α
    against = [g for g in groups if g_works[g] and w_fails_b[g]]
    if against:
        return "not supported", f"the GAN works and the {name} fails on {', '.join(against)}"
    gan_fails = [g for g in groups if g_fails_b[g]]
    # "the WGAN never works where the GAN fails" is about every backbone where the GAN fails: each one must be
    # settled, the WGAN failing there or the GAN decidedly working (an undecided GAN could hide a counter-example)
    if gan_fails and all(w_fails_b[g] or g_works_b[g] for g in groups):
        return "not supported", f"the {name} fails wherever the GAN fails ({', '.join(gan_fails)})"
    if len(groups) < 2:
        return "inconclusive", "fewer than 2 backbones compared"
    if all(w_works.values()) and gan_fails:  # the WGAN works everywhere, so also where the GAN fails
        return "supported", (f"the {name} works on all {len(groups)} backbones; the GAN fails on "
                             f"{', '.join(gan_fails)}")
    open_ = [g for g in groups if not w_works[g]]
    if not open_ and not gan_fails:
        return "inconclusive", f"the {name} works everywhere, but the GAN fails on no backbone (decidedly)"
    return "inconclusive", "undecided cells: " + ", ".join(
        f"{name} on {g}" for g in open_) + ("" if gan_fails else "; no backbone where the GAN decidedly fails")


def evidence_line(r: pd.Series) -> str:
    failed = f" ({r['failed_why']})" if r["failed_why"] else ""  # the failure kinds: stalled, collapsed, ...
    unknown = f" ({r['unknown_why']})" if r["unknown_why"] else ""
    return (f"`{r['cell']}` at {fmt(r['gen_iters'])} generator iterations: {r['n_good']} good, {r['n_failed']} "
            f"failed{failed}, {r['n_unknown']} unknown{unknown} of {r['n_design']} seeds; normalised quality "
            f"{fmt(r['q_mean'], 2)} (95% interval {fmt(r['q_lo'], 2)} – {fmt(r['q_hi'], 2)}; anchors {fmt(r['floor'])} "
            f"real, {fmt(r['ceiling'])} untrained) → **{r['state']}** ({r['why']})"
            + (f"; would decide it: {r['need']}" if r["need"] else ""))


def time_to_learn(run, ev: pd.DataFrame) -> pd.DataFrame:
    """Per cell and evaluation step: the fraction of seeds whose quality is good (below WORK_Q beyond its own band)
    and the fraction that have left the untrained anchor (below FAIL_Q beyond it), with 95% Clopper-Pearson
    intervals over the seeds evaluated at that step. A stall that half the seeds escape shows as a rising curve
    that stops at one half; a slow start as a late rise. Quality only: coverage is decided at the final step."""
    keys = deciding_metrics(run, run.trials)
    rows = []
    for cell, t in ev[ev["status"].isin(["completed", "diverged"])].groupby("cell", sort=False):
        per_step: dict[float, list[tuple[bool, bool]]] = {}
        for _, r in t.iterrows():
            steps, vals = E.curve(run.metrics.get(r["trial_id"]), keys.get(r["data"]))
            for st, v in zip(steps, vals):
                q = E.normalise(v, r["floor"], r["ceiling"])
                if np.isfinite(q):
                    per_step.setdefault(st, []).append((q + r["band"] < R.WORK_Q, q + r["band"] < R.FAIL_Q))
        first = t.iloc[0]
        for st in sorted(per_step):
            flags = per_step[st]
            n, good, left = len(flags), sum(g for g, _ in flags), sum(lft for _, lft in flags)
            rows.append({"group": first["group"], "backbone": first["backbone"], "loss": first["loss"],
                         "hue": first["hue"], "cell": cell, "step": int(st), "n": n,
                         "good": good / n, **_cp("good", good, n), "left": left / n, **_cp("left", left, n)})
    return pd.DataFrame(rows)


def _cp(name: str, k: int, n: int) -> dict:
    from scipy.stats import beta
    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return {f"{name}_lo": lo, f"{name}_hi": hi}


def kinds_line(r: pd.Series) -> str:
    parts = [f"{int(r[f'n_{k.replace(chr(32), chr(95))}'])} {k}" for k in R.FAILURE_KINDS
             if r.get(f"n_{k.replace(' ', '_')}", 0)]
    return ", ".join(parts)


def claim1(run) -> tuple[dict[str, pd.DataFrame], list[Verdict]]:
    q = quality_table(run)
    ev = trial_evidence(run)
    bev = budget_evidence(run) if not ev.empty else ev.assign(budget=math.nan)
    verdict_ev = ev[ev["in_verdict"]]
    m = max(verdict_ev["group"].nunique(), 1) if not ev.empty else 1
    budgets = list(run.design.budgets) or [None]
    st = pd.concat([state_table(bev if b is None else bev[bev["budget"] == b], m, run.design).assign(budget=b)
                    for b in budgets if b is None or (bev["budget"] == b).any()], ignore_index=True) \
        if not ev.empty else pd.DataFrame()
    d = difference_table(ev) if not ev.empty else pd.DataFrame()
    ttl = time_to_learn(run, ev) if not ev.empty else pd.DataFrame()
    tables = {"claim1_quality": q, "claim1_states": st, "claim1_difference": d, "trial_evidence": ev,
              "claim1_budget_evidence": bev, "claim1_time_to_learn": ttl}
    if st.empty:
        return tables, [Verdict("1", "inconclusive", rule(run.design), [], "no trial to decide on")]
    verdicts = []
    for b in budgets:
        at = st if b is None else st[st["budget"] == b]
        if at.empty:
            for variant in variants_in(run.trials):
                verdicts.append(Verdict("1", "inconclusive", rule(run.design), [],
                                        f"no seed has reached the declared budget of {b} generator iterations yet",
                                        variant, b))
            continue
        for variant in variants_in(run.trials):
            verdict, reason = decide(at, variant)
            mine = at[at["in_verdict"] & at["loss"].isin(["gan", variant])]
            evidence = [evidence_line(r) for _, r in mine.iterrows()]
            for _, r in d[d["in_verdict"]].iterrows() if not d.empty and b == budgets[-1] else []:
                if r["wgan_loss"] != variant:
                    continue
                evidence.append(f"Information, `{r['group']}`, {metric_label(r['metric'])}: GAN {fmt(r['gan_mean'])} vs "
                                f"{r['wgan']} {fmt(r['wgan_mean'])}, Δ = {fmt(r['diff'])} "
                                f"{ci(r['diff_ci_lo'], r['diff_ci_hi'])} (Welch), permutation p = {fmt(r['perm_p'], 2)}")
            evidence.append(f"Seeds: {R.held_out_line(run)}; rules {R.rules_id()['version']} ({R.rules_id()['sha256']}).")
            verdicts.append(Verdict("1", verdict, rule(run.design), evidence, reason, variant, b))
    return tables, verdicts
