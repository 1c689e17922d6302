"""The report's sections as blocks (see doc.py): tidy tables formatted for reading, next to their
verdicts. The CSVs keep the raw numbers; these tables round them and join mean ± std."""
from __future__ import annotations

import math

import pandas as pd

from study.report.cells import LABEL, Verdict, ci, fmt, metric_label, pm

CLAIMS = {"1": "Claim 1 — WGAN is robust to the choice of architecture",
          "2": "Claim 2 — the WGAN loss tracks sample quality",
          "3": "Claim 3 — no mode collapse with WGAN"}
PAPER = {"1": "Paper §4.3, Figs. 5–7: with a DCGAN generator both losses give good samples; without batch "
              "norm or with an MLP generator the GAN fails while the WGAN still works.",
         "2": "Paper §4.2, Figs. 3–4 (and 8): the WGAN critic's estimate of the EM distance falls as samples "
              "improve (Fig. 3), while the GAN discriminator's JS estimate stays flat near log 2 (Fig. 4).",
         "3": "Paper §4.3: \"In no experiment did we see evidence of mode collapse for the WGAN algorithm.\" "
              "Mode coverage as in VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018)."}


def _rate(x: float) -> str:
    return f"{x:.0%}" if x == x else "–"


def verdict_blocks(vs: list[Verdict]) -> list[tuple]:
    """One verdict per Wasserstein variant in the run (the rule is printed once)."""
    blocks = []
    for v in vs:
        at = f" at {v.budget} generator iterations" if v.budget is not None else ""
        head = [("h", 3, f"{LABEL.get(v.variant, v.variant)} vs GAN{at}")] if len(vs) > 1 else []
        # not part of the verdict: shown here, not first (the across-trial correlations are the section's table)
        info = [e for e in v.evidence if e.startswith(INFORMATION[0])]
        blocks += head + [("verdict", v.verdict, v.reason + " (its numbers: first screen)")]
        blocks += [("ul", info)] if info else []
    return blocks + [("p", "**Rule:**"), ("rule", vs[0].key, vs[0].rule)]


def _col(df: pd.DataFrame, name: str) -> list:
    return list(df[name]) if name in df else []


def _map(df: pd.DataFrame, fn, *names: str) -> list:
    """fn applied row-wise to the named columns (an empty table gives an empty column)."""
    if df.empty or any(n not in df for n in names):
        return []
    return [fn(*vals) for vals in zip(*(df[n] for n in names))]


def _used(flag) -> str:
    return "yes" if flag else "no (ablation)"


def claim1_blocks(tabs: dict, v: list[Verdict], figs: list) -> list[tuple]:
    q, st, d = tabs["claim1_quality"], tabs["claim1_states"], tabs["claim1_difference"]
    sd = pd.DataFrame({
        "cell": _col(st, "cell"), "metric": _map(st, metric_label, "metric"),
        "generator iterations": _map(st, fmt, "gen_iters"),
        "seeds: good / failed / unknown (of design)": _map(
            st, lambda g, f, u, n, fw, uw: f"{g} / {f} / {u} ({n})" + (f"; failed: {fw}" if fw else "")
            + (f"; unknown: {uw}" if uw else ""), "n_good", "n_failed", "n_unknown", "n_design", "failed_why",
            "unknown_why"),
        "anchors (real / untrained)": _map(st, lambda f, c: f"{fmt(f)} / {fmt(c)}", "floor", "ceiling"),
        "normalised quality (95% t interval)": _map(st, lambda m, lo, hi: f"{fmt(m, 2)} ({fmt(lo, 2)} – {fmt(hi, 2)})",
                                                    "q_mean", "q_lo", "q_hi"),
        "noise (normalised)": _map(st, lambda x: fmt(x, 2), "noise_mean"),
        "late trend (per quarter)": _map(st, lambda x: fmt(x, 2), "trend_median"),
        "converged": _map(st, lambda c, n: f"{c}/{n}", "n_converged", "n_finished"),
        "diverged / concentrated / collapsed": _map(st, lambda a, b, c: f"{a} / {b} / {c}", "n_diverged",
                                                    "n_concentrated", "n_collapsed"),
        "state": _map(st, lambda s, w: f"**{s}** ({w})", "state", "why"),
        "would decide it": _col(st, "need"), "in verdict": _map(st, _used, "in_verdict"), "trials": _col(st, "trials")})
    qd = pd.DataFrame({
        "cell": _col(q, "cell"), "metric": _map(q, metric_label, "metric", "num_samples"),
        "seeds (with value / finished)": _map(q, lambda n, c, dv: f"{n}/{c + dv}", "n_values", "n_completed",
                                              "n_diverged"),
        "mean ± std": _map(q, pm, "mean", "std"), "95% CI (t)": _map(q, ci, "ci_lo", "ci_hi"),
        "failed / unfinished": _map(q, lambda f, u: f"{f} / {u}", "n_failed", "n_unfinished"),
        "failure rate": _map(q, _rate, "failure_rate"), "in verdict": _map(q, _used, "in_verdict"),
        "trials": _col(q, "trials")})
    dd = pd.DataFrame({
        "group": _col(d, "group"), "metric": _map(d, metric_label, "metric"),
        "GAN": _map(d, lambda h, m: f"{h}: {fmt(m)}", "gan", "gan_mean"),
        "WGAN": _map(d, lambda h, m: f"{h}: {fmt(m)}", "wgan", "wgan_mean"),
        "Δ = GAN − WGAN": _map(d, fmt, "diff"), "95% Welch interval": _map(d, ci, "diff_ci_lo", "diff_ci_hi"),
        "permutation p": _map(d, lambda p: fmt(p, 2), "perm_p"),
        "seeds": _map(d, lambda a, b: f"{a} vs {b}", "gan_n", "wgan_n"), "trials": _col(d, "trials")})
    blocks = [("h", 2, CLAIMS["1"]), ("p", PAPER["1"])] + verdict_blocks(v)
    blocks += [("table", sd, "Does each loss work on each backbone? (the verdict's input)", "claim1_states.csv"),
               ("table", qd, "Final quality per cell, every metric (completed trials; lower is better)", "claim1_quality.csv"),
               ("table", dd, "GAN − WGAN on the deciding metric (information: positive = WGAN better)", "claim1_difference.csv")]
    return blocks + [("img", p, c) for p, c in figs]


