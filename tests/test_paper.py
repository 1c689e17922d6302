"""study.paper: each figure's builder turns run directories into a valid PNG and a CSV with the expected
columns; the plan expands to the intended trials; the CLI writes FIGURES.md and surfaces user errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from study.config import load_trial_config, with_legacy
from study.paper import analytic, curves, optim, samples
from study.paper.__main__ import main
from study.paper.common import PaperError, load_trials
from study.paper.plan import FIGURES, OVERRIDES, plan, resolve_figures, sweep_file, sweep_sets

STEPS, EVERY = 300, 50


def assert_png(path: Path) -> None:
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 200


def make_trial(root: Path, loss: str, backbone, lr: float | None = None, optimizer: str | None = None,
               data: str = "mnist5k", seed: int = 0, status: str = "completed", improving: bool = True) -> Path:
    """A trial directory as a sweep writes it (docs/run-layout.md), with known curves."""
    bb = {"generator": backbone, "critic": backbone} if isinstance(backbone, str) else backbone
    algo = {"gan": {"optimizer": "adam", "lr": 2e-4}, "wgan": {"optimizer": "rmsprop", "lr": 2e-4, "clip": 0.01}}[loss]
    algo.update({k: v for k, v in (("lr", lr), ("optimizer", optimizer)) if v is not None})
    cfg = {"loss": loss, "backbone": bb, "seed": seed, "data": {"name": data, **({} if data == "ring8" else
           {"image_size": 16})}, "train": {"gen_iters": STEPS}, "eval": {"every": EVERY}, loss: algo}
    d = root / load_trial_config(with_legacy(cfg)).trial_id()  # readers check a trial's id against its config
    (d / "samples").mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    rng = np.random.default_rng(seed)
    steps = np.arange(1, STEPS + 1)
    decay = np.exp(-steps / 100) if improving else np.ones(STEPS)
    m = pd.DataFrame({"step": steps, "train/critic_iters": steps * 5})
    if loss == "wgan":
        m["train/w_estimate"] = 0.05 * decay + 0.002 * rng.standard_normal(STEPS)
        m["train/d_loss"] = -m["train/w_estimate"]
    else:
        m["train/js_estimate"] = 0.3 + 0.1 * (1 - decay) + 0.02 * rng.standard_normal(STEPS)
        m["train/d_loss"] = 2 * (math.log(2) - m["train/js_estimate"])
    m["train/g_loss"] = 1.0 + 0.1 * rng.standard_normal(STEPS)
    q = "eval/w1" if data == "ring8" else "eval/fid@domain"
    for col in (q, "eval/modes", "eval/mode_kl"):
        m[col] = np.nan
    for s in range(EVERY, STEPS + 1, EVERY):
        m.loc[m["step"] == s, [q, "eval/modes", "eval/mode_kl"]] = [10 * decay[s - 1] + 1, 10, 0.05]
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8), "L").save(d / "samples" / f"grid_{s:06d}.png")
    m.to_csv(d / "metrics.csv", index=False)
    (d / "result.json").write_text(json.dumps({"trial_id": d.name, "status": status, "gen_iters": STEPS}))
    return d


@pytest.fixture
def runs(tmp_path) -> Path:
    """The quick plan's trials, hand-made: the main sweep and the toy sweep."""
    main_dir, toy = tmp_path / "runs" / "gan_wgan", tmp_path / "runs" / "toy"
    mlp_dcgan, const = {"generator": "mlp", "critic": "dcgan"}, {"generator": "dcgan_const", "critic": "dcgan"}
    for loss in ("gan", "wgan"):
        for bb in (mlp_dcgan, "dcgan", const):
            make_trial(main_dir, loss, bb)
        make_trial(toy, loss, "mlp", data="ring8")
    make_trial(main_dir, "gan", "mlp")
    make_trial(main_dir, "wgan", "mlp", lr=5e-3, improving=False)
    make_trial(main_dir, "wgan", "dcgan", optimizer="adam", status="diverged")
    (main_dir / "sweep.yaml").write_text("name: gan_wgan\n")
    return tmp_path / "runs"


def test_fig1_is_the_closed_form(tmp_path):
    png, csv = analytic.build_fig1(tmp_path, n_theta=41, n_check=5, n_samples=50)
    assert_png(png)
    df = pd.read_csv(csv)
    assert {"theta", "em", "js", "em_sampled"} <= set(df.columns)
    assert np.allclose(df["em"], df["theta"].abs())
    assert np.allclose(df.loc[df["theta"] != 0, "js"], math.log(2)) and (df.loc[df["theta"] == 0, "js"] == 0).all()
    s = df.dropna(subset=["em_sampled"])
    assert len(s) == 5 and (s["em_sampled"] - s["em"]).abs().max() < 0.15


def test_fig2_builds_from_a_short_training(tmp_path):
    png, csv = analytic.build_fig2(tmp_path, steps=60)
    assert_png(png)
    df = pd.read_csv(csv)
    assert {"x", "p_real", "p_fake", "gan_D", "gan_dD_dx", "wgan_critic", "wgan_dcritic_dx"} <= set(df.columns)
    assert df["gan_D"].between(0, 1).all() and np.isfinite(df["wgan_dcritic_dx"]).all()


