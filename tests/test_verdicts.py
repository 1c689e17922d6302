"""The verdict rules (issue 12): metamorphic invariances, every branch on hand-made numbers, the
small-sample statistics, and the simulated rate of wrong decided verdicts (docs/verdicts.md)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from study.eval.stats import permutation_p, t_bound, welch_interval
from study.report import claim1, claim2, claim3
from study.report import evidence as E
from study.report.calibrate import claim1_error, claim2_error, claim3_error
from study.report.load import load_run
from study.report.outcomes import FAIL_Q, WORK_Q, cell_state
from test_report_fixture import config, make_run, write_trial


def verdicts(root):
    run = load_run(root)
    (_, (v1,)), (_, (v2,)), (_, (v3,)) = claim1.claim1(run), claim2.claim2(run), claim3.claim3(run)
    states = claim1.claim1(run)[0]["claim1_states"].set_index("cell")["state"].to_dict()
    return (v1.verdict, v2.verdict, v3.verdict), states


def _drop_stored_correlation(root):
    """Make the report recompute each trial's rho from metrics.csv (so thinning can change it)."""
    for p in root.glob("*/result.json"):
        r = json.loads(p.read_text())
        r.pop("correlation", None)
        p.write_text(json.dumps(r))


def _with_slow_cell(root):
    """A WGAN cell still improving at the end (not converged) and a GAN cell near the untrained generator."""
    for seed in range(5):
        write_trial(root, config("wgan", "dcgan_nobn", seed), 40.0 + seed, 0.9, 10, 0.1, factors=(2.0, 1.6, 1.3, 1.0),
                    every=10)
        write_trial(root, config("gan", "dcgan_nobn", seed), 97.0 - seed, 0.0, 10, 0.1, factors=(1.3, 1.2, 1.1, 1.0),
                    every=10)


@pytest.fixture
def dense(tmp_path):
    root = tmp_path / "dense"
    make_run(root, every=10, seeds=5)  # 20 evaluation points per trial; 5 seeds, so cells can "work"
    _with_slow_cell(root)
    _drop_stored_correlation(root)
    return root


def test_thinning_the_evaluations_changes_no_verdict(dense, tmp_path):
    before = verdicts(dense)
    thin = tmp_path / "thin"
    shutil.copytree(dense, thin)
    for p in thin.glob("*/metrics.csv"):
        m = pd.read_csv(p)
        ev = [c for c in m.columns if c.startswith("eval/")]
        rows = m.index[(m["step"] > 0) & m[ev].notna().any(axis=1)]
        m.loc[rows[::2], ev] = np.nan  # every second evaluation row removed (the last one kept)
        m.to_csv(p, index=False)
    after = verdicts(thin)
    assert after == before
    assert before[1]["mnist5k · dcgan_nobn · GAN"] == "undecided"  # near the untrained generator, still improving
    assert before[0] == ("supported", "supported", "supported")


def test_relabelling_seeds_and_reordering_trials_changes_nothing(dense, tmp_path):
    before = verdicts(dense)
    moved = tmp_path / "relabelled"
    moved.mkdir()
    dirs = sorted(p for p in dense.iterdir() if p.is_dir())
    for k, d in enumerate(reversed(dirs)):  # new names sort in the opposite order; seeds 0,1,2 -> 12,11,10
        new = moved / f"{k:03d}_{d.name}"
        shutil.copytree(d, new)
        cfg = yaml.safe_load((new / "config.yaml").read_text())
        cfg["seed"] = 12 - cfg["seed"]
        (new / "config.yaml").write_text(yaml.safe_dump(cfg))
        if (new / "result.json").exists():
            r = json.loads((new / "result.json").read_text())
            r["config"]["seed"] = cfg["seed"]
            (new / "result.json").write_text(json.dumps(r))
    shutil.copy(dense / "sweep.yaml", moved / "sweep.yaml")
    assert verdicts(moved) == before