def claim2_blocks(tabs: dict, v: list[Verdict], figs: list) -> list[tuple]:
    c, a = tabs["claim2_correlation"], tabs["claim2_across_trials"]
    with_p = lambda r, p: f"{fmt(r, 2)} ({fmt(p, 2)})"
    cd = pd.DataFrame({
        "cell": _col(c, "cell"), "estimate": _map(c, metric_label, "estimate"),
        "quality": _map(c, metric_label, "quality"),
        "seeds x steps": _map(c, lambda n, t: f"{n} x {t}", "n_seeds", "n_steps"),
        "trend-free r [bounds]": _map(c, lambda m, lo, hi: f"{fmt(m, 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}]", "r_tf",
                                      "r_lo_bound", "r_hi_bound"),
        "mean r_s": _map(c, lambda x: fmt(x, 2), "r_seeds_mean"),
        "permutation p": _map(c, lambda x: fmt(x, 2), "p_perm"),
        "outcome": _map(c, lambda o, w: f"{o} ({w})", "outcome", "why"),
        "raw ρ over training (trend included)": _map(c, lambda m, s_: pm(m, s_, 2), "rho_mean", "rho_std"),
        "ρ of first differences": _map(c, lambda x: fmt(x, 2), "rho_first_diff_mean"),
        "in verdict": _map(c, _used, "in_verdict"), "trials": _col(c, "trials")})
    ad = pd.DataFrame({
        "data": _col(a, "data"), "loss": _map(a, lambda x: LABEL.get(x, str(x)), "loss"),
        "final estimate": _map(a, metric_label, "estimate"), "final quality": _map(a, metric_label, "quality"),
        "trials (n)": _col(a, "n"), "Spearman ρ (p)": _map(a, with_p, "spearman", "spearman_p"),
        "Pearson r (p)": _map(a, with_p, "pearson", "pearson_p"), "backbones": _col(a, "backbones"),
        "trials": _col(a, "trials")})
    blocks = [("h", 2, CLAIMS["2"]), ("p", PAPER["2"])] + verdict_blocks(v)
    blocks += [("table", cd, "The trend-free test per cell: seeds compared at the same evaluation step (ranks "
                             "among seeds, centred per seed; r > 0: a seed's estimate falls as its samples get better "
                             "than the other seeds'); raw ρ over training for comparison (per trial: "
                             "tables/claim2_trials.csv)", "claim2_correlation.csv"),
               ("table", ad, "Across trials: final estimate vs final quality, all completed trials of one loss",
                "claim2_across_trials.csv")]
    return blocks + [("img", p, cap) for p, cap in figs]


