"""--until-decided (study/adaptive.py): the planner gives only what an open cell's "would decide it" asks for,
within the design; a run goes round by round, records every round in adaptive.json, resumes, and the report
tells the story of the rounds; an extended trial is counted once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from study.adaptive import design
from study.config import load_trial_config
from study.report.load import load_run
from study.report.rules import Action, Need, plan
from study.rundir import mark_extended
from study.trial import WorkerContext, extend, run_trial

ROOT = Path(__file__).resolve().parents[1]


def _cells(**over):
    rows = [dict(group="mnist5k · dcgan", loss="gan", state="works", state_bonferroni="works", in_verdict=True,
                 needs=[], needs_bonferroni=[], n=5, gen_iters=3000),
            dict(group="mnist5k · dcgan", loss="wgan", state="undecided", state_bonferroni="undecided",
                 in_verdict=True, needs=[Need("seeds", 5, "5 more")], needs_bonferroni=[Need("seeds", 5, "5 more")],
                 n=5, gen_iters=3000),
            dict(group="mnist5k · mlp", loss="wgan", state="undecided", state_bonferroni="undecided", in_verdict=True,
                 needs=[Need("iterations", 6000, "still improving"), Need("seeds", 3, "3 more")],
                 needs_bonferroni=[], n=5, gen_iters=3000),
            dict(group="mnist5k · mlp", loss="gan", state="fails", state_bonferroni="undecided", in_verdict=True,
                 needs=[], needs_bonferroni=[Need("seeds", 2, "2 more")], n=5, gen_iters=3000),
            dict(group="mnist5k · nobn", loss="wgan", state="undecided", state_bonferroni="undecided",
                 in_verdict=False, needs=[Need("seeds", 9, "ablation")], needs_bonferroni=[], n=2, gen_iters=3000)]
    df = pd.DataFrame(rows)
    df["cell"] = df["group"] + " · " + df["loss"].str.upper()
    return df.assign(**over)


def test_plan_gives_open_cells_what_they_ask_for_within_the_design():
    acts = plan(_cells(), design(10, 1))
    assert Action("iterations", "mnist5k · mlp", None, None, 6000, "still improving") in acts  # the whole group
    assert Action("seeds", "mnist5k · dcgan", "wgan", "mnist5k · dcgan · WGAN", 10, "5 more") in acts
    assert len(acts) == 2  # no seeds for a group being extended, none for a decided cell or an ablation
    extended = _cells(gen_iters=6000)
    acts = plan(extended, design(10, 1), start_iters={"mnist5k · mlp": 3000, "mnist5k · dcgan": 6000})
    assert [(a.kind, a.group, a.loss, a.target) for a in acts if a.group == "mnist5k · mlp"] == \
        [("seeds", "mnist5k · mlp", "wgan", 8), ("seeds", "mnist5k · mlp", "gan", 7)]  # no second doubling
    assert plan(_cells(n=10), design(10, 0)) == []  # seeds at the design size, no extension allowed: nothing left


def test_an_extended_trial_is_counted_once(tiny, tmp_path):
    ctx = WorkerContext()
    short = load_trial_config(tiny(train__gen_iters=10))
    long = load_trial_config(tiny(train__gen_iters=20))
    run_trial(short, tmp_path / short.trial_id(), ctx=ctx)
    assert extend(tmp_path / short.trial_id(), tmp_path / long.trial_id()) == 10
    mark_extended(tmp_path / short.trial_id(), long.trial_id())
    assert run_trial(long, tmp_path / long.trial_id(), ctx=ctx)["resumed_from"] == 10
    run = load_run(tmp_path)
    assert list(run.trials["trial_id"]) == [long.trial_id()] and any("counted once" in n for n in run.notes)


def test_until_decided_end_to_end(tmp_path):
    """Round 1 (2 seeds per cell), round 2 (a third seed, the design size), then the limit; every round recorded;
    the same command again resumes (runs nothing); the report tells the rounds; a different design is refused."""
    spec = {"name": "adaptive_tiny", "base": {"data": {"name": "ring8", "holdout": 200, "synthetic_size": 2048},
                                              "model": {"width": 8, "mlp_width": 16},
                                              "train": {"gen_iters": 10, "batch_size": 64, "checkpoint_every": 5},
                                              "eval": {"every": 5, "num_samples": 200, "w1_points": 100,
                                                       "w1_draws": 1, "grid_size": 16},
                                              "wgan": {"warmup": False}},
            "grid": {"loss": ["gan", "wgan"], "seed": [0, 1]}, "until_decided": {"max_seeds": 3, "extensions": 0}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "study.sweep", str(path), "--out", str(out), "--workers", "2", "--report"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-2000:]
    doc = json.loads((out / "adaptive.json").read_text())
    assert doc["design"] == {"max_seeds": 3, "extensions": 0}
    assert [r["round"] for r in doc["rounds"]] == [1, 2] and doc["stopped"]
    assert len(doc["rounds"][1]["added"]) == 2 and {c["seed"] for c in doc["rounds"][1]["added"]} == {2}
    assert "seeds 2 (2 → 3)" in " ".join(doc["rounds"][1]["why"])
    assert set(doc["rounds"][1]["verdicts"]) == {"claim1", "claim2", "claim3"}
    assert len([d for d in out.iterdir() if (d / "result.json").exists()]) == 6
    md = (out / "report" / "REPORT.md").read_text()
    assert "## Rounds (--until-decided)" in md and (out / "report" / "figures" / "rounds.png").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "0 to run" in again.stderr and "6 already done" in again.stderr
    assert json.loads((out / "adaptive.json").read_text())["rounds"][1]["added"] == doc["rounds"][1]["added"]
    bad = subprocess.run(cmd + ["--max-seeds", "5"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "started with --max-seeds 3" in bad.stderr
    shutil.rmtree(out)
