"""study.eval.stats: bootstrap CI, median filter, loss-to-quality correlation."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import median_filter as nd_median

from study.eval.stats import bootstrap_ci, loss_quality_correlation, median_filter


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))
    assert bootstrap_ci([3.5]) == (3.5, 3.5)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_ci([1.0, float("nan"), 3.0]) == bootstrap_ci([1.0, 3.0])  # NaNs dropped


def test_bootstrap_ci_covers_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(5.0, 1.0, 10), rng.normal(5.0, 1.0, 400)
    lo, hi = bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large)
    assert lo2 < 5.0 < hi2 and (hi2 - lo2) < (hi - lo) / 3
    # about +-1.96 standard errors for a normal sample
    assert (hi2 - lo2) == pytest.approx(2 * 1.96 * large.std() / math.sqrt(400), rel=0.15)
    assert bootstrap_ci(small, seed=0) == bootstrap_ci(small, seed=0)


def test_median_filter_centred_shrinking_and_nan_safe():
    np.testing.assert_allclose(median_filter([1, 100, 2, 3], window=3), [50.5, 2, 3, 2.5])
    np.testing.assert_allclose(median_filter([np.nan, 1.0, np.nan], window=3), [1, 1, 1])
    assert np.isnan(median_filter([np.nan, np.nan], window=3)).all()
    assert median_filter([], 101).shape == (0,)
    # away from the edges it is the ordinary centred running median
    x = np.random.default_rng(0).normal(size=500)
    np.testing.assert_allclose(median_filter(x, 101)[50:-50], nd_median(x, size=101)[50:-50])


def _trial(estimate: np.ndarray, quality_at: dict) -> pd.DataFrame:
    df = pd.DataFrame({"step": np.arange(1, len(estimate) + 1), "train/w_estimate": estimate})
    df["eval/fid@domain"] = np.nan
    for step, q in quality_at.items():
        df.loc[df.step == step, "eval/fid@domain"] = q
    return df


def test_correlation_monotone_pair_is_one():
    est = np.linspace(2.0, 0.1, 1000)               # W estimate falls...
    fid = {s: 100.0 * s ** -0.5 for s in range(100, 1001, 100)}  # ...as FID falls
    c = loss_quality_correlation(_trial(est, fid), "train/w_estimate", "eval/fid@domain")
    assert c["n"] == 10 and c["estimate"] == "train/w_estimate" and c["quality"] == "eval/fid@domain"
    assert c["spearman"] == pytest.approx(1.0) and 0.8 < c["pearson"] <= 1.0
    rev = loss_quality_correlation(_trial(-est, fid), "train/w_estimate", "eval/fid@domain")
    assert rev["spearman"] == pytest.approx(-1.0)


def test_correlation_reads_the_median_filtered_curve():
    # spikes at the evaluation steps would reverse the raw correlation; the median filter removes them
    est = np.linspace(1.0, 0.0, 1000)
    steps = list(range(100, 1001, 100))
    est[np.array(steps) - 1] = np.linspace(-5, 5, len(steps))
    c = loss_quality_correlation(_trial(est, {s: 1000 - s for s in steps}), "train/w_estimate", "eval/fid@domain")
    assert c["spearman"] == pytest.approx(1.0)


def test_correlation_undefined_cases_are_nan():
    est = np.linspace(1, 0, 300)
    two = loss_quality_correlation(_trial(est, {100: 2.0, 200: 1.0}), "train/w_estimate", "eval/fid@domain")
    assert two["n"] == 2 and math.isnan(two["spearman"]) and math.isnan(two["pearson"])
    const = loss_quality_correlation(_trial(est, {100: 1.0, 200: 1.0, 300: 1.0}), "train/w_estimate", "eval/fid@domain")
    assert const["n"] == 3 and math.isnan(const["spearman"])
    missing = loss_quality_correlation(_trial(est, {}), "train/w_estimate", "eval/w1")
    assert missing["n"] == 0 and math.isnan(missing["pearson"])
