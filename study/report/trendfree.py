"""Claim 2's trend-free test: does a loss estimate track sample quality beyond the time trend every seed shares?

Two curves that both improve with training correlate over time whatever one of them measures (the generator
iteration counter "tracks" FID that way). So seeds are compared *at the same evaluation step*:

    quality(s, t) = a_t + b · estimate(s, t) + u_s + ε

with a term a_t per step (the shared trend, any shape) and u_s per seed (a critic's level, a seed's offset).
Both series are first replaced by their ranks across seeds within each step (invariant to any step-wise monotone
map: the clipped critic's scale depends on the clip value and drifts with training), then centred per seed. What
is left is how a seed's standing among its cell's seeds moves over training; b is read as the correlation r of
those two residual panels (unit-free, in [-1, 1]), and per seed as r_s (its own residual curves); its
uncertainty by the jackknife over seeds.

Null: the estimate curves carry no information about which seed's samples are better, so whole curves are
exchangeable between seeds. The permutation p-value permutes whole estimate curves (rows), exactly over all S!
orders when that is few, else over a fixed-seed random subset. A series with no within-step variation (the
iteration counter) has no residual at all: r is NaN, and it is never evidence.

Pure functions of arrays; study/report/claim2.py reads trials into them, the calibration simulates them.
"""
from __future__ import annotations

import math
from functools import lru_cache
from itertools import permutations
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats

WINDOW = 101          # the reference code's running median of the loss, in generator iterations (as the raw rule)
EXACT_PERMS = 40320   # up to 8 seeds (8! orders) the permutation null is exact; beyond, a random subset
RANDOM_PERMS = 5000   # ... of this many orders (Monte Carlo error of p near 0.05: ±0.003)
PERM_SEED = 0         # fixed, so a report re-derives the same p
TINY = 1e-12          # a residual sum of squares at or below this is "no variation" (ranks are exact numbers)


STEP_MEDIAN = "~step_median"  # a column holding step_median of the estimate at each evaluation (published.write_published)


