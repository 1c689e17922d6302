"""Per-trial evidence (study/report/evidence.py applied to a run), each seed's outcome, and each cell's
state: the rules of study/report/rules.py applied to a run's tables. Computed once per run.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.report import evidence as E
from study.report import rules as R
from study.data import DATASETS
from study.report.cells import N_MODES, as_float, primary_metric


def _get(r: pd.Series, key: str) -> float:
    return as_float(r.get(key, math.nan))


def trial_evidence(run) -> pd.DataFrame:
    """One row per trial: anchors, normalised final quality, late trend, noise, convergence, collapse.
    Computed once per run (every claim reads it)."""
    if run.evidence is None:
        run.evidence = _trial_evidence(run)
    return run.evidence


def _trial_evidence(run) -> pd.DataFrame:
    rows = []
    keys = {d: primary_metric(run.trials, d) for d in run.trials["data"].unique()}  # one per data set
    for _, r in run.trials.iterrows():
        tid, data = r["trial_id"], r["data"]
        key = keys[data]
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
        row.update(floor=floor, ceiling=ceiling, final=_get(r, key) if key else math.nan,
                   q=E.normalise(_get(r, key), floor, ceiling) if key else math.nan, noise=noise,
                   trend=trend.improvement, trend_lo=trend.lo, trend_hi=trend.hi, trend_n=trend.n,
                   slope=trend.slope, converged=E.converged(trend),
                   q_first=qs[np.isfinite(qs)][0] if np.isfinite(qs).any() else math.nan,
                   q_last=qs[np.isfinite(qs)][-1] if np.isfinite(qs).any() else math.nan)
        row.update(_collapse(r, data, n))
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:  # noise pooled over each cell's seeds, then each trial's curve is judged against it
        pooled = df.groupby("cell")["noise"].transform(E.pooled_noise)
        df["moved"] = [E.moved(a, b, n) for a, b, n in zip(df["q_first"], df["q_last"], pooled)]
        df["band"] = E.MOVED * pooled  # a seed's quality is read against a threshold with this margin
    for col in ("converged", "moved", "collapse", "concentrated"):  # three-valued: keep Python True/False/None, never numpy bools
        if col in df:
            df[col] = pd.Series([None if v is None or v != v else bool(v) for v in df[col]], index=df.index, dtype=object)
    if not df.empty:  # each seed's outcome (study/report/rules.py), read by every claim
        per_seed = [R.seed_outcome(s, q, b, c, k) for s, q, b, c, k in
                    zip(df["status"], df["q"], df["band"], df["converged"], df["concentrated"])]
        df["outcome"], df["outcome_why"] = [o for o, _ in per_seed], [w for _, w in per_seed]
    return df


def _collapse(r: pd.Series, data: str, n: float) -> dict:
    """Mode coverage by every independent count the trial has: toys by geometry (modes with
    high-quality samples), images by the domain CNN and the pixel kNN over confident samples."""
    k = float(N_MODES.get(data, math.nan))
    out = {"n_modes": k, "coverage": math.nan, "coverage_knn": math.nan, "collapse": None, "concentrated": None}
    if k != k:
        return out
    if r.get("eval/modes_hq") is not None and np.isfinite(_get(r, "eval/modes_hq")):
        cov = [_get(r, "eval/modes_hq") / k, _get(r, "eval/modes_knn") / k]
        conf = [_get(r, "eval/hq") * n, _get(r, "eval/hq_knn") * n]
        out.update(coverage=cov[0], coverage_knn=cov[1])
    elif DATASETS.get(data).kind == "points" if data in DATASETS else False:  # toys: geometry, no classifier
        m = _get(r, "eval/modes_hq")
        cov, conf = [(m if m == m else _get(r, "eval/modes")) / k], [_get(r, "eval/hq") * n]
        out["coverage"] = cov[0]
    else:  # images scored before confident counts existed: one classifier's argmax cannot decide collapse
        return out
    out["collapse"] = E.collapse(cov, conf, k)
    out["concentrated"] = E.concentrated(cov, conf, k)
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