def _add_extractor(root, every_trial: bool = True, a: float = 7.0, b: float = 3.0):
    """A second FID extractor (Inception's key) reading every trial as domain FID x a + b: its own scale, floor,
    ceiling and noise, the same ranking. Normalised quality and Spearman's rho are invariant to that."""
    for k, d in enumerate(sorted(p for p in root.iterdir() if (p / "metrics.csv").exists())):
        if not every_trial and k == 0:
            continue  # one trial without it: the verdicts must not mix extractors
        m = pd.read_csv(d / "metrics.csv")
        m["eval/fid@inception"] = m["eval/fid@domain"] * a + b
        m.to_csv(d / "metrics.csv", index=False)
        if (d / "result.json").exists():
            r = json.loads((d / "result.json").read_text())
            if r["final"].get("eval/fid@domain") is not None:
                r["final"]["eval/fid@inception"] = r["final"]["eval/fid@domain"] * a + b
            info = r.setdefault("eval_info", {})
            info.setdefault("real_floor", {})["eval/fid@inception"] = info["real_floor"]["eval/fid@domain"] * a + b
            r.setdefault("noise", {}).setdefault("abs_diff", {})["eval/fid@inception"] = \
                r["noise"]["abs_diff"]["eval/fid@domain"] * a
            (d / "result.json").write_text(json.dumps(r))


@pytest.mark.parametrize("every_trial", [True, False])
def test_a_second_extractor_changes_no_verdict(dense, tmp_path, every_trial):
    """With a second extractor on every trial the verdicts are decided on it (the registry's precedence); on only
    some trials, on the first. Either way, an extractor that ranks the samples alike decides alike."""
    before = verdicts(dense)
    two = tmp_path / "two"
    shutil.copytree(dense, two)
    _add_extractor(two, every_trial)
    from study.report.cells import primary_metric
    decided_on = primary_metric(load_run(two).trials, "mnist5k")
    assert decided_on == ("eval/fid@inception" if every_trial else "eval/fid@domain")
    assert verdicts(two) == before


def test_a_pair_where_both_work_and_the_gan_is_slightly_better_does_not_flip_claim1(tmp_path):
    root = tmp_path / "r"
    make_run(root, seeds=5)
    assert verdicts(root)[0][0] == "supported"
    for seed in range(5):
        write_trial(root, config("gan", "dcgan_nobn", seed), 10.0 + seed, 0.0, 10, 0.1)
        write_trial(root, config("wgan", "dcgan_nobn", seed), 14.0 + seed, 0.9, 10, 0.1)
    (v1, _, _), states = verdicts(root)
    assert v1 == "supported" and states["mnist5k · dcgan_nobn · GAN"] == "works"
    d = claim1.claim1(load_run(root))[0]["claim1_difference"]
    nobn = d[d["backbone"] == "dcgan_nobn"].iloc[0]
    assert nobn["diff"] == -4.0 and nobn["diff_ci_hi"] < 0  # GAN better, shown as information only


def _pair(root, backbone, gan_fid, wgan_fid, gan_modes=10, wgan_modes=10, seeds=7):
    """A GAN and a WGAN cell; 7 seeds: a "works" call at the Bonferroni level of 2 backbones needs 6 without failure."""
    for seed in range(seeds):
        write_trial(root, config("gan", backbone, seed), gan_fid + seed, 0.0, gan_modes, 0.1)
        write_trial(root, config("wgan", backbone, seed), wgan_fid + seed, 0.9, wgan_modes, 0.1)


def test_claim1_not_supported_when_the_gan_works_and_the_wgan_fails(tmp_path):
    _pair(tmp_path, "dcgan", 20, 21)
    _pair(tmp_path, "mlp", 30, 95)  # WGAN: q ~ 0.95 > FAIL_Q, converged
    v = claim1.claim1(load_run(tmp_path))[1][0]
    assert v.verdict == "not supported" and "GAN works and the WGAN fails on mnist5k · mlp" in v.reason


