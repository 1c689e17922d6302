"""Claim 2's trend-free test (study/report/trendfree.py, claim2.outcome): a curve that merely falls with training
(the iteration counter) is never evidence that a loss tracks quality; quality plus the measured noise is. On
synthetic panels, on the real 5-seed mnist16 run (tests/fixtures/cpu_verdicts5) and on a real toy run against the
exact W1 (tests/fixtures/claim2_ring8: 3 seeds x WGAN x ring8, MLP width 64, 400 iterations, eval every 40)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.report import calibrate as C
from study.report import claim2, trendfree as tf
from study.report.load import load_run

FIXTURES = Path(__file__).parent / "fixtures"
OPEN = {"undecided", "unclear"}


def test_shared_trend_has_no_residual_and_a_monotone_map_changes_nothing():
    rng = np.random.default_rng(0)
    E, Q = C.claim2_panel(rng, "tracks", 6, 12, C.CLAIM2_MEASURED)
    st = tf.cell_stats(E, Q)
    counter = np.tile(-np.arange(12.0), (6, 1))
    assert math.isnan(tf.trendfree_r(counter, Q)) and math.isnan(tf.permutation_p(counter, Q))
    assert np.isnan(tf.per_seed_r(counter, Q)).all()
    # any step-wise monotone map (a clip value's scale, a drift of the critic) leaves ranks, hence r, unchanged
    assert tf.trendfree_r(np.exp(3 * E) * np.arange(1, 13), Q) == pytest.approx(st["r"])
    assert tf.trendfree_r(E + 5 * np.arange(12), Q) == pytest.approx(st["r"])   # a trend added: nothing changes
    assert tf.trendfree_r(Q, Q) == pytest.approx(1.0)
    # the permutation null is exact over 6! orders: p is a multiple of 1/720, at least 1/720
    p = tf.permutation_p(Q, Q)
    assert p == pytest.approx(1 / 720) and round(p * 720) == p * 720


def _st(r, se, n, p):
    return {"r": r, "se": se, "n_seeds": n, "p": p}


def test_outcome_branches():
    assert claim2.outcome(_st(0.5, 0.05, 5, 0.01))[0] == "tracks"
    assert claim2.outcome(_st(0.5, 0.05, 5, 0.2))[0] == "unclear"             # bounds alone do not suffice
    assert claim2.outcome(_st(-0.1, 0.03, 5, 0.6))[0] == "does not track"     # no convergence needed
    out = claim2.outcome(_st(math.nan, math.nan, 5, math.nan))
    assert (out[0], out[3]) == ("undecided", "no evidence: nothing varies between seeds at a step")
    assert claim2.outcome(_st(0.9, 0.05, 2, 0.5))[0] == "undecided"
    assert claim2.outcome(_st(0.9, math.nan, 3, 1 / 6))[0] == "undecided"      # no jackknife interval
    # an adaptive run decides at its design size only
    assert claim2.outcome(_st(0.5, 0.05, 5, 0.01), design=10)[0] == "undecided"
    # the t bound: r - t(0.975, 4) * se
    assert claim2.outcome(_st(0.5, 0.05, 5, 0.01))[1] == pytest.approx(0.5 - 2.776445 * 0.05, abs=1e-5)


def test_jackknife_sees_the_shared_ranks():
    """Leaving a seed out re-ranks the others; over synthetic cells the jackknife se is at least the real sd of r."""
    rng = np.random.default_rng(7)
    rs, ses = [], []
    for _ in range(60):
        E, Q = C.claim2_panel(rng, "tracks", 10, 12, C.CLAIM2_MEASURED)
        st = tf.cell_stats(E, Q)
        rs.append(st["r"]), ses.append(st["se"])
    assert np.mean(ses) >= 0.9 * np.std(rs)


def test_first_differences_view():
    t = np.arange(10.0)
    assert math.isnan(tf.first_diff_rho(-t, np.exp(-t)))                 # the counter: constant differences
    assert tf.first_diff_rho(np.exp(-t) + 0.01 * np.sin(7 * t), np.exp(-t)) > 0.9


@pytest.mark.parametrize("kind", ["counter", "counter+noise", "trend only"])
def test_negative_controls_synthetic(kind):
    r = C.claim2_rates(kind, 8, 40, seed=3)
    assert r["tracks"] <= 0.05 and r["wrong"] == 0


def test_positive_control_synthetic():
    """Quality plus the estimate noise measured on the real run: "tracks" in at least 80% of cells with at most
    10 seeds (the adaptive design: 10 seeds, one doubling of training)."""
    r = C.claim2_rates("true", None, 25, seed=4)
    assert r["tracks"] >= 0.8 and r["wrong"] == 0 and r["seeds_per_cell"] <= 10


def test_calibration_rows():
    """Small rep count: wrong decided verdicts at most 5% in claim-2 rows, adaptive ones included (the borderline
    row needs hundreds of repetitions: docs/verdicts.md)."""
    res = {(n, t): C.claim2_rates(t, n, 15, seed=5) for n in (5, None) for t in ("true", "false", "counter+noise")}
    assert max(r["wrong"] for r in res.values()) <= 0.05
    assert res[(None, "true")]["right"] > res[(5, "true")]["right"]   # the design size decides what 5 seeds cannot


def test_measured_noise_from_the_real_run():
    m = C.claim2_measure(str(FIXTURES / "cpu_verdicts5"))
    for k, v in C.CLAIM2_MEASURED.items():
        assert m[k] == pytest.approx(v, rel=0.1)


@pytest.fixture(scope="module")
def real():
    run = load_run(FIXTURES / "cpu_verdicts5")
    t, v = claim2.claim2(run)
    return run, t, v


def test_real_run(real):
    _, t, v = real
    c = t["claim2_correlation"].set_index("cell")
    assert {"cell", "loss", "outcome", "in_verdict"} <= set(c.reset_index().columns)
    w = c.loc["mnist5k · dcgan · WGAN"]
    assert w["outcome"] == "tracks" and w["p_perm"] == pytest.approx(1 / 120)  # the best of all 120 orders
    assert w["r_tf"] == pytest.approx(0.526, abs=0.01) and w["rho_mean"] == pytest.approx(1.0)
    assert w["r_lo_bound"] == pytest.approx(0.33, abs=0.01)
    assert set(c.loc[["mnist5k · mlp · WGAN", "mnist5k · dcgan_const/dcgan · WGAN"], "outcome"]) <= OPEN
    trials = t["claim2_trials"]
    assert len(trials) == 30 and trials["r_trendfree"].notna().sum() == 30
    assert v[0].key == "claim2" and v[0].verdict == "inconclusive"


def test_iteration_counter_does_not_track_on_the_real_run(real, tmp_path):
    """The negative control on real quality curves: minus the generator iteration in place of every W estimate."""
    root = tmp_path / "run"
    shutil.copytree(FIXTURES / "cpu_verdicts5", root)
    for p in root.glob("wgan_*/metrics.csv"):
        m = pd.read_csv(p)
        m["train/w_estimate"] = np.where(m["train/w_estimate"].notna(), -m["step"].astype(float), np.nan)
        m.to_csv(p, index=False)
    c = claim2.claim2(load_run(root))[0]["claim2_correlation"]
    wg = c[c["loss"] == "wgan"]
    assert set(wg["outcome"]) == {"undecided"} and wg["why"].str.startswith("no evidence").all()
    assert wg["p_perm"].isna().all()


def test_toy_against_exact_w1():
    """A real ring8 run: the W estimate against the exact W1, trend removed. Raw ρ over training is near 1 (the
    shared trend); seed by seed at a step the evidence is r ≈ 0.4 with 3 seeds, far from decided."""
    run = load_run(FIXTURES / "claim2_ring8")
    t, (v,) = claim2.claim2(run)
    c = t["claim2_correlation"].iloc[0]
    assert c["quality"] == "eval/w1" and (c["n_seeds"], c["n_steps"]) == (3, 10)
    assert c["rho_mean"] > 0.9
    assert c["r_tf"] == pytest.approx(0.42, abs=0.01) and c["p_perm"] == pytest.approx(1 / 3)
    assert c["outcome"] == "undecided" and v.verdict == "inconclusive"   # 3 seeds: no jackknife interval
    assert sum(p.stat().st_size for p in (FIXTURES / "claim2_ring8").rglob("*") if p.is_file()) < 300_000
