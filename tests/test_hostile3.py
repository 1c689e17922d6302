"""Hostile input, round 3 (issue 23): grids too large to expand, run directories whose configs no longer match
their ids, evaluations too large for memory or longer than training, one worker set-up for both executors.
Tiny CPU trials, seconds each."""
import json
import os
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
    from study.verify import verify
    assert verify(out) == []  # resumed: its metrics.csv steps still increase, its checkpoints load


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
    from study.report import build_report
    md = (build_report(out, tmp_path / "report") / "REPORT.md").read_text()
    assert "**Note:** 1 trial(s) left out, their config.yaml does not hash to their id" in md


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


# ------------------------------------------------------------------------------------- 3. evaluation size
def test_an_evaluation_that_cannot_fit_in_memory_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    from study.eval import budget
    from study.spec import load_spec
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "x.yaml"
    spec.write_text("name: t\nbase: {data: {name: mnist5k, image_size: 16}, backbone: dcgan}\ngrid: {loss: [wgan]}\n")
    monkeypatch.setattr(budget, "available_memory", lambda: 16 * 2 ** 30)
    assert sweep_mod.main([str(spec), "--set", "base.eval.num_samples=50000000"]) == BAD_INPUT
    # 50e6 x (256 px x 4 bytes x 3 copies + 256 uint8 + 74 domain floats x 4 bytes) = 181.2e9 bytes
    assert one_line(capsys.readouterr().err) == (
        f"{spec}: eval.num_samples: 50,000,000 samples (mnist5k 16x16 images, extractors: domain) need about "
        "168.8 GiB per evaluation, more than the 16.0 GiB of memory available; lower eval.num_samples")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.yaml"]
    cfg = load_spec(spec, ["base.eval.num_samples=2000", "base.eval.extractors=[domain, inception]"])[1][0].config
    assert budget.eval_bytes(cfg) == 2000 * (256 * 4 * 3 + 256 + (74 + 3056) * 4)
    budget.check_eval_memory([cfg], "x", available=budget.eval_bytes(cfg))  # exactly fits: allowed


def test_a_long_evaluation_is_announced_and_compared_with_training(tmp_path, tiny, capsys, monkeypatch):
    from study.config import TrialConfig
    from study.eval import budget
    from study.trial import WorkerContext, run_trial
    calls = []

    def probe(module, evaluator, n):  # the real one, recorded; then pretend each evaluation takes 100 s
        calls.append((n, real_probe(module, evaluator, n)))
        return 100.0
    real_probe = budget.probe_seconds
    monkeypatch.setattr(budget, "probe_seconds", probe)
    cfg = TrialConfig.model_validate(tiny(train__gen_iters=12, eval__every=6))
    res = run_trial(cfg, tmp_path / "t", ctx=WorkerContext())
    assert res["status"] == "completed" and len(calls) == 1 and calls[0][0] == 200 and calls[0][1] > 0
    long = "each evaluation of 200 samples will take about 100 s (timed on one batch); lower eval.num_samples for " \
           "shorter ones"
    notes = res["eval_info"]["notes"]
    assert notes[0] == long and notes[1].startswith("an evaluation (200 samples, about 100.0 s) takes longer than "
                                                    "the 6 generator iterations between two (about ")
    assert notes[1].endswith(" s); raise eval.every or lower eval.num_samples")
    assert capsys.readouterr().err.splitlines() == [f"[t] {n}" for n in notes]
    monkeypatch.setattr(budget, "probe_seconds", real_probe)  # the real estimate of a tiny evaluation: no word
    res = run_trial(cfg, tmp_path / "u", ctx=WorkerContext())
    assert res["eval_info"]["notes"] == [] and capsys.readouterr().err == ""


def test_probe_times_one_batch_and_scales_it():
    from study.eval.budget import PROBE_SAMPLES, probe_seconds

    class Module:
        def sample(self, n):
            asked.append(n)
            time.sleep(0.01)
            return None
    asked = []
    assert probe_seconds(Module(), None, 100 * PROBE_SAMPLES) >= 100 * 0.01 and asked == [PROBE_SAMPLES]


# ------------------------------------------------------------------------------------- 4. worker set-up
def test_setup_worker_limits_every_pool_and_picks_the_gpu():
    code = ("from study.worker import setup_worker, worker_threads; import numpy; "
            "print(setup_worker(1, 'cuda:3')); import os; print(os.environ['CUDA_VISIBLE_DEVICES']); "
            "print(worker_threads())")
    p = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=120)
    device, visible, threads = p.stdout.splitlines()
    assert (device, visible) == ("cuda:0", "3"), p.stderr
    assert eval(threads) == {"torch": 1, "blas": 1, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                             "MKL_NUM_THREADS": "1"}


def test_a_local_worker_records_its_threads(tmp_path):
    spec, out = tmp_path / "t.yaml", tmp_path / "run"
    spec.write_text(SPEC)
    p = subprocess.run(cmd(spec, "--out", out, "--workers", "2", "--set", "grid.seed=[0]"), env=env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == OK, p.stderr
    (res,) = [json.loads(r.read_text()) for r in out.glob("*/result.json")]
    threads = max(1, (os.cpu_count() or 1) // 2)  # cores divided between the 2 workers (1 here: one trial)
    assert res["threads"] == {"torch": threads, "blas": threads, **dict.fromkeys(
        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(threads))}


def test_a_ray_actor_records_the_same_threads(tmp_path, tiny):
    ray = pytest.importorskip("ray")
    from study.config import TrialConfig
    from study.ray_executor import TrialActor
    cfg = TrialConfig.model_validate(tiny(train__gen_iters=2))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=1)(TrialActor).remote(1, None)
        assert ray.get(actor.run.remote(cfg.trial_id(), cfg.model_dump(mode="json"), str(tmp_path / "t"), "cpu"),
                       timeout=300) == "completed"
    finally:
        ray.shutdown()
    res = json.loads((tmp_path / "t" / "result.json").read_text())
    assert res["threads"] == {"torch": 1, "blas": 1, **dict.fromkeys(
        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")}