def calibration_line(cal: pd.DataFrame) -> str:
    """Claim 3's calibration at the study's design (calibrate.claim3_at_design), one sentence beside its decision:
    per truth, how often the rule gives the right answer and how often a wrong one (at a borderline truth every
    decision is wrong)."""
    rows = "; ".join(f"{r.truth}: wrongly decided {100 * r.wrong:.1f}%" if r.right_answer == "none" else
                     f"{r.truth}: {r.right_answer} {100 * r.right:.1f}% (wrong {100 * r.wrong:.1f}%)"
                     for r in cal.itertuples())
    return (f"**Calibration at this design** ({int(cal['seeds'].iloc[0])} seeds, {int(cal['reps'].iloc[0])} simulated "
            f"studies per truth; [CSV](tables/claim3_calibration.csv)): {rows}.")


def claim3_blocks(tabs: dict, v: list[Verdict], figs: list) -> list[tuple]:
    from study.report.claim3 import PUBLISHED
    m = tabs["claim3_modes"]
    blocks = [("h", 2, CLAIMS["3"]), ("p", PAPER["3"])] + verdict_blocks(v)
    if m.empty:
        return blocks + [("p", "No trial reported mode metrics (`eval/modes`, `eval/mode_kl`).")]
    pct = lambda a, b: pm(100 * a, 100 * b) + "%" if a == a else "–"  # noqa: E731
    md = pd.DataFrame({
        "cell": _col(m, "cell"),
        "coverage vs real anchor (mean ± sd)": _map(m, pct, "coverage_mean", "coverage_std"),
        "one-sided bounds": _map(m, lambda a, b: ci(100 * a, 100 * b, 3) if a == a else "–", "coverage_lo", "coverage_hi"),
        "pixel kNN (sensitivity)": _map(m, lambda a, b, n: pct(a, b) + (f", disagrees on {n}" if a == a else ""),
                                        "coverage_knn_mean", "coverage_knn_std", "n_knn_disagrees"),
        "density / coverage (Naeem 2020, domain features)": _map(
            m, lambda a, b, c, d: f"{pm(a, b)} / {pct(c, d)}" if a == a else "–",
            "density_mean", "density_std", "prdc_coverage_mean", "prdc_coverage_std"),
        "covers / low / unknown": _map(m, lambda a, b, d, n: f"{a} / {b} / {d - a - b} of {d}", "n_covers", "n_low",
                                       "design", "n_values"),
        "collapsed (low and flat) / concentrated": _map(m, lambda a, b: f"{a} / {b}", "n_collapsed", "n_concentrated"),
        "not counted (diverged / failed / unfinished)": _map(m, lambda a, b, c: f"{a} / {b} / {c}",
                                                             "n_diverged", "n_failed", "n_unfinished"),
        "outcome": _col(m, "outcome"), "would decide it": _col(m, "need"),
        "in verdict": _map(m, _used, "in_verdict"), "collapsed trials": _col(m, "collapsed_trials"),
        "trials": _col(m, "trials")})
    # PacGAN Table 1's columns (their ± is a standard error; ours: sd over seeds, s.e. beside it)
    pac = pd.DataFrame({
        "cell": _col(m, "cell"), "seeds": _col(m, "n_values"),
        "modes (PacGAN: >= 1 high-quality sample), mean ± sd": _map(
            m, lambda x, s, k: pm(x, s) + (f" of {int(k)}" if k == k else ""), "modes_mean", "modes_std", "n_modes"),
        "modes, s.e.": _map(m, lambda x: fmt(x, 2), "modes_se"),
        "high-quality %, mean ± sd": _map(m, pm, "hq_pct_mean", "hq_pct_std"),
        "reverse KL (nats), mean ± sd": _map(m, pm, "kl_mean", "kl_std")})
    theirs = pd.DataFrame([r for r in PUBLISHED if r["data"] in set(m["data"])]).rename(columns={
        "source": "theirs: source and settings", "modes": "modes", "hq": "high-quality %", "kl": "reverse KL"})
    cal = tabs.get("claim3_calibration")
    if cal is not None and len(cal):
        blocks.append(("p", calibration_line(cal)))
    blocks += [("table", md, "Claim 3's rule per cell: coverage of the deciding count against the same count on N "
                             "real samples (completed trials; the design counts every seed the cell may have)", "claim3_modes.csv"),
               ("table", pac, "PacGAN-style table per cell (ours; mean ± sd over seeds, PacGAN reports ± s.e.)")]
    if not theirs.empty:
        blocks.append(("table", theirs, "Published numbers, THEIRS, at their settings (VEEGAN's mixtures: ring σ = "
                                        "0.01 on the unit circle, grid σ = 0.05 on {-4..4}²; ours are gan_toy.py's, "
                                        "σ = 0.0141 and 0.0177 after its rescaling; stacked MNIST: 26,000 samples)"))
    return blocks + [("img", p, c) for p, c in figs]


