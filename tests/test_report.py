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
    assert 80.0 <= gan_mlp["ci_lo"] < 90.0 < gan_mlp["ci_hi"] <= 100.0
    assert (gan_mlp["n_diverged"], gan_mlp["failure_rate"]) == (1, 0.25)  # diverged: counted, not averaged
    assert row(q, cell="mnist5k · dcgan · GAN")["n_failed"] == 1
    assert row(q, cell="mnist5k · dcgan · WGAN (optimizer=rmsprop)")["n_unfinished"] == 1  # incomplete
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["n_unfinished"] == 1   # missing
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["mean"] == 44.0
    assert row(q, cell="mnist5k · mlp · WGAN (optimizer=adam)")["in_verdict"] == False  # noqa: E712
    d = table(out, "claim1_difference")
    mlp = row(d, backbone="mlp", wgan="WGAN (optimizer=rmsprop)")
    assert (mlp["diff"], mlp["outcome"], mlp["in_verdict"]) == (46.0, "WGAN better", True)
    assert mlp["diff_ci_lo"] > 0
    adam = row(d, backbone="mlp", wgan="WGAN (optimizer=adam)")
    assert (adam["outcome"], adam["in_verdict"]) == ("GAN better", False)  # an ablation: no effect on the verdict
    dc = row(d, backbone="dcgan")
    assert (dc["diff"], dc["outcome"]) == (-1.0, "tie") and dc["diff_ci_lo"] < 0 < dc["diff_ci_hi"]


def test_claim2_and_claim3_numbers(built):
    _, out = built
    c = table(out, "claim2_correlation")
    w = row(c, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")
    assert (w["n_rho"], round(w["rho_mean"], 6), w["outcome"]) == (3, 0.9, "tracks")
    g = row(c, cell="mnist5k · mlp · GAN")
    assert (round(g["rho_mean"], 6), g["outcome"]) == (0.0, "does not track")
    a = table(out, "claim2_across_trials")
    assert row(a, loss="wgan")["spearman"] == pytest.approx(1.0) and row(a, loss="wgan")["n"] == 8
    m = table(out, "claim3_modes")
    gm = row(m, cell="mnist5k · mlp · GAN")
    assert (gm["modes_mean"], gm["coverage_mean"], gm["n_collapsed"], gm["outcome"]) == (4.0, 0.4, 3, "collapse")
    assert set(m[m["loss"] == "wgan"]["outcome"]) == {"no collapse"}
    comp = table(out, "compute")
    assert row(comp, cell="mnist5k · dcgan · GAN")["gen_it_per_s"] == pytest.approx(20.0)  # 200 iters / 10 s
    assert row(comp, cell="mnist5k · mlp · WGAN (optimizer=rmsprop)")["gen_it_per_s"] == pytest.approx(10.0)


def test_verdicts_and_counts(built):
    root, out = built
    v = json.loads((out / "verdicts.json").read_text())
    assert {k: x["verdict"] for k, x in v.items()} == {"claim1": "supported", "claim2": "supported",
                                                       "claim3": "supported"}
    s = table(out, "status_counts")
    total = row(s, cell="all cells")
    assert [total[k] for k in ("completed", "diverged", "failed", "incomplete", "missing", "total")] == \
        [14, 1, 1, 1, 1, 18]
    trials = table(out, "trials")
    assert len(trials) == 18 and set(trials["status"]) == {"completed", "diverged", "failed", "incomplete", "missing"}
    # every aggregated row names its trials, and each named trial is a real directory or listed as missing
    known = set(trials["trial_id"])
    for name in ("claim1_quality", "claim2_correlation", "claim3_modes", "compute"):
        for ids in table(out, name)["trials"].dropna():
            assert set(ids.split()) <= known
    md = (out / "REPORT.md").read_text()
    assert md.count("**Verdict: supported**") == 3 and "Δ = 46 [" in md and "**Partial sweep:**" in md


def test_figures_are_valid_images(built):
    _, out = built
    names = {p.name for p in (out / "figures").iterdir()}
    for expected in ("claim1_quality.png", "claim1_difference.png", "claim2_curves_mnist5k-mlp.png",
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
        assert im.format == "GIF" and im.n_frames == 4  # one frame per evaluation
    html = (out / "report.html").read_text()
    md = (out / "REPORT.md").read_text()
    assert html.count('src="data:image/') == md.count("](figures/") and "src=\"figures" not in html
    for ref in md.split("](figures/")[1:]:
        assert (out / "figures" / ref.split(")")[0]).exists()


def test_inconclusive_when_not_converged_and_toys(tmp_path):
    """WGAN FID still falling fast -> claim 1 undecided; toy WGAN with few high-quality samples ->
    its missing modes are not evidence of collapse (claim 3 inconclusive), while the GAN's are."""
    from study.report import claim1, claim3
    for seed in (0, 1):
        write_trial(tmp_path, config("gan", "mlp", seed), 90.0, 0.0, 10, 0.1)
        write_trial(tmp_path, config("wgan", "mlp", seed), 44.0, 0.9, 10, 0.1, factors=(3, 2.5, 2.0, 1.0))
        for loss, hq, modes in (("gan", 0.9, 3), ("wgan", 0.2, 2)):
            cfg = config(loss, "mlp", seed, data="ring8")
            cfg["train"]["batch_size"] = 256  # zipped with the data set, as in sweeps/quick.yaml
            write_trial(tmp_path, cfg, 0.05, 0.5, modes, 0.8, quality="eval/w1", extra_final={"eval/hq": hq})
    run = load_run(tmp_path)
    assert run.tied == ["train.batch_size"] and not run.trials["cell"].str.contains("batch_size").any()
    t1, v1 = claim1.claim1(run)
    d = t1["claim1_difference"]
    assert row(d, data="mnist5k")["outcome"] == "undecided" and v1.verdict == "inconclusive"
    assert row(d, data="ring8")["metric"] == "eval/w1"
    t3, v3 = claim3.claim3(run)
    m = t3["claim3_modes"]
    assert row(m, cell="ring8 · mlp · GAN")["outcome"] == "collapse"
    assert row(m, cell="ring8 · mlp · WGAN")["outcome"] == "undecided"
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
