"""What one trial's curves say, independent of how often it was evaluated: anchored quality,
late trend, measured noise, convergence, mode collapse. Pure functions on numbers and frames.

Anchors. Quality q (FID, W1: lower is better) is read between two measured anchors of the same
trial and evaluator: the *floor*, the metric of N real samples (the best a generator can score at
this N), and the *ceiling*, the metric of the untrained generator at generator iteration 0.
  normalised q = (q - floor) / (ceiling - floor): 0 = as good as real data, 1 = no learning.
Everything below that has a threshold has it on this scale, so one rule fits FID on any extractor,
image size or N, and W1 on the toys.

Trend. "Still improving" is a rate against generator iterations, never a change per evaluation:
the Theil-Sen slope (robust to single noisy evaluations) over the evaluations in the last half of
training, times a quarter of training: the improvement the trend projects over the last quarter.
Evaluating twice as often gives the same slope, up to noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats

LATE = 0.5        # the trend is fitted on the evaluations in this last fraction of training
MIN_LATE = 5      # evaluations a trend's interval needs in that window: with 3 or 4, Theil-Sen's 95% interval is
                  # the spread of a handful of pairwise slopes, and can come out narrower than with more points
CONV_TOL = 0.02   # projected improvement over the last quarter of training (normalised) that still counts
                  # as converged: 2% of the distance from untrained to real
MOVED = 3.0       # a curve "moved" when its first and last evaluations (after iteration 0) differ by more than
                  # this many repeat differences, pooled over the cell's seeds (the sd of a difference of two
                  # evaluations): pure noise gets there 0.3% of the time, however often the trial was evaluated
COVERAGE = 0.75   # a trial covering fewer than this fraction of modes (by every classifier) has collapsed
CONCENTRATED = 0.25  # ...and one covering at most this fraction (2 of 10 digits, 2 of 8 toy modes) has plainly
                     # failed: "nearly every sample in one or two modes" whatever its FID
MIN_CONFIDENT_PER_MODE = 10  # confident samples per mode a coverage count needs to mean anything


def anchors(metrics: Optional[pd.DataFrame], key: str, floor: float) -> tuple[float, float]:
    """(floor, ceiling): the real floor as measured by the evaluator, and the metric at generator
    iteration 0. Ceiling is nan for runs written before iteration 0 was evaluated."""
    ceiling = math.nan
    if metrics is not None and key in metrics and "step" in metrics:
        v = metrics.loc[metrics["step"] == 0, key].dropna()
        ceiling = float(v.iloc[0]) if len(v) else math.nan
    return floor, ceiling


def normalise(value: float, floor: float, ceiling: float) -> float:
    if not (np.isfinite(floor) and np.isfinite(ceiling)) or ceiling <= floor or value is None:
        return math.nan
    return (float(value) - floor) / (ceiling - floor)


def curve(metrics: Optional[pd.DataFrame], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the evaluation rows after iteration 0."""
    if metrics is None or key not in metrics or "step" not in metrics:
        return np.array([]), np.array([])
    m = metrics[(metrics["step"] > 0) & metrics[key].notna()]
    return m["step"].to_numpy(float), m[key].to_numpy(float)


@dataclass
class Trend:
    improvement: float   # projected normalised improvement over the last quarter of training (+ = better)
    lo: float            # its 95% interval (Theil-Sen's)
    hi: float
    n: int               # evaluations in the window
    slope: float         # normalised change per generator iteration (- = improving)


def late_trend(steps: np.ndarray, q: np.ndarray, total: int) -> Trend:
    """Theil-Sen trend of normalised quality `q` over the last LATE of training."""
    ok = (steps >= (1 - LATE) * total) & np.isfinite(q)
    x, y = steps[ok], q[ok]
    if len(x) < MIN_LATE or np.ptp(x) == 0:
        return Trend(math.nan, math.nan, math.nan, int(len(x)), math.nan)
    slope, _, lo, hi = stats.theilslopes(y, x, alpha=0.95)
    quarter = total / 4
    return Trend(-slope * quarter, -hi * quarter, -lo * quarter, int(len(x)), float(slope))


def converged(t: Trend) -> Optional[bool]:
    """Decided on the trend's 95% interval, never its point estimate (a point near the tolerance flips when
    evaluation rows are thinned): True when even the interval's upper end projects at most CONV_TOL more
    improvement, False when its lower end projects more; None in between, or when no trend can be fitted."""
    if not (np.isfinite(t.lo) and np.isfinite(t.hi)):
        return None
    if t.hi <= CONV_TOL:
        return True
    return False if t.lo > CONV_TOL else None


def moved(first: float, last: float, noise: float) -> Optional[bool]:
    """Did quality change over training (first evaluation after iteration 0 vs the last) by more than its
    measured noise (the RMS difference between two evaluations of one generator, pooled over a cell's
    seeds)? None without a noise measurement."""
    if not (np.isfinite(first) and np.isfinite(last) and np.isfinite(noise)):
        return None
    return bool(abs(last - first) > MOVED * noise)


def pooled_noise(diffs: np.ndarray) -> float:
    """RMS of the repeat differences of a cell's seeds: one difference per seed is a noisy estimate alone."""
    d = np.asarray(diffs, float)
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d ** 2))) if len(d) else math.nan


def readers(coverages: list[float], confident: list[float], n_modes: float) -> list[float]:
    """The coverages of the mode counts that can read the samples: enough confident samples per mode."""
    return [c for c, n in zip(coverages, confident)
            if np.isfinite(c) and np.isfinite(n) and n >= MIN_CONFIDENT_PER_MODE * n_modes]


