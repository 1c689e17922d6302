"""Per-trial evidence (study/report/evidence.py applied to a run) and the per-cell rules every claim
shares: when a cell *works*, *fails* or is *undecided*, and what would decide an undecided one.

Cell rules are pure functions of per-seed numbers, so the report and the simulation that
calibrates them (study/report/calibrate.py) run the very same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from scipy.stats import binom

from study.eval.stats import t_bound
from study.report import evidence as E
from study.data import DATASETS
from study.report.cells import N_MODES, as_float, primary_metric

ALPHA = 0.04     # error rate of each one-sided test (a cell on a threshold is decided with at most this
                 # probability; 0.04 leaves the simulated rates a margin under 5%); "some cell" clauses: α/m
MIN_SEEDS = 3    # finished seeds a decided cell needs: 2 seeds give a t-interval with 1 degree of freedom
WORK_Q = 0.5     # a cell works when its mean normalised quality is below this with confidence 1 - alpha:
                 # it closed more than half the distance from the untrained generator to real data...
FAIL_Q = 0.9     # ...and fails when it is above this (closed less than a tenth: no learning). In between,
                 # quality alone decides nothing.
# Failures (a seed that diverged, or collapsed once converged) are counts, tested as binomial rates:
RARE = 0.05      # a cell "fails" when its failures reject a rate this low (binomial tail <= alpha)...
OFTEN = 0.5      # ...and "works" only with enough seeds and none failing to exclude a rate this high
                 # ((1 - OFTEN)^n <= alpha: 5 seeds at alpha = 0.04). Rates in between cannot be told
                 # apart with a handful of seeds: such a cell stays undecided, whatever its quality.
MAX_SEEDS = 30   # the largest seed count a "what would decide it" estimate proposes


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
    for col in ("converged", "moved", "collapse"):  # three-valued: keep Python True/False/None, never numpy bools
        if col in df:
            df[col] = pd.Series([None if v is None or v != v else bool(v) for v in df[col]], index=df.index, dtype=object)
    return df


def _collapse(r: pd.Series, data: str, n: float) -> dict:
    """Mode coverage by every independent count the trial has: toys by geometry (modes with
    high-quality samples), images by the domain CNN and the pixel kNN over confident samples."""
    k = float(N_MODES.get(data, math.nan))
    out = {"n_modes": k, "coverage": math.nan, "coverage_knn": math.nan, "collapse": None}
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
    return out


@dataclass
class CellState:
    state: str                     # works | fails | undecided
    why: str
    need: list[str] = field(default_factory=list)  # what would decide an undecided cell
    mean_q: float = math.nan
    q_hi: float = math.nan         # one-sided upper bound of the mean at the level used
    q_lo: float = math.nan


def cell_state(q: np.ndarray, n_finished: int, n_events: int, n_unknown: int, converged: list,
               alpha: float = ALPHA) -> CellState:
    """Claim 1's cell rule. q: normalised final quality of each completed seed; n_events: seeds that
    diverged or collapsed; n_unknown: completed seeds whose collapse could not be decided;
    converged: per completed seed, True/False/None."""
    q = np.asarray([x for x in q if x == x], float)
    mean = float(q.mean()) if len(q) else math.nan
    hi, lo = t_bound(q, alpha, upper=True), t_bound(q, alpha, upper=False)
    st = lambda s, why, need=(): CellState(s, why, list(need), mean, hi, lo)  # noqa: E731
    if n_finished < MIN_SEEDS:
        return st("undecided", f"{n_finished} finished seeds (a decided cell needs {MIN_SEEDS})",
                  [f"{MIN_SEEDS - n_finished} more seed(s)"])
    if binom.sf(n_events - 1, n_finished, RARE) <= alpha:
        return st("fails", f"{n_events} of {n_finished} seeds diverged or collapsed (a failure rate of "
                           f"{RARE:.0%} or less is rejected, binomial p ≤ {alpha:.3g})")
    if len(q) < MIN_SEEDS:
        return st("undecided", f"{len(q)} seeds with a normalised quality (anchors missing?)",
                  ["re-run with evaluation at iteration 0 (anchors)"])
    clean = clean_seeds_needed(alpha)
    if n_events == 0 and n_unknown == 0 and hi < WORK_Q:
        if n_finished >= clean:
            return st("works", f"mean normalised quality {mean:.2f}, upper {1 - alpha:.1%} bound {hi:.2f} < "
                               f"{WORK_Q}; no failure in {n_finished} seeds (a rate of {OFTEN:.0%} is excluded)")
        return st("undecided", f"quality good (bound {hi:.2f} < {WORK_Q}) and no failure, but {n_finished} seeds "
                               f"cannot exclude a {OFTEN:.0%} failure rate", [f"{clean - n_finished} more seed(s) "
                               f"(a 'works' call needs {clean} without a failure)"])
    if lo > FAIL_Q:
        if all(c is True for c in converged):
            return st("fails", f"mean normalised quality {mean:.2f}, lower bound {lo:.2f} > {FAIL_Q}")
        return st("undecided", f"quality bound {lo:.2f} > {FAIL_Q} but not every seed converged",
                  ["train longer until the late trend is flat"])
    return st("undecided", *_why_undecided(q, mean, hi, n_events, n_unknown, alpha))


def clean_seeds_needed(alpha: float) -> int:
    """Seeds without a failure that exclude a failure rate of OFTEN at level alpha: (1 - OFTEN)^n <= alpha."""
    return math.ceil(math.log(alpha) / math.log(1 - OFTEN) - 1e-9)


def _why_undecided(q: np.ndarray, mean: float, hi: float, n_events: int, n_unknown: int,
                   alpha: float) -> tuple[str, list[str]]:
    reasons, need = [], []
    if n_events:
        reasons.append(f"{n_events} seed(s) diverged or collapsed (too few to reject a {RARE:.0%} failure rate)")
        need.append("more seeds, to tell a rare failure from a systematic one")
    if n_unknown:
        reasons.append(f"collapse undecided on {n_unknown} seed(s) (classifiers disagree or too few confident samples)")
        need.append("more samples per evaluation, or longer training so that samples become recognisable")
    if mean < WORK_Q <= hi:
        reasons.append(f"mean normalised quality {mean:.3f} < {WORK_Q}, but its bound {hi:.3f} is not")
        n = seeds_needed(q, WORK_Q - mean, alpha)
        need.append(f"about {n} seeds at this spread" if n else f"more than {MAX_SEEDS} seeds at this spread, or "
                    "longer training to move the mean away from the threshold")
    elif WORK_Q <= mean <= FAIL_Q:
        reasons.append(f"mean normalised quality {mean:.2f} between {WORK_Q} and {FAIL_Q}")
    return "; ".join(reasons) or "no branch of the rule applies", need


def seeds_needed(q: np.ndarray, margin: float, alpha: float) -> Optional[int]:
    """Seeds n at which the t bound, at the observed spread, clears a threshold `margin` away."""
    from scipy import stats
    s = float(np.std(q, ddof=1)) if len(q) > 1 else math.nan
    if not (s == s and margin > 0):
        return None
    for n in range(MIN_SEEDS, MAX_SEEDS + 1):
        if stats.t.ppf(1 - alpha, n - 1) * s / math.sqrt(n) < margin:
            return n
    return None


def iterations_needed(ev: pd.DataFrame, target: float = WORK_Q) -> Optional[int]:
    """Generator iterations, at the cell's median late trend, until its mean quality reaches target."""
    slopes = ev["slope"].astype(float)
    slope = float(np.nanmedian(slopes)) if slopes.notna().any() else math.nan
    gap = float(np.nanmean(ev["q"].astype(float))) - target
    if not (slope == slope and slope < 0 and gap > 0):
        return None
    return int(math.ceil(gap / -slope / 100.0) * 100)


