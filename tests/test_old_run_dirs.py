"""Run directories written before the algorithm registry and the run-directory module (by the code at
commit 5dea7e2: tests/fixtures/run_before_registry, a 2-trial ring8 sweep, checkpoints and samples.npz
dropped for size) stay readable, keep their trial ids, and count as done for the same sweep."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from study.config import load_trial_config
from study.report import build_report
from study.report.load import load_run
from study.rundir import load_result, trial_dirs

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "fixtures" / "run_before_registry"


def test_old_directories_are_read_and_keep_their_ids():
    run = load_run(OLD)
    assert sorted(run.trials["trial_id"]) == ["gan_mlp_ring8_s0_9a88f178", "wgan_mlp_ring8_s0_5d98f594"]
    assert set(run.trials["status"]) == {"completed"} and set(run.trials["hue"]) == {"GAN", "WGAN"}
    for d in trial_dirs(OLD):
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        if cfg["loss"] == "wgan":  # those runs clipped after each update: the switch's "after" is their id
            cfg["wgan"]["clip_order"] = "after"
        assert load_trial_config(cfg).trial_id() == d.name
        assert load_result(d)[0]["status"] == "completed"


def test_the_same_sweep_skips_them_and_the_report_builds(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(OLD, run)
    spec = tmp_path / "spec.yaml"
    spec.write_text((OLD / "sweep.yaml").read_text())
    p = subprocess.run([sys.executable, "-m", "study.sweep", str(spec), "--out", str(run), "--set",
                        "base.wgan.clip_order=after"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0 and "2 already done, 0 to run" in p.stderr, p.stderr
    out = build_report(run, tmp_path / "report")
    assert (out / "REPORT.md").exists() and "wgan_mlp_ring8_s0_5d98f594" in (out / "tables" / "trials.csv").read_text()


def test_old_and_new_clip_orders_are_not_pooled_into_one_cell(tmp_path):
    """The same spec run again today (clipping before each update) writes new trials beside the old ones;
    the report fills the key the old configs lack with the value they ran with, so the two are two cells."""
    run = tmp_path / "run"
    shutil.copytree(OLD, run)
    spec = tmp_path / "spec.yaml"
    spec.write_text((OLD / "sweep.yaml").read_text())
    p = subprocess.run([sys.executable, "-m", "study.sweep", str(spec), "--out", str(run)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0 and "1 already done, 1 to run" in p.stderr, p.stderr  # the GAN's id is unchanged
    wgan = load_run(run).trials.query("loss == 'wgan'")
    assert sorted(wgan["hue"]) == ["WGAN (clip_order=after)", "WGAN (clip_order=before)"]
    assert wgan["cell"].nunique() == 2