def compute_blocks(comp: pd.DataFrame, figs: list) -> list[tuple]:
    num = {"wall s (mean)": "wall_s_mean", "wall s (total)": "wall_s_total", "of which eval s (mean)": "eval_s_mean",
           "generator iters (mean)": "gen_iters_mean", "critic iters (mean)": "critic_iters_mean",
           "gen it/s": "gen_it_per_s", "gen it/s excl. eval": "train_gen_it_per_s"}
    cd = pd.DataFrame({"cell": _col(comp, "cell"), "trials run": _col(comp, "n_ran"),
                       **{label: _map(comp, fmt, key) for label, key in num.items()},
                       "device": _col(comp, "device"), "trials": _col(comp, "trials")})
    return [("h", 2, "Compute"),
            ("p", "Per cell, over every trial that ran (any status). Rates are generator iterations divided by "
                  "the trial's wall time; a WGAN iteration includes its critic iterations (n_critic, and 100 "
                  "during warm-up)."),
            ("table", cd, "Wall time and speed per cell", "compute.csv")] + [("img", p, c) for p, c in figs]


def trials_blocks(t: pd.DataFrame) -> list[tuple]:
    show = t.copy()
    for col in ("gen_iters", "wall_s"):
        if col in show:
            show[col] = [fmt(x, 4) for x in show[col]]
    return [("h", 2, "Appendix — every trial"),
            ("p", "Every trial directory found (and every trial results.csv lists without a directory), with its "
                  "status and any problem reading its files. Sections above count these; none is dropped."),
            ("table", show, "All trials", "trials.csv")]


# ---------------------------------------------------------------- the first screen (claims, verdicts, numbers)
# Per claim, what its own cell table adds to the shared columns (claim 1's states): label -> (columns, format).
# Columns a claim module adds later show up in its CSV; here only the ones a reader needs to see the verdict.
CLAIM_COLUMNS = {
    "2": {"ρ mean ± sd": (("rho_mean", "rho_std"), lambda m, s: pm(m, s, 2)),
          "converged": (("n_converged", "n_completed"), lambda c, n: f"{c}/{n}")},
    "3": {"coverage (CNN)": (("coverage_mean", "coverage_std"), lambda a, b: pm(100 * a, 100 * b) + "%"),
          "collapse / none / undecided": (("n_collapsed", "n_no_collapse", "n_undecided"),
                                          lambda a, b, c: f"{a} / {b} / {c}")},
}
CLAIM_TABLES = {"2": "claim2_correlation", "3": "claim3_modes"}
INFORMATION = ("Information", "Across trials")  # evidence lines that are not part of a verdict


def claim_table(v: Verdict, tabs: dict) -> pd.DataFrame:
    """One row per verdict cell of the GAN and the variant judged: budget, the deciding metric's mean ± sd,
    normalised quality, seed outcomes and the cell's state (claims 2/3: their own outcome beside it)."""
    st, q = tabs.get("claim1_states", pd.DataFrame()), tabs.get("claim1_quality", pd.DataFrame())
    if st.empty:
        return pd.DataFrame()
    st = st[st["in_verdict"] & st["loss"].isin(["gan", v.variant])]
    if v.claim != "1" and "budget" in st and st["budget"].notna().any():  # claims 2/3: the last declared budget
        st = st[st["budget"] == st["budget"].max()]
    raw = {(r["cell"], r["metric"]): pm(r["mean"], r["std"]) for _, r in q.iterrows()} if not q.empty else {}
    df = pd.DataFrame({
        "cell": list(st["cell"]), "budget (gen. iters)": _map(st, fmt, "gen_iters"),
        # at the row's own budget where the table has it (a declared design reads each seed at every budget)
        "metric mean ± sd": [f"{metric_label(m)}: " + (pm(fm, fs) if fm == fm else raw.get((c, m), '–'))
                             for c, m, fm, fs in zip(st["cell"], st["metric"], st.get("final_mean", [math.nan] * len(st)),
                                                     st.get("final_std", [math.nan] * len(st)))],
        "normalised quality (95% CI)": _map(st, lambda m, lo, hi: f"{fmt(m, 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}]",
                                            "q_mean", "q_lo", "q_hi"),
        "good / failed / unknown (of design)": _map(st, lambda g, f, u, n, k: f"{g} / {f} / {u} ({n})"
                                                   + (f"; failed: {k}" if k else ""), "n_good", "n_failed",
                                                   "n_unknown", "n_design", "failed_why"),
        # the why of a decided state (its p-value); an undecided one's counts are in the column beside it
        "state": _map(st, lambda s, w: f"**{s}**" + (f" ({w})" if v.claim == "1" and s != "undecided" else ""),
                      "state", "why")})
    own = tabs.get(CLAIM_TABLES.get(v.claim, ""), pd.DataFrame())
    if not own.empty and "cell" in own:
        by_cell = own.set_index("cell")
        for label, (cols, f) in CLAIM_COLUMNS.get(v.claim, {}).items():
            if all(c in by_cell for c in cols):
                df[label] = [f(*(by_cell.at[c, k] for k in cols)) if c in by_cell.index else "–" for c in df["cell"]]
        if "outcome" in by_cell:
            df[f"claim {v.claim} outcome"] = [f"**{by_cell.at[c, 'outcome']}**" if c in by_cell.index else "–"
                                              for c in df["cell"]]
    return df