def test_claim1_not_supported_when_the_wgan_fails_wherever_the_gan_fails(tmp_path):
    _pair(tmp_path, "dcgan", 20, 21)
    _pair(tmp_path, "mlp", 30, 30, gan_modes=3, wgan_modes=2)  # both collapse (both classifiers agree)
    v = claim1.claim1(load_run(tmp_path))[1][0]
    assert v.verdict == "not supported" and "the WGAN fails wherever the GAN fails" in v.reason


def test_claim1_inconclusive_with_two_seeds_and_when_the_gan_never_fails(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _pair(a, "dcgan", 20, 21, seeds=2)
    _pair(a, "mlp", 30, 30, gan_modes=3, seeds=2)
    run = load_run(a)
    tabs, (v,) = claim1.claim1(run)
    assert v.verdict == "inconclusive"
    assert set(tabs["claim1_states"]["state"]) == {"undecided"}
    assert all("2 finished seeds" in w and "1 more seed" in n for w, n in tabs["claim1_states"][["why", "need"]].values)
    _pair(b, "dcgan", 20, 21)
    _pair(b, "mlp", 30, 30)
    v = claim1.claim1(load_run(b))[1][0]
    assert v.verdict == "inconclusive" and "GAN fails on no backbone" in v.reason


def test_cell_state_branches():
    conv = [True] * 3
    assert cell_state(np.array([0.1, 0.2]), 2, 0, 0, conv[:2]).state == "undecided"
    s = cell_state(np.array([0.2]), 3, 2, 0, conv[:1])
    assert s.state == "fails" and s.why.startswith("2 of 3 seeds diverged or collapsed (a failure rate of 5%")
    assert cell_state(np.array([0.2, 0.2]), 5, 1, 0, conv[:2]).state == "undecided"  # 1 of 5: a 5% rate fits
    s = cell_state(np.array([0.30, 0.31, 0.32]), 3, 0, 0, conv)  # good, but 3 clean seeds allow a 50% failure rate
    assert s.state == "undecided" and "2 more seed(s)" in s.need[0]
    s = cell_state(np.array([0.30, 0.31, 0.32, 0.31, 0.31]), 5, 0, 0, [True] * 5)
    from scipy import stats
    from study.report.outcomes import ALPHA
    assert s.state == "works" and s.q_hi == pytest.approx(0.31 + stats.t.ppf(1 - ALPHA, 4) * np.std(
        [0.30, 0.31, 0.32, 0.31, 0.31], ddof=1) / np.sqrt(5))
    assert cell_state(np.array([0.95, 0.97, 0.99]), 3, 0, 0, conv).state == "fails"
    s = cell_state(np.array([0.95, 0.97, 0.99]), 3, 0, 0, [True, False, True])
    assert s.state == "undecided" and "not every seed converged" in s.why
    s = cell_state(np.array([0.30, 0.45, 0.40]), 3, 0, 0, conv)  # mean 0.38 < 0.5, bound 0.51 is not
    assert s.state == "undecided" and s.q_hi > WORK_Q > s.mean_q and "seeds at this spread" in s.need[0]
    s = cell_state(np.array([0.6, 0.7, 0.8]), 3, 0, 0, conv)
    assert s.state == "undecided" and f"between {WORK_Q} and {FAIL_Q}" in s.why
    assert cell_state(np.array([0.1, 0.1, 0.1]), 3, 0, 1, conv).state == "undecided"  # collapse unknown


def test_claim2_and_claim3_branches():
    assert claim2.outcome(np.array([0.9, 0.95, 0.85]), [True] * 3)[0] == "tracks"
    assert claim2.outcome(np.array([0.0, 0.1, -0.1]), [True] * 3)[0] == "does not track"
    assert claim2.outcome(np.array([0.0, 0.1, -0.1]), [True, False, True])[0] == "unclear"  # not converged
    assert claim2.outcome(np.array([0.9, 0.95]), [True] * 2)[0] == "undecided"
    assert claim3.outcome([True, True, False], [True] * 3) == ("collapse", [0, 1])
    assert claim3.outcome([True, False, False], [True] * 3)[0] == "undecided"  # one trial is not enough
    assert claim3.outcome([True, True, True], [False] * 3)[0] == "undecided"   # not converged
    assert claim3.outcome([False] * 3, [None] * 3)[0] == "no collapse"
    assert E.collapse([0.4, 0.9], [500, 500], 10) is None          # classifiers disagree
    assert E.collapse([0.4, 0.5], [500, 50], 10) is None           # one had too few confident samples
    assert E.collapse([0.4, 0.5], [500, 500], 10) is True
    assert E.collapse([0.9, 1.0], [500, 500], 10) is False


def test_quality_moved_beyond_noise_gates_claim2(tmp_path):
    for seed in range(3):  # quality flat within its noise: rho of noise, not counted
        write_trial(tmp_path, config("wgan", "mlp", seed), 30.0, 0.9, 10, 0.1, factors=(1.02, 1.0, 1.01, 1.0),
                    noise=5.0)
    c = claim2.cell_table(load_run(tmp_path))
    r = c.iloc[0]
    assert (r["n_rho"], r["n_counted"], r["n_flat"], r["outcome"]) == (3, 0, 3, "undecided")


def test_late_trend_is_a_rate_per_iteration_not_per_evaluation():
    steps = np.arange(100, 2001, 100.0)
    q = 0.5 - 0.0001 * steps  # improving 0.01 per 100 iterations
    dense, sparse = E.late_trend(steps, q, 2000), E.late_trend(steps[::2], q[::2], 2000)
    assert dense.improvement == pytest.approx(0.05) and sparse.improvement == pytest.approx(0.05)
    assert E.converged(dense) is False and E.converged(E.late_trend(steps, np.full(20, 0.1), 2000)) is True
    assert E.converged(E.late_trend(steps[-2:], q[-2:], 2000)) is None  # too few late evaluations


def test_small_sample_statistics():
    assert t_bound([1.0, 2.0, 3.0], 0.05, upper=True) == pytest.approx(2 + 2.919986 / np.sqrt(3), abs=1e-5)
    assert permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)  # 2 of the 20 relabellings
    assert permutation_p([1, 2, 3], [1, 2, 3]) == 1.0
    lo, hi = welch_interval([1, 2, 3], [4, 5, 6])
    assert (lo + hi) / 2 == pytest.approx(-3) and hi - lo == pytest.approx(2 * 2.776445 * np.sqrt(2 / 3), abs=1e-4)


@pytest.mark.parametrize("n", [3, 5])
def test_simulated_wrong_decided_verdicts_are_at_most_5_percent(n):
    """docs/verdicts.md: every truth, the measured spreads and a 7x wider heavy-tailed one; 400 synthetic
    sweeps each (Monte Carlo sd ~1.1% at 5%): the rules' wrong decided verdicts stay under 5%."""
    for truth in ("true", "false", "borderline", "borderline_fail", "rare_gan_failures", "frequent_wgan_failures"):
        for sd, heavy in ((0.02, False), (0.15, True)):
            r = claim1_error(truth, n, 400, sd, 0.005, heavy, seed=n)
            assert r["wrong"] <= 0.05, (truth, sd, r)
    for truth in ("true", "false", "borderline"):
        assert claim2_error(truth, n, 400, 0.15, seed=n)["wrong"] <= 0.05
    for truth in ("true", "false", "worst_classifiers"):
        assert claim3_error(truth, n, 400, 0.15, seed=n)["wrong"] <= 0.05
    # and the rules do decide: with 5 seeds (a "works" call needs 5 without a failure; 3 never give one)
    assert claim1_error("true", n, 200, 0.02, 0.005, False)["decided"] > (0.9 if n == 5 else -1)
