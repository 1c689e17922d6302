"""Per-trial evidence (study/report/evidence.py applied to a run), each seed's outcome, and each cell's
state: the rules of study/report/rules.py applied to a run's tables. Computed once per run.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from study.report import evidence as E
from study.report import rules as R
from study.report.cells import N_MODES, as_float, primary_metric


def _get(r: pd.Series, key: str) -> float:
    return as_float(r.get(key, math.nan))


def trial_evidence(run) -> pd.DataFrame:
    """One row per trial: anchors, normalised final quality, late trend, noise, convergence, collapse, outcome.
    Computed once per run (every claim reads it)."""
    if run.evidence is None:
        run.evidence = evidence_table(run, run.trials)
    return run.evidence


def deciding_metrics(run, trials: pd.DataFrame) -> dict:
    """The quality metric each data set is decided on: frozen in the design at round 1 where the run is adaptive
    (a later seed can never switch it), else the registry's precedence over this run's trials."""
    return {d: run.design.metric(d) or primary_metric(trials, d) for d in trials["data"].unique()}


def budget_evidence(run) -> pd.DataFrame:
    """Claim 1's evidence at every declared budget (column `budget`): each seed read from the trial that ended at
    that budget (a continued trial's shorter part included); a seed that diverged earlier stays diverged. A run
    without declared budgets gets one budget: its trials as they are (budget = NaN)."""
    budgets = list(run.design.budgets)
    if not budgets:
        return trial_evidence(run).assign(budget=math.nan)
    frames = [run.trials] + ([run.budget_trials] if run.budget_trials is not None else [])
    every = pd.concat(frames, ignore_index=True)
    every["gen_iters_total"] = [float(run.configs.get(t, {}).get("train.gen_iters", math.nan)) for t in every["trial_id"]]
    keys = deciding_metrics(run, run.trials)
    out = []
    for b in budgets:
        at = every[(every["gen_iters_total"] == b) |
                   ((every["status"] == "diverged") & (every["gen_iters_total"] < b))]
        at = at.sort_values("gen_iters_total").drop_duplicates(["cell", "seed"], keep="last")
        if not at.empty:
            out.append(evidence_table(run, at.drop(columns="gen_iters_total"), keys).assign(budget=b))
    return pd.concat(out, ignore_index=True) if out else trial_evidence(run).iloc[0:0].assign(budget=math.nan)


def evidence_table(run, trials: pd.DataFrame, keys: dict | None = None) -> pd.DataFrame:
    """The evidence of these trials (rows of run.trials or run.budget_trials), each read on its own numbers only:
    its anchors, its curve, its repeat difference (never pooled over a cell: adding a seed must not move another
    seed's band or outcome)."""
    rows = []
    keys = keys or deciding_metrics(run, trials)
    for _, r in trials.iterrows():
        tid, data = r["trial_id"], r["data"]
        key = keys.get(data)
        cfg = run.configs.get(tid, {})
        total = float(cfg.get("train.gen_iters", _get(r, "gen_iters")) or math.nan)
        n = _get(r, "num_samples")
        m = run.metrics.get(tid)
        row = {"trial_id": tid, "cell": r["cell"], "group": r["group"], "data": data, "backbone": r["backbone"],
               "loss": r["loss"], "hue": r["hue"], "seed": r["seed"], "status": r["status"],
               "in_verdict": bool(r["in_verdict"]), "metric": key, "gen_iters_total": total}
        floor, ceiling = E.anchors(m, key, _get(r, f"floor/{key}")) if key else (math.nan, math.nan)
        gap = ceiling - floor
        steps, vals = E.curve(m, key) if key else (np.array([]), np.array([]))
        qs = np.array([E.normalise(v, floor, ceiling) for v in vals])
        trend = E.late_trend(steps, qs, total) if total == total else E.Trend(math.nan, math.nan, math.nan, 0, math.nan)
        noise = _get(r, f"noise/{key}") / gap if gap > 0 else math.nan
        band = E.seed_band(noise)
        ok = np.isfinite(qs)
        row.update(floor=floor, ceiling=ceiling, final=_get(r, key) if key else math.nan,
                   q=E.normalise(_get(r, key), floor, ceiling) if key else math.nan, noise=noise, band=band,
                   trend=trend.improvement, trend_lo=trend.lo, trend_hi=trend.hi, trend_n=trend.n,
                   slope=trend.slope, converged=E.converged(trend),
                   q_first=qs[ok][0] if ok.any() else math.nan, q_last=qs[ok][-1] if ok.any() else math.nan,
                   q_best=float(qs[ok].min()) if ok.any() else math.nan,
                   stalled=E.stalled(qs[ok], band, R.FAIL_Q) if ok.any() else None,
                   moved=E.moved(qs[ok][0], qs[ok][-1], band / E.MOVED) if ok.any() else None)
        row.update(_collapse(r, data, n, m, total))
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("converged", "moved", "collapse", "concentrated", "stalled", "covers", "collapsed",
                "coverage_flat", "knn_disagrees", "coverage_readable"):
        if col in df:  # three-valued: keep Python True/False/None, never numpy bools
            df[col] = pd.Series([None if v is None or v != v else bool(v) for v in df[col]], index=df.index, dtype=object)
    if not df.empty:  # each seed's outcome (study/report/rules.py), read by every claim
        per_seed = [R.seed_outcome(s, q, b, c, k, st, _covers(r), r.get("collapsed"))
                    for (s, q, b, c, k, st), (_, r) in
                    zip(zip(df["status"], df["q"], df["band"], df["converged"], df["concentrated"], df["stalled"]),
                        df.iterrows())]
        df["outcome"], df["outcome_why"] = [o for o, _ in per_seed], [w for _, w in per_seed]
    return df


def _covers(r: pd.Series) -> Optional[bool]:
    """Does the seed cover the modes (claim 3's per-seed decision)? True where the data has no countable modes:
    there is nothing to veto a good seed on."""
    if not np.isfinite(as_float(r.get("n_modes", math.nan))):
        return True
    if "covers" in r.index:
        return r["covers"]
    return {True: False, False: True}.get(r.get("collapse"))  # before per-seed coverage decisions existed


def _collapse(r: pd.Series, data: str, n: float, m: pd.DataFrame | None = None, total: float = math.nan) -> dict:
    """Claim 3's per-seed evidence (evidence.seed_modes): mode coverage by ONE deciding count, read against the
    same count on N real samples (the real floor), with its repeat band and its own late trend. Toys: geometry
    (modes holding high-quality samples). Images: the domain CNN; the pixel kNN's coverage is a sensitivity
    column (coverage_knn, knn_disagrees) and no longer makes a seed unknown. A larger final evaluation
    (eval.final_num_samples: eval/*_final keys) is read where the trial has one.
    Columns: n_modes; coverage (continuous), coverage_band; covers (decidedly >= evidence.COVERAGE: True,
    decidedly below: False, else None); concentrated (decidedly <= evidence.CONCENTRATED of the modes: nearly
    every sample in one or two, whatever the trend; claim 1's failure sign); coverage_flat (its trend interval
    is flat); collapsed (covers False and flat: collapse, not a stall); `collapse`: the same as collapsed (kept
    for older readers)."""
    k = float(N_MODES.get(data, math.nan))
    out = {"n_modes": k, "coverage": math.nan, "coverage_band": math.nan, "coverage_knn": math.nan,
           "knn_disagrees": None, "covers": None, "concentrated": None, "coverage_flat": None, "collapsed": None,
           "collapse": None, "coverage_gain_hi": math.nan, "coverage_readable": None}
    if k != k or r.get("eval/modes_hq") is None:
        return out
    suffix = "_final" if np.isfinite(_get(r, "eval/modes_hq_final")) else ""
    modes = _get(r, f"eval/modes_hq{suffix}")
    if not np.isfinite(modes):  # toys scored before modes_hq existed: PacGAN's count
        modes, suffix = _get(r, "eval/modes"), ""
    if not np.isfinite(modes):
        return out
    n_eval = _get(r, "eval/n_final") if suffix else n
    n_eval = n_eval if np.isfinite(n_eval) else n
    anchor = _get(r, f"floor/eval/modes_hq{suffix}")
    trend = None
    if m is not None and "eval/modes_hq" in m and "step" in m:  # the trend at the per-evaluation N, its own anchor
        a0 = _get(r, "floor/eval/modes_hq")
        a0 = a0 if np.isfinite(a0) and a0 > 0 else k
        steps, modes_curve = E.curve(m, "eval/modes_hq")
        trend = E.coverage_trend(steps, modes_curve / a0, total)
    s = E.seed_modes(modes, anchor, _get(r, f"eval/hq{suffix}") * n_eval, k,
                     _get(r, f"noise/eval/modes_hq{suffix}"), trend)
    out.update(coverage=s.coverage, coverage_band=s.band, covers=s.covers, concentrated=s.concentrated,
               coverage_flat=s.flat, collapsed=s.collapsed, collapse=s.collapsed, coverage_readable=s.readable,
               coverage_gain_hi=trend.hi if trend is not None else math.nan)
    knn = _get(r, "eval/modes_knn")
    if np.isfinite(knn):  # sensitivity: the independent pixel kNN at the per-evaluation N
        out["coverage_knn"] = knn / k
        knn_readable = _get(r, "eval/hq_knn") * n >= E.MIN_CONFIDENT_PER_MODE * k
        out["knn_disagrees"] = (bool((knn / k < E.COVERAGE) != (s.coverage < E.COVERAGE))
                                if knn_readable and s.readable else None)
    return out


def cell_states(ev: pd.DataFrame, alpha: float, design: int | None = None) -> dict[str, R.CellState]:
    """Claim 1's state of every cell of a trial-evidence table at test level alpha. Every trial of a cell
    counts towards its size (an unfinished one as unknown); `design`: the seeds each cell may have."""
    out = {}
    for cell, t in ev.groupby("cell", sort=False):
        total = int(np.nanmax(t["gen_iters_total"])) if t["gen_iters_total"].notna().any() else 0
        s = R.cell_state(list(zip(t["outcome"], t["outcome_why"])), alpha, design, total)
        if t.loc[t["status"].isin(["completed", "diverged"]), "seed"].duplicated().any():
            # e.g. two runs of one seed that differ in a key the cell ignores: replicates must be independent
            s = R.CellState("undecided", "a seed appears twice in this cell: replicates must be independent seeds",
                            [R.Need("none", 0, "split the cell by the key that differs, or drop the duplicate runs")],
                            s.good, s.failed, s.unknown, s.design)
        out[cell] = s
    return out


