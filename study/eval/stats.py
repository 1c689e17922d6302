"""Statistics over curves and seeds: median filtering, loss-to-quality correlation, bootstrap CIs.

Pure functions on numbers: no torch, no files.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (NaNs dropped).

    No values: (nan, nan). One value: (v, v), a degenerate interval; with a handful of seeds the
    interval is wide and only approximate (percentile bootstrap under-covers for n < ~10).
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def median_filter(values: Sequence[float], window: int = 101) -> np.ndarray:
    """Centred running median, as the WGAN reference code plots its loss (window 101).

    The window shrinks at the edges (point i uses values[i-h : i+h+1] clipped to the array,
    h = window // 2) and NaNs are ignored; a window with no finite value gives NaN.
    """
    x = np.asarray(values, dtype=float).ravel()
    n, h = len(x), max(int(window), 1) // 2
    if n == 0 or h == 0:
        return x.copy()
    # NaN padding makes the edge windows shrink for free under nanmedian.
    padded = np.concatenate([np.full(h, np.nan), x, np.full(h, np.nan)])
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1)
    out = np.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows -> NaN, on purpose
        for start in range(0, n, 8192):  # chunks bound the temporary copy nanmedian makes
            out[start:start + 8192] = np.nanmedian(views[start:start + 8192], axis=1)
    return out


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan  # undefined for constant input; meaningless for fewer than 3 points
    return float(fn(x, y)[0])


def loss_quality_correlation(df: pd.DataFrame, estimate_key: str, quality_key: str,
                             window: int = 101) -> dict:
    """Spearman's rho and Pearson's r between a loss's divergence estimate and sample quality.

    `df` is a trial's metrics.csv: one row per generator iteration (`step`), train/* on every row,
    eval/* only at evaluation rows. The estimate is median-filtered over the per-iteration curve
    (as the paper plots it), then read at the evaluation steps. Quality is FID or exact W1 (lower is
    better), so an estimate that tracks quality, as the paper claims for WGAN, gives a *positive*
    correlation. NaN when fewer than 3 evaluation points or either series is constant.
    """
    out = {"estimate": estimate_key, "quality": quality_key, "n": 0, "spearman": math.nan, "pearson": math.nan}
    if estimate_key not in df.columns or quality_key not in df.columns or len(df) == 0:
        return out
    d = df.sort_values("step") if "step" in df.columns else df
    raw = d[estimate_key].to_numpy(dtype=float)
    est = median_filter(raw, window)
    qual = d[quality_key].to_numpy(dtype=float)
    # rows without a raw estimate (the untrained generator's step-0 evaluation) have no loss to
    # correlate: the filter would lend them their neighbours' values
    ok = np.isfinite(raw) & np.isfinite(est) & np.isfinite(qual)
    x, y = est[ok], qual[ok]
    out["n"] = int(ok.sum())
    out["spearman"] = _corr(stats.spearmanr, x, y)
    out["pearson"] = _corr(stats.pearsonr, x, y)
    return out


# Small-sample statistics for seeds (n = 3-5). The percentile bootstrap above under-covers badly at
# such n (with 2 seeds it is just their range); Student-t intervals are exact for normal data and
# the permutation test is exact for any distribution.

def t_bound(values: Sequence[float], alpha: float, upper: bool) -> float:
    """One-sided Student-t confidence bound for the mean at level 1 - alpha (nan for n < 2).
    A mean whose upper bound is below a threshold is below it with confidence 1 - alpha."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan
    half = stats.t.ppf(1 - alpha, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() + half if upper else v.mean() - half)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean."""
    a = (1 - level) / 2
    return t_bound(values, a, upper=False), t_bound(values, a, upper=True)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's interval for mean(a) - mean(b) (unequal variances; Welch-Satterthwaite df)."""
    a, b = (np.asarray(x, dtype=float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    d = float(a.mean() - b.mean())
    if se == 0:
        return d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(1 - (1 - level) / 2, df) * se
    return d - half, d + half


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided permutation p-value for a difference in means (every relabelling; at n = 3
    vs 3 there are 20, so p can be no smaller than 0.1: three seeds cannot show a difference at 5%)."""
    from itertools import combinations
    a, b = (np.asarray(x, dtype=float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return math.nan
    pooled, na = np.concatenate([a, b]), len(a)
    observed = abs(a.mean() - b.mean())
    total = hits = 0
    for idx in combinations(range(len(pooled)), na):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        total += 1
        hits += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
    return hits / total
