"""Every sweep file we ship loads, validates and expands; the quick study runs end to end (tiny) and
its report is written."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").rglob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[str(p.relative_to(ROOT)) for p in SWEEPS])
def test_sweep_file_expands(path):
    doc, trials = load_spec(path)
    assert trials and len({t.id for t in trials}) == len(trials)
    assert all(t.config.train.gen_iters > 0 for t in trials)


def test_shipped_sweeps_cover_the_three_claims():
    names = {p.stem for p in SWEEPS}
    assert {"quick", "arch", "modes", "correlation"} <= names
    _, arch = load_spec(ROOT / "sweeps" / "arch.yaml")
    assert {t.config.loss for t in arch} == {"gan", "wgan"} and len({t.config.backbone.label for t in arch}) == 5
    _, quick = load_spec(ROOT / "sweeps" / "quick.yaml")
    assert {t.config.data.name for t in quick} == {"mnist5k", "ring8"}


def run_cli(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr


def tiny_sweep(spec: str, out: Path, iters: int, samples: int) -> pd.DataFrame:
    """Run a shipped spec shrunk to `iters` generator iterations, one seed, no warm-up; its results.csv."""
    sets = {"base.train.gen_iters": iters, "base.train.checkpoint_every": iters // 2, "base.eval.every": iters // 2,
            "base.eval.num_samples": samples, "grid.seed": "[0]", "base.wgan.warmup": "false"}
    run_cli("study.sweep", str(ROOT / "sweeps" / spec), "--out", str(out),
            *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")])
    return pd.read_csv(out / "results.csv")


def test_quick_study_end_to_end_tiny(tmp_path):
    """The README's first command, shrunk: sweep + report on the real quick spec."""
    out, rep = tmp_path / "runs", tmp_path / "report"
    df = tiny_sweep("quick.yaml", out, 6, 300)
    assert len(df) == 8 and (df["status"] == "completed").all()
    img = df[df["data.name"] == "mnist5k"]
    assert img["eval/fid@domain"].notna().all() and (img["eval/fid@domain"] > 0).all()
    assert img["eval/modes"].between(1, 10).all()
    toy = df[df["data.name"] == "ring8"]
    assert toy["eval/w1"].notna().all() and (toy["correlation.n"] == 2).all()
    res = json.loads(next(out.glob("wgan_dcgan_mnist5k*/result.json")).read_text())
    assert res["eval_info"]["domain_classifier_acc"] >= 0.9

    run_cli("study.report", str(out), "--out", str(rep))
    assert (rep / "REPORT.md").exists() and (rep / "report.html").stat().st_size > 10_000
    verdicts = json.loads((rep / "verdicts.json").read_text())
    assert len(verdicts) >= 3
    pngs = list((rep / "figures").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert list((rep / "tables").glob("*.csv"))


@pytest.mark.slow  # ~55 s; every run covers the conditional fits and metrics in tests/test_conditional.py
def test_conditional_sweep_end_to_end_tiny(tmp_path):
    """sweeps/conditional.yaml shrunk: AC-GAN and AC-WGAN trials write class metrics, results.csv has
    them, and the report gains its class-conditional tables."""
    out, rep = tmp_path / "runs", tmp_path / "report"
    df = tiny_sweep("conditional.yaml", out, 4, 200)
    assert len(df) == 4 and (df["status"] == "completed").all()
    assert df["eval/class_acc"].between(0, 1).all() and (df["eval/class_fid@domain"] > 0).all()
    assert all(t.startswith(("acgan_", "acwgan_")) for t in df["trial_id"])
    run_cli("study.report", str(out), "--out", str(rep))
    table = pd.read_csv(rep / "tables" / "conditional.csv")
    assert len(table) == 4 and table["class_acc_mean"].between(0, 1).all() and (table["classifier_acc"] > 0.9).all()
    assert (table["real_class_fid"] > 0).all()
    assert sorted(table["cell"].str.contains("WGAN")) == [False, False, True, True]
    per_class = pd.read_csv(rep / "tables" / "conditional_per_class.csv")
    assert [f"c{k}" for k in range(10)] == [c for c in per_class.columns if c.startswith("c") and c != "cell"]
    assert "Class-conditional trials" in (rep / "REPORT.md").read_text()
