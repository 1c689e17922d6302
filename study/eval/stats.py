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
    est = median_filter(d[estimate_key].to_numpy(dtype=float), window)
    qual = d[quality_key].to_numpy(dtype=float)
    ok = np.isfinite(est) & np.isfinite(qual)
    x, y = est[ok], qual[ok]
    out["n"] = int(ok.sum())
    out["spearman"] = _corr(stats.spearmanr, x, y)
    out["pearson"] = _corr(stats.pearsonr, x, y)
    return out
