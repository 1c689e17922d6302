"""Hostile input, round 3 (issue 23): grids too large to expand, run directories whose configs no longer match
their ids, evaluations too large for memory or longer than training, one worker set-up for both executors.
Tiny CPU trials, seconds each."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from study import sweep as sweep_mod
from study.cli import BAD_INPUT, FAILED, OK

sys.path.insert(0, str(Path(__file__).parent))
from test_faults import cmd, env, one_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "fixtures" / "run_before_registry"
SPEC = """name: t
base:
  data: {name: ring8, holdout: 100, synthetic_size: 1024}
  backbone: mlp
  model: {nz: 2, mlp_width: 16}
  train: {gen_iters: 4, batch_size: 16, checkpoint_every: 2}
  eval: {every: 0, num_samples: 32, w1_points: 32, w1_draws: 1, grid_size: 16}
  wgan: {warmup: false}
grid:
  loss: [wgan]
  seed: [0, 1]
"""


def axes_spec(d: Path, axes: int, values: int = 10) -> Path:
    """A ring8 spec of `axes` axes of `values` values each (every value valid alone)."""
    keys = ["seed", "train.gen_iters", "train.batch_size", "model.mlp_width", "eval.grid_size", "eval.w1_draws",
            "model.width"][:axes]
    spec = d / "big.yaml"
    spec.write_text(yaml.safe_dump({"name": "big", "base": {"data": {"name": "ring8"}, "backbone": "mlp"},
                                    "grid": {k: list(range(1, values + 1)) for k in keys}}, sort_keys=False))
    return spec


# ------------------------------------------------------------------------------------------- 1. grid size
def test_a_ten_million_trial_grid_is_one_line_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = axes_spec(tmp_path, 7)
    t0 = time.perf_counter()
    assert sweep_mod.main([str(spec), "--dry-run"]) == BAD_INPUT
    took = time.perf_counter() - t0
    assert one_line(capsys.readouterr().err) == (
        f"{spec}: grid: 10,000,000 trials (seed (10) x train.gen_iters (10) x train.batch_size (10) x "
        "model.mlp_width (10) x eval.grid_size (10) x eval.w1_draws (10) x model.width (10)) is more than the "
        "limit of 1,000,000; split the sweep or shorten an axis")
    assert took < 1.0, took  # counted, never built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_zip_axes_count_once(tmp_path):
    from study.config import ConfigError
    from study.spec import MAX_TRIALS, load_spec
    spec = axes_spec(tmp_path, 3, values=100)  # 10^6: exactly the limit, allowed (not built here)
    zipped = ["zip.wgan.lr=[1.0e-4, 2.0e-4]", "zip.wgan.clip=[0.01, 0.02]"]
    with pytest.raises(ConfigError, match=r"2,000,000 trials \(.* x zip wgan.lr, wgan.clip \(2\)\)"):
        load_spec(spec, zipped)
    assert MAX_TRIALS == 1_000_000


def test_a_large_grid_expands_in_seconds_to_the_same_trials(tmp_path):
    from study.config import TrialConfig
    from study.spec import load_spec
    spec = axes_spec(tmp_path, 4)  # 10,000 trials
    t0 = time.process_time()
    doc, trials = load_spec(spec)
    took = time.process_time() - t0
    print(f"10^4-trial grid expanded in {took:.2f} s of CPU")
    assert len(trials) == 10_000 and len({t.id for t in trials}) == 10_000 and took < 10
    for t in trials[::997]:  # the quick build gives the trial a deep copy + validation gives
        d = json.loads(json.dumps(doc["base"]))
        for k, v in t.varied.items():
            *path, last = k.split(".")
            node = d
            for p in path:
                node = node.setdefault(p, {})
            node[last] = v
        assert TrialConfig.model_validate(d).trial_id() == t.id
    assert doc["base"] == {"data": {"name": "ring8"}, "backbone": "mlp"}  # the spec document is untouched


@pytest.mark.slow
def test_a_100k_grid_dry_run_lists_every_trial(tmp_path):
    spec = axes_spec(tmp_path, 5)
    t0 = time.perf_counter()
    p = subprocess.run(cmd(spec, "--dry-run"), env=env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    print(f"10^5-trial dry run: {time.perf_counter() - t0:.1f} s (with the interpreter's start and imports)")
    assert p.returncode == OK and p.stdout.startswith("100000 trials -> runs/big/")
    assert len(p.stdout.splitlines()) == 100_002


# ---------------------------------------------------------------------- 2. configs that do not match their id
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished sweep of 2 tiny WGAN trials (seeds 0 and 1), run in this process as a sweep's workers would."""
    from study.rundir import write_results_csv
    from study.spec import load_spec
    from study.trial import WorkerContext, run_trial
    root = tmp_path_factory.mktemp("small")
    spec, out = root / "t.yaml", root / "run"
    spec.write_text(SPEC)
    doc, trials = load_spec(spec)
    ctx = WorkerContext()
    for t in trials:
        assert run_trial(t.config, out / t.id, ctx=ctx)["status"] == "completed"
    sweep_mod.keep_spec(out, doc)
    write_results_csv(out)
    return spec, out


