"""The verdict rules on a real run of this harness (tests/fixtures/cpu_verdicts5: sweeps/cpu_verdicts.yaml with
5 seeds, mnist5k 16x16, 3,000 generator iterations, 30 trials; evaluation rows of metrics.csv, result.json and
config.yaml of each, no checkpoints or samples). Less evidence may only make a verdict less decided; relabelling
seeds or reordering trials changes nothing; the constant-filter GAN of issue 20 (4 seeds of 5 with every sample
in one or two classes) fails."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from study.report import claim1, claim2, claim3
from study.report.load import load_run

FIXTURE = Path(__file__).parent / "fixtures" / "cpu_verdicts5"
UNDECIDED = {"inconclusive", "undecided", "unclear"}


def decide(root: Path) -> dict:
    """Every verdict and every cell state of the three claims, by key."""
    run = load_run(root)
    (t1, v1), (t2, v2), (t3, v3) = claim1.claim1(run), claim2.claim2(run), claim3.claim3(run)
    out = {v.key: v.verdict for v in (*v1, *v2, *v3)}
    out.update({f"1|{r.cell}": r.state for r in t1["claim1_states"].itertuples()})
    out.update({f"1b|{r.cell}": r.state_bonferroni for r in t1["claim1_states"].itertuples()})
    out.update({f"2|{r.cell}": r.outcome for r in t2["claim2_correlation"].itertuples()})
    out.update({f"3|{r.cell}": r.outcome for r in t3["claim3_modes"].itertuples()})
    return out


def only_less_decided(before: dict, after: dict) -> list[str]:
    """Keys whose decision appeared or changed when evidence was removed (the rule forbids both)."""
    return [f"{k}: {before[k]} -> {after.get(k)}" for k in before
            if after.get(k, "undecided") != before[k] and after.get(k, "undecided") not in UNDECIDED]


@pytest.fixture(scope="module")
def baseline():
    return decide(FIXTURE)


def test_the_real_run_as_it_is(baseline):
    assert baseline["1|mnist5k · dcgan_const/dcgan · GAN"] == "fails"      # 4 of 5 in at most 2 classes
    assert baseline["1|mnist5k · dcgan · WGAN"] == "undecided"             # 5 good of 5: 8 would decide it
    assert {baseline[k] for k in ("claim1", "claim2", "claim3")} == {"inconclusive"}
    ev = claim1.claim1(load_run(FIXTURE))[0]["claim1_states"].set_index("cell")
    const = ev.loc["mnist5k · dcgan_const/dcgan · GAN"]
    assert (const["n_good"], const["n_failed"], const["n_design"]) == (1, 4, 5)
    assert ev.loc["mnist5k · dcgan · WGAN", "need"].startswith("3 more seed(s)")


@pytest.mark.parametrize("every", [2, 3])
def test_thinning_the_evaluation_rows_only_undecides(baseline, tmp_path, every):
    root = tmp_path / "thin"
    shutil.copytree(FIXTURE, root)
    for p in root.glob("*/metrics.csv"):
        m = pd.read_csv(p)
        ev = [c for c in m.columns if c.startswith("eval/")]
        rows = m.index[(m["step"] > 0) & m[ev].notna().any(axis=1)][:-1]  # the untrained anchor and the last kept
        m.drop(index=[r for i, r in enumerate(rows) if i % every != every - 1]).to_csv(p, index=False)
    assert only_less_decided(baseline, decide(root)) == []


@pytest.mark.parametrize("seed", [0, 4])
def test_dropping_one_seed_from_every_cell_only_undecides(baseline, tmp_path, seed):
    """Its results removed (the directory gone, the sweep's results.csv still listing it as run): the seed is
    unknown, so every count can only fall."""
    root = tmp_path / "drop"
    shutil.copytree(FIXTURE, root)
    gone = [d for d in root.iterdir() if d.is_dir() and f"_s{seed}_" in d.name]
    assert len(gone) == 6
    for d in gone:
        shutil.rmtree(d)
    after = decide(root)
    assert only_less_decided(baseline, after) == []
    assert after["1|mnist5k · dcgan_const/dcgan · GAN"] == ("undecided" if seed == 0 else "fails")  # seed 4 learned


def test_relabelling_seeds_and_reordering_trials_changes_nothing(baseline, tmp_path):
    root = tmp_path / "relabelled"
    root.mkdir()
    dirs = sorted(d for d in FIXTURE.iterdir() if d.is_dir())
    for k, d in enumerate(reversed(dirs)):  # names sort in the opposite order; seeds 0..4 -> 14..10
        new = root / f"{k:03d}_{d.name}"
        shutil.copytree(d, new)
        cfg = yaml.safe_load((new / "config.yaml").read_text())
        cfg["seed"] = 14 - cfg["seed"]
        (new / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copy(FIXTURE / "sweep.yaml", root / "sweep.yaml")
    after = decide(root)
    assert after == baseline


def test_one_failed_seed_of_five_is_not_a_failing_cell(tmp_path):
    """The WGAN on dcgan with one seed made to fail (at the untrained anchor): 1 of 5 does not reject a third."""
    root = tmp_path / "one"
    shutil.copytree(FIXTURE, root)
    import json
    p = next(root.glob("wgan_dcgan_mnist5k_s0_*/result.json"))
    r = json.loads(p.read_text())
    r["final"]["eval/fid@domain"] = 47.0  # the untrained generator scored 47.0
    p.write_text(json.dumps(r))
    st = claim1.claim1(load_run(root))[0]["claim1_states"].set_index("cell").loc["mnist5k · dcgan · WGAN"]
    assert (st["n_failed"], st["n_good"], st["state"]) == (1, 4, "undecided")
    assert np.isclose(st["q_mean"], st["q_mean"])


def test_adding_seeds_never_changes_another_seeds_outcome(tmp_path):
    """Issue 27: each seed is read on its own numbers (its own repeat difference, its own anchors and curve), so the
    outcome of seeds 0-2 is the same whether seeds 3-4 of their cells exist or not, on the real run."""
    few = tmp_path / "few"
    shutil.copytree(FIXTURE, few)
    for d in list(few.glob("*_s3_*")) + list(few.glob("*_s4_*")):
        shutil.rmtree(d)
    def outcomes(root):
        ev = claim1.claim1(load_run(root))[0]["trial_evidence"].set_index("trial_id")
        return ev[["outcome", "outcome_why", "band"]]
    small, full = outcomes(few), outcomes(FIXTURE)
    small = small.loc[[t for t in small.index if "_s3_" not in t and "_s4_" not in t]]  # results.csv lists them
    assert len(small) == 18 and len(full) == 30
    pd.testing.assert_frame_equal(small, full.loc[small.index])
    # and the noise a seed is read against is its own: seed 3 of the MLP WGAN (issue 27's example) keeps its band
    band = full.loc[[t for t in full.index if t.startswith("wgan_mlp_") and "_s3_" in t], "band"]
    assert band.iloc[0] == pytest.approx(3 * 0.01)  # its own repeat difference is below the noise floor


def test_the_stall_is_named_a_stall(baseline):
    """The constant-filter GAN's failed seeds never left the untrained generator: stalled, not collapsed."""
    st = claim1.claim1(load_run(FIXTURE))[0]["claim1_states"].set_index("cell").loc["mnist5k · dcgan_const/dcgan · GAN"]
    assert st["failed_why"] == "4 stalled" and st["n_stalled"] == 4 and st["n_collapsed"] == 0