def cell_states(ev: pd.DataFrame, alpha: float) -> dict[str, CellState]:
    """Claim 1's state of every cell of a trial-evidence table at test level alpha."""
    out = {}
    for cell, t in ev.groupby("cell", sort=False):
        done = t[t["status"] == "completed"]
        finished = t[t["status"].isin(["completed", "diverged"])]
        labelled = done["n_modes"].notna().any()
        # collapse counts as a failure only on a converged seed: missing modes may be not yet learned
        collapsed = (done["collapse"] == True) & (done["converged"] == True)  # noqa: E712
        events = int((t["status"] == "diverged").sum() + collapsed.sum())
        unknown = int((done["collapse"].isna() | ((done["collapse"] == True) & ~collapsed)).sum()) if labelled else 0  # noqa: E712
        s = cell_state(done["q"].to_numpy(float), len(finished), events, unknown, list(done["converged"]), alpha)
        if finished["seed"].duplicated().any():  # e.g. two runs of one seed that differ in a key the cell ignores
            s = CellState("undecided", "a seed appears twice in this cell: replicates must be independent seeds",
                          ["split the cell by the key that differs, or drop the duplicate runs"], s.mean_q, s.q_hi, s.q_lo)
        if s.state == "undecided" and (done["converged"] == False).any():  # noqa: E712
            it = iterations_needed(done)
            total = float(np.nanmax(done["gen_iters_total"]))
            trend = float(np.nanmedian(done["trend"]))
            s.need.append(f"about {it} more generator iterations at the current trend" if it else
                          f"longer training (≥ {2 * total:.0f} generator iterations): the late trend still improves "
                          f"{trend:.3f} per quarter of training, converged is ≤ {E.CONV_TOL}")
        out[cell] = s
    return out