def copied(small_run, tmp_path) -> tuple[Path, Path, str]:
    """(spec, a copy of the run, the seed-0 trial's id) with seed: 0 edited to seed: 7 in that trial's config."""
    spec, out = small_run
    shutil.copytree(out, tmp_path / "run")
    out = tmp_path / "run"
    (s0,) = [d.name for d in out.glob("*_s0_*")]
    cfg = out / s0 / "config.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 0", "seed: 7"))
    return spec, out, s0


def test_the_sweep_sets_an_edited_config_aside(small_run, tmp_path):
    from study.spec import load_spec
    spec, out, s0 = copied(small_run, tmp_path)
    trials = load_spec(spec)[1]
    run, skipped, damaged, mismatched = sweep_mod.todo(trials, out, retry_failed=False)
    assert ([t.id for t in run], skipped, damaged, mismatched) == ([s0], 1, [], [s0])
    assert sorted(p.name for p in (out / s0).glob("*.damaged")) == ["config.yaml.damaged", "result.json.damaged"]
    assert not (out / s0 / "result.json").exists() and not (out / s0 / "config.yaml").exists()
    assert sweep_mod.todo(trials, out, retry_failed=False)[1:] == (1, [], [])  # said once


@pytest.mark.slow
def test_the_sweep_runs_an_edited_trial_again(small_run, tmp_path):
    spec, out, s0 = copied(small_run, tmp_path)
    before = json.loads((out / s0 / "result.json").read_text())
    p = subprocess.run(cmd(spec, "--out", out, "--workers", "1"), env=env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == OK, p.stderr
    assert "2 trials, 1 already done, 1 to run" in p.stderr
    assert (f"[t] 1 trial(s) whose config.yaml does not hash to their id set aside as config.yaml.damaged and "
            f"result.json.damaged, run again: {s0}") in p.stderr
    after = json.loads((out / s0 / "result.json").read_text())
    assert after["final"] == before["final"] and after["resumed_from"] == 2  # from its last checkpoint
    assert yaml.safe_load((out / s0 / "config.yaml").read_text())["seed"] == 0
    assert yaml.safe_load((out / s0 / "config.yaml.damaged").read_text())["seed"] == 7
    row = pd.read_csv(out / "results.csv").set_index("trial_id").loc[s0]
    assert row["status"] == "completed" and row["seed"] == 0


def test_the_report_leaves_an_edited_config_out_with_a_note(small_run, tmp_path):
    from study.paper.common import load_trials
    from study.report.load import load_run
    from study.rundir import ResultsTable
    _, out, s0 = copied(small_run, tmp_path)
    run = load_run(out)
    row = run.trials.set_index("trial_id").loc[s0]
    assert row["status"] == "incomplete" and row["seed"] == 0  # the id's seed, not the edited one
    assert row["issues"].startswith("config.yaml does not hash to the trial id (it hashes to wgan_mlp_ring8_s7_")
    assert s0 not in run.configs and s0 not in run.results and s0 not in run.metrics
    assert (f"1 trial(s) left out, their config.yaml does not hash to their id (edited after the trial ran?): {s0}; "
            "the same sweep runs them again") in run.notes
    assert (run.trials["status"] == "completed").sum() == 1
    csv_row = ResultsTable(out).rows[s0]
    assert csv_row["status"] == "incomplete" and csv_row["seed"] is None and "eval/w1" not in csv_row
    assert [t.id for t in load_trials(out)] == [d.name for d in out.glob("*_s1_*")]  # the paper's reader


def test_legacy_configs_keep_matching_their_ids():
    from study.rundir import id_mismatch, read_config, trial_dirs
    assert [id_mismatch(d, read_config(d)[0]) for d in trial_dirs(OLD)] == [None, None]


# ------------------------------------------------------------------------------------------ study.verify
def verify(capsys, run: Path) -> tuple[int, str, str]:
    from study.verify import main
    rc = main([str(run)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_a_clean_run_and_an_old_one(small_run, capsys):
    p = subprocess.run(cmd(small_run[1], module="study.verify"), env=env(), capture_output=True, text=True,
                       timeout=300)
    assert (p.returncode, p.stdout, p.stderr) == (OK, "", f"{small_run[1]}: 2 trial(s), no problem\n")
    assert verify(capsys, OLD) == (OK, "", f"{OLD}: 2 trial(s), no problem\n")  # legacy ids are theirs


def test_verify_names_every_problem_one_line_each(small_run, tmp_path, capsys):
    import torch
    _, out, s0 = copied(small_run, tmp_path)
    (s1,) = [d.name for d in out.glob("*_s1_*")]
    stray = out / "wgan_mlp_ring8_s3_00000000"  # a trial of no spec, under a name that is not its config's
    shutil.copytree(out / s1, stray)
    res = json.loads((out / s1 / "result.json").read_text())
    (out / s1 / "result.json").write_text(json.dumps(res | {"gen_iters": "4", "final": {"eval/w1": "low"}}))
    metrics = out / s1 / "metrics.csv"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")  # steps 1, 0, 2, ...
    (ckpt,) = (out / s1 / "checkpoints").glob("iter_*.ckpt")
    ckpt.write_bytes(b"garbage")
    torch.save({"study": {"gen_iter": 3}, "state_dict": {}}, out / s1 / "checkpoints" / "iter_000001.ckpt")
    rc, stdout, stderr = verify(capsys, out)
    assert rc == FAILED, stderr
    got = stdout.splitlines()
    edited = f"does not hash to the trial id (it hashes to {s1}: edited after the trial ran?)"
    assert got[1:] == [
        f"{out / s1}/result.json: 'gen_iters' is str (allowed: int)",
        f"{out / s1}/result.json: 'final.eval/w1' is not a number",
        f"{out / s1}/metrics.csv: row 3: step 0 after 1 (steps must increase)",
        f"{out / s1}/checkpoints/iter_000001.ckpt: written at generator iteration 3, not the one its name says",
        f"{ckpt}: does not load (UnpicklingError)",
        f"{stray}/config.yaml: {edited}",
        f"{stray}/result.json: trial_id is {s1}, not its directory's name",
        f"{stray}/result.json: its config {edited}",
        f"{stray}: not a trial of sweep.yaml (nor of an earlier spec kept beside it)",
    ], stdout
    assert got[0].startswith(f"{out / s0}/config.yaml: does not hash to the trial id (it hashes to wgan_mlp_ring8_s7_")
    assert stderr == f"{out}: 3 trial(s), 10 problem(s)\n"


def test_verify_bad_input_is_exit_2(tmp_path, capsys):
    assert verify(capsys, tmp_path / "nope") == (BAD_INPUT, "", f"{tmp_path / 'nope'}: no such run directory\n")
    assert verify(capsys, tmp_path) == (BAD_INPUT, "", f"{tmp_path}: not a run directory (no sweep.yaml, no trial "
                                                       "directory)\n")