def step_median(steps: np.ndarray, values: np.ndarray, at: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Median of the finite `values` whose step lies within ±window//2 of each step in `at` (steps sorted)."""
    ok = np.isfinite(values)
    steps, values, h = np.asarray(steps)[ok], np.asarray(values)[ok], window // 2
    lo, hi = np.searchsorted(steps, np.asarray(at) - h, "left"), np.searchsorted(steps, np.asarray(at) + h, "right")
    return np.array([float(np.median(values[a:b])) if b > a else math.nan for a, b in zip(lo, hi)])


def eval_curve(df: pd.DataFrame, estimate: str, quality: str, window: int = WINDOW) -> pd.DataFrame:
    """(step, estimate, quality) at a trial's evaluation steps: the estimate is the median of the raw
    per-iteration values within ±window//2 generator iterations of the step (by step, not by row: a metrics.csv
    trimmed to its evaluation rows gives the raw value there). Steps without a raw estimate (iteration 0) are
    dropped."""
    if estimate not in df or quality not in df or "step" not in df or df.empty:
        return pd.DataFrame(columns=["step", "estimate", "quality"])
    if estimate + STEP_MEDIAN in df:  # a published folder's curves carry this very statistic at each evaluation
        d = df[["step", estimate + STEP_MEDIAN, quality]].astype(float).sort_values("step")
        ev = d[np.isfinite(d[quality]) & np.isfinite(d[estimate + STEP_MEDIAN])]
        return pd.DataFrame({"step": ev["step"].to_numpy(), "estimate": ev[estimate + STEP_MEDIAN].to_numpy(),
                             "quality": ev[quality].to_numpy()})
    d = df[["step", estimate, quality]].astype(float).sort_values("step")
    ev = d[np.isfinite(d[quality]) & np.isfinite(d[estimate])]
    est = step_median(d["step"].to_numpy(), d[estimate].to_numpy(), ev["step"].to_numpy(), window)
    return pd.DataFrame({"step": ev["step"].to_numpy(), "estimate": est, "quality": ev[quality].to_numpy()})


def panel(curves: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E, Q, steps): seeds x steps matrices on the evaluation steps every curve has."""
    if not curves:
        return np.empty((0, 0)), np.empty((0, 0)), np.empty(0)
    common = sorted(set.intersection(*(set(c["step"]) for c in curves)))
    idx = [c.drop_duplicates("step", keep="last").set_index("step").loc[common] for c in curves]
    return (np.array([c["estimate"].to_numpy() for c in idx]).reshape(len(curves), len(common)),
            np.array([c["quality"].to_numpy() for c in idx]).reshape(len(curves), len(common)), np.array(common))


def residual(x: np.ndarray) -> np.ndarray:
    """Within-step ranks across seeds (ties averaged), centred per step (a_t) and per seed (u_s)."""
    x = np.asarray(x, float)
    r = stats.rankdata(x, axis=0) - (x.shape[0] + 1) / 2 if x.size else x
    return r - r.mean(axis=1, keepdims=True)


def _r(x: np.ndarray, y: np.ndarray) -> float:
    sxx, syy = float((x * x).sum()), float((y * y).sum())
    return float((x * y).sum() / math.sqrt(sxx * syy)) if sxx > TINY and syy > TINY else math.nan


def trendfree_r(E: np.ndarray, Q: np.ndarray) -> float:
    """b as a correlation: of the estimate's and quality's residual panels (NaN: nothing varies within a step)."""
    return _r(residual(E), residual(Q)) if np.size(E) else math.nan


def per_seed_r(E: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """r_s: the same correlation over one seed's steps (NaN for a seed whose standing never moves)."""
    x, y = residual(E), residual(Q)
    return np.array([_r(a, b) for a, b in zip(x, y)])


@lru_cache(maxsize=16)  # the same orders for every cell of one size: built once
def _orders(n: int, seed: int = PERM_SEED) -> np.ndarray:
    if math.factorial(n) <= EXACT_PERMS:
        return np.array(list(permutations(range(n))))
    rng = np.random.default_rng(seed)
    return np.vstack([np.arange(n), np.array([rng.permutation(n) for _ in range(RANDOM_PERMS - 1)])])


def permutation_p(E: np.ndarray, Q: np.ndarray, seed: int = PERM_SEED) -> float:
    """One-sided p of r under exchangeable estimate curves (whole rows permuted; the identity included, so
    p >= 1/S!). NaN when r is."""
    x, y = residual(E), residual(Q)
    r0 = _r(x, y)
    if r0 != r0:
        return math.nan
    c = x @ y.T   # c[i, j]: estimate curve i against quality curve j; a permutation sums c[perm[j], j]
    sums = c[_orders(len(x), seed), np.arange(len(x))].sum(axis=1)
    return float(np.mean(sums >= (x * y).sum() - TINY))


def first_diff_rho(e: np.ndarray, q: np.ndarray) -> float:
    """Spearman of Δestimate against Δquality between consecutive evaluations of one trial (the simpler view:
    it removes a linear trend, not a curved one)."""
    de, dq = np.diff(np.asarray(e, float)), np.diff(np.asarray(q, float))
    ok = np.isfinite(de) & np.isfinite(dq)
    if ok.sum() < 3 or np.ptp(de[ok]) == 0 or np.ptp(dq[ok]) == 0:
        return math.nan
    return float(stats.spearmanr(de[ok], dq[ok])[0])


def jackknife_se(E: np.ndarray, Q: np.ndarray) -> float:
    """Standard error of r by leaving one seed out at a time (its ranks recomputed without it). The seeds' r_s
    share each step's ranks, so a t-interval of their mean is too narrow (simulated: sd 0.16 for se 0.11 at 5
    seeds); the jackknife sees that dependence and errs wide (0.115 for 0.10 at 10 seeds)."""
    n = len(E)
    loo = np.array([trendfree_r(np.delete(E, i, 0), np.delete(Q, i, 0)) for i in range(n)]) if n >= 3 else []
    loo = np.asarray([x for x in loo if x == x])
    if len(loo) < 3:
        return math.nan
    return float(math.sqrt((len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum()))


def bounds(r: float, se: float, n: int, alpha_lo: float, alpha_hi: float) -> tuple[float, float]:
    """(one-sided lower bound at alpha_lo, upper bound at alpha_hi) of r: Student t with n - 1 df."""
    if not (r == r and se == se) or n < 2:
        return math.nan, math.nan
    return (r - stats.t.ppf(1 - alpha_lo, n - 1) * se, r + stats.t.ppf(1 - alpha_hi, n - 1) * se)


def cell_stats(E: np.ndarray, Q: np.ndarray, sign: int = 1, seed: Optional[int] = PERM_SEED) -> dict:
    """Everything the rule reads from one cell's panel. sign: +1 when lower quality values are better (FID, W1)
    and the estimate should fall with them; -1 flips the estimate."""
    E = sign * np.asarray(E, float)
    if not np.size(E):
        return {"r": math.nan, "r_seeds": np.array([]), "p": math.nan, "se": math.nan, "n_seeds": 0, "n_steps": 0}
    return {"r": trendfree_r(E, Q), "r_seeds": per_seed_r(E, Q), "p": permutation_p(E, Q, seed),
            "se": jackknife_se(E, Q), "n_seeds": len(E), "n_steps": np.shape(E)[1]}