# ---------------------------------------------------------------- claim 3: coverage, decided per seed
COV_TOL = 0.05    # coverage projected to rise by at most this over the last quarter of training (upper end of its
                  # 95% interval) has stopped changing: under half of one ring8 mode (1/8), about one grid25 mode
                  # (1/25); a seed whose coverage may still rise by more is not (yet) collapsed, only stalled
COV_BAND = 1.0    # a seed's coverage is read against a threshold with its repeat difference (two evaluations of one
                  # generator on independent noise) as its margin: a call needs both evaluations on the same side
                  # whichever way the repeat went. Not quality's 3x: a count of 8 modes moves in steps of 1/8, and one
                  # marginal mode's flip (3 x 1/8 = 0.375) would hide a generator that covers every mode


@dataclass(frozen=True)
class SeedModes:
    """One seed's mode coverage, decided with its own uncertainty (the per-seed half of claim 3, and what claim
    1's "a seed is good only if it covers the modes" reads). Three-valued flags: True / False / None (unknown)."""
    coverage: float             # modes covered by confident samples / the same count on N real samples
    band: float                 # its margin: COV_BAND x the repeat difference, on the same scale
    readable: bool              # enough confident samples (MIN_CONFIDENT_PER_MODE per mode) for a count to mean anything
    covers: Optional[bool]      # coverage decidedly >= COVERAGE (True) or decidedly below (False)
    concentrated: Optional[bool]  # decidedly <= CONCENTRATED: nearly every sample in one or two modes
    flat: Optional[bool]        # its coverage has stopped rising (upper end of the trend interval <= COV_TOL)
    collapsed: Optional[bool]   # covers is False and flat is True (True); covers is True (False); else unknown


def coverage_call(coverage: float, band: float, threshold: float) -> Optional[bool]:
    """True when coverage is at/above `threshold` beyond its band, False when below it beyond the band, None
    within the band (or NaN). The band is never a point estimate's free pass: 0 only when the repeat agreed."""
    if not np.isfinite(coverage):
        return None
    band = band if np.isfinite(band) else 0.0
    if coverage - band >= threshold:
        return True
    return False if coverage + band < threshold else None


def coverage_trend(steps: np.ndarray, coverage: np.ndarray, total: float) -> Trend:
    """Late Theil-Sen trend of coverage (higher is better), as `late_trend` reads quality: `improvement` is the
    coverage gain the trend projects over the last quarter of training, with its 95% interval."""
    return late_trend(np.asarray(steps, float), -np.asarray(coverage, float), total)


def flat(t: Trend) -> Optional[bool]:
    """Coverage stopped rising: True when the interval's upper end projects at most COV_TOL more coverage over
    the last quarter, False when its lower end projects more; None in between or without a trend."""
    if not (np.isfinite(t.lo) and np.isfinite(t.hi)):
        return None
    if t.hi <= COV_TOL:
        return True
    return False if t.lo > COV_TOL else None


def seed_modes(modes: float, anchor: float, confident: float, n_modes: float, repeat_diff: float = math.nan,
               trend: Optional[Trend] = None) -> SeedModes:
    """Per-seed mode coverage of one deciding count (toys: geometry; images: the domain CNN).

    modes: modes covered by the seed's confident samples (eval/modes_hq); anchor: the same count on N real samples
    at the same N (floor/eval/modes_hq; NaN: the number of modes); confident: how many of the N samples were
    confident; repeat_diff: |modes_hq| difference between two evaluations of the final generator (NaN: unmeasured,
    band 0); trend: the coverage trend (`coverage_trend`). Pure: the lead's claim-1 rule calls it too."""
    anchor = anchor if np.isfinite(anchor) and anchor > 0 else n_modes
    cov = modes / anchor if np.isfinite(modes) else math.nan
    band = COV_BAND * repeat_diff / anchor if np.isfinite(repeat_diff) else 0.0
    readable = bool(np.isfinite(cov) and np.isfinite(confident) and confident >= MIN_CONFIDENT_PER_MODE * n_modes)
    covers = coverage_call(cov, band, COVERAGE) if readable else None
    low = coverage_call(cov, band, CONCENTRATED + 1e-9) if readable else None  # <= CONCENTRATED counts as concentrated
    conc = None if low is None else not low
    fl = flat(trend) if trend is not None else None
    collapsed = False if covers is True else (True if covers is False and fl is True else None)
    return SeedModes(cov, band, readable, covers, conc, fl, collapsed)


# ---------------------------------------------------------------- a seed on its own numbers (claim 1)
def seed_band(noise: float) -> float:
    """The margin a seed's quality is read against a threshold with: MOVED x its own repeat difference (normalised),
    at least rules.NOISE_FLOOR. Its own, never its cell's: adding a seed must not move another seed's band."""
    from study.report.rules import NOISE_FLOOR
    return MOVED * max(noise if np.isfinite(noise) else 0.0, NOISE_FLOOR)


def stalled(q: np.ndarray, band: float, anchor: float) -> Optional[bool]:
    """Never left the untrained anchor: at no evaluation after iteration 0 was its quality below `anchor` beyond
    its band. None without a curve."""
    q = np.asarray(q, float)
    q = q[np.isfinite(q)]
    if not len(q):
        return None
    return bool(not (q + band < anchor).any())
