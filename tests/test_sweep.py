"""The sweep's promises, each with a test that fails if it breaks: resume after kill -9, skip what is
done, record failures and go on, --retry-failed, the lock, results.csv from the trial directories."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from study.rundir import Lock
from study.sweep import main

SPEC = """name: t
base:
  data: {{name: ring8, holdout: 200, synthetic_size: 4096}}
  model: {{nz: 2, mlp_width: 32}}
  train: {{gen_iters: {iters}, batch_size: 32, checkpoint_every: {ckpt}}}
  eval: {{every: {every}, num_samples: 256, w1_points: 128, w1_draws: 1, grid_size: 16}}
  wgan: {{warmup: false}}
grid:
  loss: [gan, wgan]
  backbone: [mlp]
"""


def write_spec(tmp_path, iters=40, ckpt=10, every=20):
    spec = tmp_path / "t.yaml"
    spec.write_text(SPEC.format(iters=iters, ckpt=ckpt, every=every))
    return spec


def sweep_cmd(spec, out, *extra):
    return [sys.executable, "-m", "study.sweep", str(spec), "--out", str(out), "--workers", "1", *extra]


def results(out):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))}


def test_sweep_writes_the_contract(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "out"
    p = subprocess.run(sweep_cmd(spec, out), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = results(out)
    assert len(res) == 2 and {r["status"] for r in res.values()} == {"completed"}
    for tid, r in res.items():
        tdir = out / tid
        assert (tdir / "config.yaml").exists() and (tdir / "samples.npz").exists()
        assert sorted(x.name for x in (tdir / "samples").iterdir()) == ["grid_000000.png", "grid_000020.png",
                                                                                    "grid_000040.png"]
        assert r["gen_iters"] == 40 and r["wall_s"] > 0 and r["versions"]["torch"]
        assert {"eval/w1", "eval/modes", "eval/hq", "eval/mode_kl"} <= set(r["final"])
        assert r["final"]["eval/w1"] > 0 and 0 <= r["final"]["eval/hq"] <= 1 and 0 <= r["final"]["eval/modes"] <= 8
        assert r["final"]["train/critic_iters"] == r["critic_iters"] == (40 if r["config"]["loss"] == "gan" else 200)
        assert r["correlation"]["n"] == 2 and r["correlation"]["quality"] == "eval/w1"
    df = pd.read_csv(out / "results.csv")
    assert sorted(df["trial_id"]) == sorted(res) and set(df["loss"]) == {"gan", "wgan"}
    assert (df["status"] == "completed").all() and "eval/w1" in df.columns
    assert (out / "sweep.yaml").exists()
    # results.csv is regenerable from the trial directories
    (out / "results.csv").unlink()
    from study.rundir import write_results_csv
    pd.testing.assert_frame_equal(pd.read_csv(write_results_csv(out)), df)


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    spec = write_spec(tmp_path, iters=150, ckpt=25, every=50)
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert subprocess.run(sweep_cmd(spec, ref), capture_output=True, timeout=600).returncode == 0

    proc = subprocess.Popen(sweep_cmd(spec, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once the first trial is done and the second has a checkpoint
        done = [r for r in results(out).values() if r["status"] == "completed"]
        ckpts = [c for c in out.glob("*/checkpoints/*.ckpt") if not (c.parent.parent / "result.json").exists()]
        if done and ckpts:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done) == 1, "the sweep finished before it could be killed"
    finished = {tid: (out / tid / "result.json").stat().st_mtime_ns for tid in results(out)}
    time.sleep(1.0)  # the worker dies with its parent (PR_SET_PDEATHSIG): the lock must be free now

    p = subprocess.run(sweep_cmd(spec, out), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    after, before = results(out), results(ref)
    assert {t: r["status"] for t, r in after.items()} == {t: r["status"] for t, r in before.items()}
    for tid, mtime in finished.items():  # completed trials were skipped, their files untouched
        assert (out / tid / "result.json").stat().st_mtime_ns == mtime
    resumed = [r for t, r in after.items() if t not in finished]
    assert len(resumed) == 1 and resumed[0]["resumed_from"] > 0
    for tid in before:  # exact resume: the same numbers as the uninterrupted run
        a, b = pd.read_csv(out / tid / "metrics.csv"), pd.read_csv(ref / tid / "metrics.csv")
        assert a["step"].tolist() == list(range(0, 151))  # step 0: the untrained generator's evaluation
        pd.testing.assert_frame_equal(a, b)


def test_a_failing_trial_is_recorded_and_retry_failed_reruns_it(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "out"
    ids = [ln.split()[0] for ln in subprocess.run(sweep_cmd(spec, out, "--dry-run"), capture_output=True,
                                                  text=True).stdout.splitlines()[2:]]
    (out / ids[0]).mkdir(parents=True)
    (out / ids[0] / "samples").write_text("a file where the sample folder goes: saving grids fails")
    p = subprocess.run(sweep_cmd(spec, out), capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "1 completed, 1 failed" in p.stderr
    res = results(out)
    assert res[ids[0]]["status"] == "failed" and "Error" in res[ids[0]]["error"]
    assert res[ids[1]]["status"] == "completed"
    assert pd.read_csv(out / "results.csv").set_index("trial_id").loc[ids[0], "status"] == "failed"
    mtime = (out / ids[1] / "result.json").stat().st_mtime_ns

    assert subprocess.run(sweep_cmd(spec, out), capture_output=True, timeout=300).returncode == 1  # still failed
    (out / ids[0] / "samples").unlink()
    p = subprocess.run(sweep_cmd(spec, out, "--retry-failed"), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert results(out)[ids[0]]["status"] == "completed"
    assert (out / ids[1] / "result.json").stat().st_mtime_ns == mtime


def test_second_sweep_on_the_same_directory_refuses(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "out"
    out.mkdir()
    with Lock(out):
        assert main([str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "another sweep" in err and str(os.getpid()) in err and len(err.strip().splitlines()) == 1
    assert not (out / "sweep.yaml").exists()


def test_dry_run_lists_trials_and_writes_nothing(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "out"
    assert main([str(spec), "--out", str(out), "--dry-run", "--set", "grid.seed=[0, 1]"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 trials") and lines[1].split() == ["trial_id", "loss", "backbone", "seed"]
    assert not out.exists()


def test_plan_slots_divides_cores():
    from study.executors import plan_slots
    assert [(s.device, s.threads) for s in plan_slots("auto", None, 1, 2, 0)] == [("cpu", 1), ("cpu", 1)]
    assert [(s.device, s.threads) for s in plan_slots("cpu", 1, 1, 2, 0)] == [("cpu", 2)]
    assert [s.device for s in plan_slots("auto", None, 2, 16, 2)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert plan_slots("auto", None, 2, 16, 2)[0].threads == 4
    # automatic trials per GPU: cores per GPU // 2, capped at 8, at least 1 (the measured H100 choice)
    assert len(plan_slots("auto", None, None, 16, 1)) == 8
    assert len(plan_slots("auto", None, None, 64, 1)) == 8
    assert len(plan_slots("auto", None, None, 16, 2)) == 8 and plan_slots("auto", None, None, 16, 2)[0].threads == 2
    assert len(plan_slots("cuda:0", None, None, 2, 1)) == 1


def test_ray_executor_runs_the_same_trials(tmp_path):
    pytest.importorskip("ray")
    spec, out = write_spec(tmp_path, iters=10, ckpt=5, every=10), tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "study.sweep", str(spec), "--out", str(out), "--executor", "ray",
                        "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = results(out)
    assert len(res) == 2 and {r["status"] for r in res.values()} == {"completed"}
    assert all(r["gen_iters"] == 10 and "eval/w1" in r["final"] for r in res.values())
    assert len(pd.read_csv(out / "results.csv")) == 2