def first_screen_blocks(verdicts: list[Verdict], tabs: dict) -> list[tuple]:
    """Each claim's verdict (claim 1: at each declared budget, side by side), the branch of its rule that fired,
    the numbers that decided it and one cell table (cell x budget)."""
    blocks: list[tuple] = [("h", 2, "Verdicts")]
    groups: dict[tuple, list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault((v.claim, v.variant), []).append(v)
    for vs in groups.values():
        v = vs[-1]
        table = claim_table(v, tabs)
        # the table holds each cell's numbers: its per-cell evidence lines would say them twice (the claim's own
        # section below keeps them)
        shown = tuple(f"`{c}`" for c in table.get("cell", []))
        if len(vs) == 1:
            head, because = f": **{v.verdict}**", [f"Because {v.reason}."] if v.reason else []
        else:
            head = ": " + "; ".join(f"**{x.verdict}** at {x.budget}" for x in vs)
            because = [f"At {x.budget} generator iterations: {x.verdict}, because {x.reason}." for x in vs]
        # what decided it only: information (GAN vs WGAN differences, across-trial correlations) stays in its section
        lines = list(dict.fromkeys(e for x in vs for e in x.evidence if not (shown and e.startswith(shown))
                                   and not e.startswith(INFORMATION)))
        blocks += [("h", 3, CLAIMS[v.claim] + v.title_suffix + head)]
        blocks += [("ul", because + lines)] if because or lines else []
        blocks += [("table", table, "")]
    return blocks


def provenance_blocks(prov: dict, run) -> list[tuple]:
    """A published folder's header: command, commit, tree, hardware, versions, wall time (provenance.json)."""
    hw, ver = prov.get("hardware") or {}, prov.get("versions") or {}
    gpus = ", ".join(hw.get("gpus") or []) or "none"
    trial_h = float(run.trials["wall_s"].astype(float).sum()) / 3600
    lines = [f"**Command:** `{prov.get('command', '?')}`",
             f"**Commit:** `{prov.get('commit') or 'unknown (not a git checkout)'}`"
             + (" — **built with --allow-dirty**: " + (
                 "these paths differed from the commit: " + ", ".join(f"`{p}`" for p in prov["dirty_paths"][:8])
                 + (f" and {len(prov['dirty_paths']) - 8} more" if len(prov["dirty_paths"]) > 8 else "")
                 if prov.get("dirty_paths") else "yet the tree was clean") if prov.get("allow_dirty")
                else ", a clean tree (tracked and untracked files; results/ aside)"),
             f"**Spec:** `{(prov.get('spec') or {}).get('file')}` (sha256 `{(prov.get('spec') or {}).get('sha256', '')[:16]}…`, "
             "copied to `data/spec.yaml`; as run: `data/sweep.yaml`)",
             f"**Hardware:** {hw.get('cpu')}, {hw.get('cores')} cores, {hw.get('memory_gib')} GiB; GPU: {gpus}",
             f"**Wall time:** {prov.get('wall_s', 0) / 60:.1f} min over {len(prov.get('invocations') or [])} "
             f"invocation(s); {trial_h:.2f} trial hours over {len(run.trials)} trials (a continued trial counts its "
             "whole training)",
             "**Versions:** " + ", ".join(f"{k} {v}" for k, v in ver.items() if v),
             "**Re-derive:** `python -m study.report <this folder>`; **re-run:** `python -m study.verify <this folder> "
             "--rerun 2`"]
    return [("ul", lines)]
