"""The comparison report, built from a hand-made sweep directory with known numbers
(test_report_fixture.py): tables, verdicts, figures, partial sweeps and the CLI's errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from study.report import build_report
from study.report.__main__ import main
from study.report.build import default_out_dir
from study.report.load import load_run
from test_report_fixture import config, make_run, write_trial

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build shared by the tests that read its outputs (a build draws every figure: seconds)."""
    root = tmp_path_factory.mktemp("runs") / "tiny"
    make_run(root)
    return root, build_report(root, root.parent / "report")


def table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{name}.csv")


def row(df: pd.DataFrame, **eq) -> pd.Series:
    sel = df
    for k, v in eq.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (eq, sel)
    return sel.iloc[0]


def test_claim1_numbers_and_verdict(built):
    _, out = built
    q = table(out, "claim1_quality")
    gan_mlp = row(q, cell="mnist5k · mlp · GAN")
    assert (gan_mlp["n_values"], gan_mlp["mean"], gan_mlp["std"]) == (3, 90.0, 10.0)
    # Student-t 95% interval: 90 ± 4.303 x 10 / sqrt(3)
    assert gan_mlp["ci_lo"] == pytest.approx(90 - 24.84, abs=0.01) and gan_mlp["ci_hi"] == pytest.approx(114.84, abs=0.01)
    assert (gan_mlp["n_diverged"], gan_mlp["failure_rate"]) == (1, 0.25)  # diverged: counted, not averaged
    assert row(q, cell="mnist5k · dcgan · GAN")["n_failed"] == 1
    assert row(q, cell="mnist5k · dcgan · WGAN (optimizer=rmsprop)")["n_unfinished"] == 1  # incomplete
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["n_unfinished"] == 1   # missing
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["mean"] == 32.0
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=adam)")["in_verdict"] == False  # noqa: E712
    st = table(out, "claim1_states")
    w = row(st, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")
    # 3 good seeds and a missing one: 8 good of 8 would reject a failure rate of a third
    assert w["q_mean"] == pytest.approx(31 / 99) and w["state"] == "undecided" and w["q_hi"] < 0.5
    assert (w["n_good"], w["n_unknown"], w["n_design"]) == (3, 1, 4) and "4 more seed(s)" in w["need"]
    assert (w["floor"], w["ceiling"]) == (1.0, 100.0)
    g = row(st, cell="mnist5k · mlp · GAN")
    assert (g["state"], g["n_diverged"], g["n_collapsed"], g["n_finished"], g["n_failed"]) == ("fails", 1, 3, 4, 4)
    assert row(st, cell="mnist5k · dcgan · GAN")["state"] == "undecided"
    assert row(st, cell="mnist5k · mlp · WGAN (optimizer=adam)")["state"] == "undecided"  # 2 seeds
    d = table(out, "claim1_difference")
    mlp = row(d, backbone="mlp", wgan="WGAN (optimizer=rmsprop)")
    assert (mlp["diff"], mlp["in_verdict"]) == (58.0, True) and mlp["diff_ci_lo"] > 0
    assert mlp["perm_p"] == pytest.approx(0.1)  # 3 vs 3 seeds: the smallest exact p there is
    dc = row(d, backbone="dcgan")
    assert dc["diff"] == -1.0 and dc["diff_ci_lo"] < 0 < dc["diff_ci_hi"]


def test_claim2_and_claim3_numbers(built):
    _, out = built
    c = table(out, "claim2_correlation")
    w = row(c, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")
    # raw rho over training is kept as evidence; the fixture's seeds keep their order at every step (quality
    # curves of one shape), so the trend-free test has no residual: no evidence, undecided (claim2.outcome)
    assert (w["n_rho"], w["n_counted"], round(w["rho_mean"], 6), w["outcome"]) == (3, 3, 0.9, "undecided")
    assert w["why"].startswith("no evidence") and w["n_seeds"] == 3
    g = row(c, cell="mnist5k · mlp · GAN")
    assert (round(g["rho_mean"], 6), g["outcome"]) == (0.0, "undecided")
    t = table(out, "claim2_trials")
    assert {"trial_id", "rho_raw", "r_trendfree", "rho_first_diff"} <= set(t.columns) and len(t) == 14
    a = table(out, "claim2_across_trials")
    assert row(a, loss="wgan")["spearman"] == pytest.approx(1.0) and row(a, loss="wgan")["n"] == 8
    m = table(out, "claim3_modes")
    gm = row(m, cell="mnist5k · mlp · GAN")
    # 3 collapsed of 4 (one diverged, unknown): p = 0.11, a collapse rate of a third is not rejected
    assert (gm["modes_mean"], gm["n_collapsed"], gm["outcome"]) == (4.0, 3, "undecided")
    assert gm["coverage_mean"] == pytest.approx(0.4) and gm["coverage_knn_mean"] == pytest.approx(0.4)
    assert set(m[(m["loss"] == "wgan") & m["in_verdict"]]["outcome"]) == {"undecided"}  # 3 clean of 3: 8 decide
    assert "more seed(s)" in row(m, cell="mnist5k · dcgan · WGAN (optimizer=rmsprop)")["need"]
    assert row(m, cell="mnist5k · mlp · WGAN (optimizer=adam)")["outcome"] == "undecided"  # 2 seeds
    comp = table(out, "compute")
    assert row(comp, cell="mnist5k · dcgan · GAN")["gen_it_per_s"] == pytest.approx(20.0)  # 200 iters / 10 s
    assert row(comp, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["gen_it_per_s"] == pytest.approx(10.0)


def test_verdicts_and_counts(built):
    root, out = built
    v = json.loads((out / "verdicts.json").read_text())
    assert {k: x["verdict"] for k, x in v.items()} == {"claim1": "inconclusive", "claim2": "inconclusive",
                                                       "claim3": "inconclusive"}
    s = table(out, "status_counts")
    total = row(s, cell="all cells")
    assert [total[k] for k in ("completed", "diverged", "failed", "incomplete", "missing", "total")] == \
        [14, 1, 1, 1, 1, 18]
    trials = table(out, "trials")
    assert len(trials) == 18 and set(trials["status"]) == {"completed", "diverged", "failed", "incomplete", "missing"}
    # every aggregated row names its trials, and each named trial is a real directory or listed as missing
    known = set(trials["trial_id"])
    for name in ("claim1_quality", "claim1_states", "claim2_correlation", "claim3_modes", "compute"):
        for ids in table(out, name)["trials"].dropna():
            assert set(ids.split()) <= known
    md = (out / "REPORT.md").read_text()
    assert md.count("**Verdict: supported**") == 0 and "**Verdict: inconclusive**" in md and "Δ = 58 [" in md and "**Partial sweep:**" in md


def test_figures_are_valid_images(built):
    _, out = built
    names = {p.name for p in (out / "figures").iterdir()}
    for expected in ("claim1_states.png", "claim1_quality.png", "claim1_difference.png", "claim2_curves_mnist5k-mlp.png",
                     "claim2_curves_mnist5k-dcgan.png", "claim2_final_estimate_vs_quality.png", "claim3_modes.png",
                     "compute.png", "samples_mnist5k-mlp.png", "samples_mnist5k-dcgan.png"):
        assert expected in names
    for p in (out / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == PNG
        with Image.open(p) as im:
            im.verify()
    gifs = sorted((out / "figures").glob("anim_*.gif"))
    assert len(gifs) == 5  # one per cell
    with Image.open(gifs[0]) as im:
        assert im.format == "GIF" and im.n_frames == 10  # one frame per evaluation grid
    html = (out / "report.html").read_text()
    md = (out / "REPORT.md").read_text()
    assert html.count('src="data:image/') == md.count("](figures/") and "src=\"figures" not in html
    for ref in md.split("](figures/")[1:]:
        assert (out / "figures" / ref.split(")")[0]).exists()


def test_inconclusive_when_not_converged_and_toys(tmp_path):
    """GAN quality short of the threshold (0.7) but still falling fast -> not called failing (undecided, with
    the iterations that would decide it); toy WGAN with few high-quality samples -> its missing modes are not
    evidence of collapse (claim 3 inconclusive), while the GAN's are."""
    from study.report import claim1, claim3
    for seed in (0, 1, 2):
        write_trial(tmp_path, config("gan", "mlp", seed), 70.0, 0.0, 10, 0.1, factors=(3, 2.5, 2.0, 1.0))
        write_trial(tmp_path, config("wgan", "mlp", seed), 30.0 + seed, 0.9, 10, 0.1)
        for loss, hq, modes in (("gan", 0.9, 2), ("wgan", 0.02, 2)):
            cfg = config(loss, "mlp", seed, data="ring8")
            cfg["train"]["batch_size"] = 256  # zipped with the data set, as in sweeps/quick.yaml
            write_trial(tmp_path, cfg, 0.05 + 0.01 * seed, 0.5, modes, 0.8, quality="eval/w1", hq=hq,
                        ceiling=2.0, floor=0.02, noise=0.001)
    run = load_run(tmp_path)
    assert run.tied == ["train.batch_size"] and not run.trials["cell"].str.contains("batch_size").any()
    t1, (v1,) = claim1.claim1(run)
    st = t1["claim1_states"]
    g = row(st, cell="mnist5k · mlp · GAN")
    assert g["state"] == "undecided" and g["n_converged"] == 0 and "generator iterations" in g["need"]
    assert row(st, cell="mnist5k · mlp · WGAN")["state"] == "undecided"  # good, but a "works" call needs 5 seeds
    assert row(st, cell="ring8 · mlp · GAN")["metric"] == "eval/w1"
    assert row(st, cell="ring8 · mlp · GAN")["state"] == "fails"  # 3 of 3 in 2 of 8 modes (geometry)
    assert v1.verdict == "inconclusive"  # mnist5k's GAN may yet learn: no decided failure there
    t3, (v3,) = claim3.claim3(run)
    m = t3["claim3_modes"]
    assert row(m, cell="ring8 · mlp · GAN")["outcome"] == "collapse"
    assert row(m, cell="ring8 · mlp · WGAN")["outcome"] == "undecided"
    assert "confident samples" in row(m, cell="ring8 · mlp · WGAN")["need"]
    assert row(m, cell="ring8 · mlp · GAN")["hq_pct_mean"] == pytest.approx(90.0)
    assert v3.verdict == "inconclusive"
    assert default_out_dir(run) == Path("reports") / tmp_path.name  # no sweep.yaml: the directory's name


def test_paper_deviation_is_noted(tmp_path):
    """A sweep whose base sets WGAN to Adam for every trial: those cells decide, and the report says so."""
    from study.report.compute import paper_deviations
    for seed in (0, 1):
        write_trial(tmp_path, config("wgan", "mlp", seed, optimizer="adam"), 40.0, 0.9, 10, 0.1)
    run = load_run(tmp_path)
    assert run.trials["in_verdict"].all() and set(run.trials["hue"]) == {"WGAN"}
    assert [line for line in paper_deviations(run) if "`wgan.optimizer` = adam" in line and "rmsprop" in line]


def test_no_completed_trial_exits_2(tmp_path, capsys):
    write_trial(tmp_path, config("gan", "mlp", 0), 90.0, 0.0, 10, 0.1, status="failed")
    assert main([str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no completed trial" in err and "1 failed" in err
    assert not (tmp_path / "r").exists()


def test_empty_run_dir_exits_2(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trial directories" in err


def test_missing_run_dir_exits_2(tmp_path):
    p = subprocess.run([sys.executable, "-m", "study.report", str(tmp_path / "nope")], capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no such run directory" in p.stderr