@pytest.mark.slow
def test_fig2_shows_the_papers_contrast(tmp_path):
    png, csv = analytic.build_fig2(tmp_path)
    s = analytic.fig2_summary(pd.read_csv(csv))
    assert s["gan_grad_at_fake_rel"] < 1e-3 < s["wgan_grad_at_fake_rel"] and s["critic_linear_r2"] > 0.9


@pytest.mark.parametrize("build,loss,key,fig", [(curves.build_fig3, "wgan", "train/w_estimate", "3"),
                                                 (curves.build_fig4, "gan", "train/js_estimate", "4"),
                                                 (curves.build_fig8, "gan", "train/g_loss", "8")])
def test_curve_figures(runs, tmp_path, build, loss, key, fig):
    png, csv = build([runs / "gan_wgan", runs / "toy"], tmp_path / "out")
    assert_png(png)
    df = pd.read_csv(csv)
    assert list(df.columns) == curves.CSV_COLUMNS
    assert set(df["loss"]) == {loss} and set(df["metric"]) == {key}
    # the paper's three settings (MLP G, DCGAN G, MLP/MLP) and the toy; not the const-filter G nor the Adam run
    assert df["panel"].nunique() == 4 and df.groupby("trial_id").size().eq(STEPS).all()
    assert not df["backbone"].str.contains("const").any() and set(df["optimizer"]) == {curves.DEFAULT_OPT[loss]}
    assert set(df["quality_metric"]) == {"eval/fid@domain", "eval/w1"}
    assert df.dropna(subset=["quality"]).groupby("trial_id").size().eq(STEPS // EVERY).all()
    assert np.isfinite(df["value_median101"]).all()
    sentence = curves.describe(csv, fig)
    assert sentence.startswith("Paper:") and "ρ =" in sentence


def test_fig3_verdicts(runs, tmp_path):
    _, csv = curves.build_fig3([runs / "gan_wgan", runs / "toy"], tmp_path)
    stats = curves.panel_stats(pd.read_csv(csv))
    high = [p for p in stats if "high lr 0.005" in p]
    assert len(high) == 1 and math.isnan(stats[high[0]]["rho"])  # flat loss: no correlation
    assert stats["mnist5k: DCGAN generator and critic"]["rho"] > 0.9  # estimate falls with FID
    text = curves.describe(csv, "3")
    assert "this run looks like the paper's figure" in text and "Described, not decided" in text


@pytest.mark.parametrize("fig", ["5", "6", "7"])
def test_sample_figures(runs, tmp_path, fig):
    png, csv = getattr(samples, f"build_fig{fig}")(runs / "gan_wgan", tmp_path)
    assert_png(png)
    df = pd.read_csv(csv)
    assert list(df.columns) == samples.CSV_COLUMNS
    assert set(df["loss"]) == {"gan", "wgan"} and df["backbone"].nunique() == 1
    assert df["status"].eq("completed").all()  # not the diverged Adam run: an ablation, not the paper's setting
    assert df.groupby("trial_id").size().eq(STEPS // EVERY).all() and (df["grid"] != "").all()
    assert samples.describe(csv, fig).startswith("Claim:")


def test_optim_figure(runs, tmp_path):
    png, csv = optim.build_optim(runs / "gan_wgan", tmp_path)
    assert_png(png)
    df = pd.read_csv(csv)
    assert list(df.columns) == optim.CSV_COLUMNS
    # only trials that differ in the optimizer alone: not the high-lr MLP run, nor other backbones
    assert set(df["optimizer"]) == {"adam", "rmsprop"} and set(df["lr"]) == {2e-4} and set(df["backbone"]) == {"dcgan"}
    assert "diverged" in set(df["status"])
    assert "agrees with the paper: Adam is unstable" in optim.describe(csv)


def test_builders_refuse_empty_runs(tmp_path):
    for build in (curves.build_fig3, samples.build_fig5, optim.build_optim):
        with pytest.raises(PaperError, match="no|need"):
            build(tmp_path / "nothing", tmp_path)


def test_quick_plan_expands_to_the_intended_trials():
    from study.spec import load_spec
    _, trials = load_spec(sweep_file("gan_wgan"), sweep_sets("quick", "gan_wgan"))
    got = {(t.config.loss, t.config.backbone.label, t.config.algo.optimizer, t.config.algo.lr) for t in trials}
    assert got == {("wgan", "mlp/dcgan", "rmsprop", 2e-4), ("wgan", "dcgan", "rmsprop", 2e-4),
                   ("wgan", "mlp", "rmsprop", 5e-3), ("wgan", "dcgan_const/dcgan", "rmsprop", 2e-4),
                   ("wgan", "dcgan", "adam", 2e-4), ("gan", "mlp/dcgan", "adam", 2e-4), ("gan", "dcgan", "adam", 2e-4),
                   ("gan", "mlp", "adam", 2e-4), ("gan", "dcgan_const/dcgan", "adam", 2e-4)}
    assert {t.config.data.name for t in trials} == {"mnist5k"} and trials[0].config.loss == "wgan"
    _, toys = load_spec(sweep_file("toy"), sweep_sets("quick", "toy"))
    assert {t.config.loss for t in toys} == {"gan", "wgan"} and {t.config.data.name for t in toys} == {"ring8"}
    _, full = load_spec(sweep_file("gan_wgan"), sweep_sets("full", "gan_wgan", "/data/lsun"))
    assert {(t.config.data.name, t.config.data.image_size, t.config.data.root) for t in full} == {
        ("image_folder", 64, "/data/lsun")} and full[0].config.train.gen_iters >= 100000
    assert set(OVERRIDES["quick"]) == set(OVERRIDES["full"])
    assert all(f.exists() for sw in plan("quick", list(FIGURES)).values() for f, _ in sw)


def test_figure_names():
    assert resolve_figures(None) == list(FIGURES)
    assert resolve_figures(["8", "fig3", "§4.2", "3"]) == ["3", "8", "4.2"]
    with pytest.raises(ValueError, match="unknown figure '9'"):
        resolve_figures(["9"])


def test_cli_builds_from_existing_runs_and_keeps_entries(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--figure", "1", "--out", str(out)]) == 0
    assert main(["--figure", "3", "5", "--no-run", "--runs", str(runs), "--out", str(out)]) == 0
    md = (out / "FIGURES.md").read_text()
    for name in ("fig1_em_vs_js.png", "fig3_w_estimate.png", "fig3_w_estimate.csv", "fig5_samples_dcgan.png"):
        assert name in md and (out / name).exists()
    assert "python -m study.paper --figure 3 --scale quick" in md and "python -m study.sweep" in md
    assert md.count("**What it shows.**") == 3 and "gan_wgan.yaml as run" in md
    # a figure whose runs are missing is reported, not fatal; FIGURES.md keeps the others
    assert main(["--figure", "6", "--no-run", "--runs", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "not built" in capsys.readouterr().err and "fig3_w_estimate.png" in (out / "FIGURES.md").read_text()


def test_cli_user_errors(tmp_path, capsys):
    assert main(["--figure", "11"]) == 2
    assert "unknown figure '11'" in capsys.readouterr().err
    # full scale without the LSUN folder: the sweep's own pre-flight check, one line naming the path, exit 2
    missing = tmp_path / "no_lsun"
    assert main(["--figure", "5", "--scale", "full", "--data-root", str(missing), "--runs", str(tmp_path / "r"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]


def test_load_trials_skips_foreign_directories(runs):
    (runs / "gan_wgan" / "not_a_trial").mkdir()
    assert len(load_trials(runs / "gan_wgan")) == 9 and len(load_trials(next((runs / "toy").iterdir()))) == 1


@pytest.mark.slow
def test_quick_pipeline_end_to_end_on_tiny_sweeps(tmp_path, monkeypatch):
    """The real thing, shrunk: both sweeps of the plan at a few iterations, every figure, FIGURES.md; a second
    invocation reuses the completed trials."""
    from study.paper import plan as plan_mod
    tiny = ["base.model={nz: 100, width: 8, mlp_width: 32}",
            "base.train={gen_iters: 20, batch_size: 16, checkpoint_every: 10}",
            "base.eval={every: 10, num_samples: 200, grid_size: 16}", "base.wgan={warmup: false}"]
    monkeypatch.setitem(plan_mod.OVERRIDES, "quick", {
        "gan_wgan": [o for o in plan_mod.OVERRIDES["quick"]["gan_wgan"] if o.startswith(("zip.", "base.data"))] + tiny,
        "toy": ["base.model={nz: 2, mlp_width: 32}", "base.train={gen_iters: 20, batch_size: 32, checkpoint_every: 10}",
                "base.eval={every: 10, num_samples: 200, w1_points: 100, w1_draws: 1}", "base.wgan={warmup: false}"]})
    runs, out = tmp_path / "runs", tmp_path / "out"
    assert main(["--runs", str(runs), "--out", str(out), "--workers", "2"]) == 0
    for f in ("fig1_em_vs_js", "fig2_discriminator_vs_critic", "fig3_w_estimate", "fig4_js_estimate",
              "fig5_samples_dcgan", "fig6_samples_const_nobn", "fig7_samples_mlp", "fig8_generator_loss",
              "sec4_2_adam_vs_rmsprop"):
        assert_png(out / f"{f}.png") and len(pd.read_csv(out / f"{f}.csv"))
    assert len(list((runs / "gan_wgan").glob("*/result.json"))) == 9
    mtime = {p: p.stat().st_mtime for p in runs.glob("*/*/result.json")}
    assert main(["--figure", "3", "--runs", str(runs), "--out", str(out)]) == 0  # reuses: no trial re-runs
    assert all(p.stat().st_mtime == t for p, t in mtime.items())


def test_help_says_where_the_runs_go(capsys):
    from study.paper.__main__ import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(not the runs: see --runs)" in text and "runs/paper-<scale> under the current directory" in text
