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

from study.adaptive import design, new_seeds
from study.config import load_trial_config
from study.report.load import load_run
from study.report.rules import Action, Need, plan
from study.rundir import mark_extended
from study.trial import WorkerContext, extend, run_trial

ROOT = Path(__file__).resolve().parents[1]


def _cells(**over):
    rows = [dict(group="mnist5k · dcgan", loss="gan", state="works", state_bonferroni="works", in_verdict=True,
                 needs=[], needs_bonferroni=[], n=5, budget=3000),
            dict(group="mnist5k · dcgan", loss="wgan", state="undecided", state_bonferroni="undecided",
                 in_verdict=True, needs=[Need("seeds", 5, "5 more")], needs_bonferroni=[Need("seeds", 5, "5 more")],
                 n=5, budget=3000),
            dict(group="mnist5k · mlp", loss="wgan", state="undecided", state_bonferroni="undecided", in_verdict=True,
                 needs=[Need("iterations", 6000, "still improving"), Need("seeds", 3, "3 more")],
                 needs_bonferroni=[], n=5, budget=3000),
            dict(group="mnist5k · mlp", loss="gan", state="fails", state_bonferroni="undecided", in_verdict=True,
                 needs=[], needs_bonferroni=[Need("seeds", 2, "2 more")], n=5, budget=3000),
            dict(group="mnist5k · nobn", loss="wgan", state="undecided", state_bonferroni="undecided",
                 in_verdict=False, needs=[Need("seeds", 9, "ablation")], needs_bonferroni=[], n=2, budget=3000)]
    df = pd.DataFrame(rows)
    df["cell"] = df["group"] + " · " + df["loss"].str.upper()
    return df.assign(**over)


def test_plan_gives_open_cells_seeds_within_the_design_and_never_a_budget():
    d = design(10, budgets=[3000, 6000])
    assert d.budgets == (3000, 6000) and d.alpha == 0.025
    acts = plan(_cells(), d)
    assert {(a.kind, a.cell, a.target) for a in acts} == {
        ("seeds", "mnist5k · dcgan · WGAN", 10), ("seeds", "mnist5k · mlp · WGAN", 8), ("seeds", "mnist5k · mlp · GAN", 7)}
    # the same cell open at two budgets gets the larger of the two asks, once
    two = pd.concat([_cells(), _cells(budget=6000, needs=[[Need("seeds", 1, "1")]] * 5)], ignore_index=True)
    assert [a.target for a in plan(two, d) if a.cell == "mnist5k · dcgan · WGAN"] == [10]
    assert plan(_cells(n=10), d) == []  # seeds at the design size: nothing left to give


def test_new_seeds_follow_the_largest_and_never_reach_back():
    assert new_seeds([100, 101, 102], 5) == [103, 104]
    assert new_seeds([0, 2], 4) == [3, 4] and new_seeds([5], 1) == []
    assert design(10, extensions=1, base_iters=3000).budgets == (3000, 6000)


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
    """Declared budgets 10 and 20 from held-out seeds 100-101: round 1 trains them to 10; later rounds continue every
    trial to 20 and add seed 102 (the design size) where a cell is open. Every round is recorded; claim 1 is decided
    at each budget; the α ledger holds the design; the same command resumes (runs nothing); a new design over the
    same trials finds the α spent; a copy without its ledger is refused for deciding."""
    spec = {"name": "adaptive_tiny", "base": {"data": {"name": "ring8", "holdout": 200, "synthetic_size": 2048},
                                              "model": {"width": 8, "mlp_width": 16},
                                              "train": {"gen_iters": 10, "batch_size": 64, "checkpoint_every": 5},
                                              "eval": {"every": 5, "num_samples": 200, "w1_points": 100,
                                                       "w1_draws": 1, "grid_size": 16},
                                              "wgan": {"warmup": False}},
            "grid": {"loss": ["gan", "wgan"], "seed": [100, 101]},
            "until_decided": {"max_seeds": 3, "budgets": [10, 20]}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "study.sweep", str(path), "--out", str(out), "--workers", "2", "--report"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-2000:]
    doc = json.loads((out / "adaptive.json").read_text())
    assert doc["design"] == {"max_seeds": 3, "budgets": [10, 20]} and doc["stopped"]
    added = [c for r in doc["rounds"][1:] for c in r["added"]]
    assert {c["seed"] for c in added} <= {100, 101, 102} and 102 in {c["seed"] for c in added}
    assert {c["train"]["gen_iters"] for c in added if c["seed"] == 102} == {10, 20}  # new seeds start at the first
    assert {"claim1@10", "claim1@20"} <= set(doc["rounds"][-1]["verdicts"])
    entries = json.loads((out / "ledger.json").read_text())["entries"]
    assert len(entries) == 1 and entries[0]["alpha_total"] == 0.05 and entries[0]["budgets"] == [10, 20]
    assert entries[0]["rules"]["sha256"] and doc["ledger"] == entries[0]["sha"][:16]
    done = [d for d in out.iterdir() if (d / "result.json").exists()]
    assert len(done) == 12 and all((d / "ledger_id").read_text().strip() == doc["ledger"] for d in done)
    states = pd.read_csv(out / "report" / "tables" / "claim1_states.csv")
    assert sorted(states["budget"].unique()) == [10, 20] and (states.groupby("budget")["n_trials"].sum() == 6).all()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "0 to run" in again.stderr
    assert json.loads((out / "adaptive.json").read_text())["rounds"] == doc["rounds"]
    spent = subprocess.run(cmd + ["--max-seeds", "5"], capture_output=True, text=True, cwd=ROOT)
    assert spent.returncode == 2 and "α (0.05) is spent" in spent.stderr
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "ledger.json").unlink()
    refused = subprocess.run([sys.executable, "-m", "study.report", str(copy)], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "ledger.json missing" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    (copy / "adaptive.json").unlink()  # the trials still name their ledger: never decided as a fresh plain sweep
    refused = subprocess.run([sys.executable, "-m", "study.report", str(copy)], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "ledger.json missing" in refused.stderr
    shutil.rmtree(out)
