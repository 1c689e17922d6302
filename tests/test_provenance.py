"""Provenance in result.json: the harness's commit and dirty state, the host's devices; final extra metrics and
the torchmetrics cross-check of a real trial."""
import subprocess

import pandas as pd
import pytest

from study.config import load_trial_config
from study.provenance import HARNESS_ROOT, cpu_model, git_state, gpu_name
from study.rundir import load_result, write_results_csv
from study.trial import WorkerContext, run_trial


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_state_of_a_checkout_clean_then_dirty(tmp_path):
    repo = tmp_path / "harness"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    (repo / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    assert git_state(repo) == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "results" / "old").mkdir(parents=True)
    (repo / "results" / "old" / "REPORT.md").write_text("a published folder\n")
    _git(repo, "add", "results")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r")
    (repo / "results" / "old" / "REPORT.md").unlink()  # a publication replacing its folder: output, not code
    assert git_state(repo)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo)["dirty"] is True


def test_git_state_outside_a_checkout_is_null(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    # a copy installed inside some other repository (a venv in a project) must not report that one's commit
    _git(tmp_path, "init", "-q")
    (tmp_path / "site-packages").mkdir()
    assert git_state(tmp_path / "site-packages") == {"commit": None, "dirty": None}


def test_git_state_without_git(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert git_state(HARNESS_ROOT) == {"commit": None, "dirty": None}


def test_host_devices():
    assert cpu_model()  # /proc/cpuinfo's model name on Linux
    assert gpu_name("cpu") is None


def test_mnist_trial_records_provenance_extra_metrics_and_crosscheck(tiny, tmp_path):
    cfg = load_trial_config(tiny(backbone="dcgan", data__name="mnist5k", data__image_size=16, model__nz=8,
                                 model__width=4, train__gen_iters=4, eval__every=0, eval__num_samples=300))
    trial = tmp_path / "run" / cfg.trial_id()
    run_trial(cfg, trial, ctx=WorkerContext())
    res, problem = load_result(trial)
    assert problem is None and res["status"] == "completed"
    prov = res["provenance"]
    head = _git(HARNESS_ROOT, "rev-parse", "HEAD")
    assert prov["harness"]["commit"] == head and isinstance(prov["harness"]["dirty"], bool)
    assert prov["host"]["cpu"] == cpu_model() and prov["host"]["gpu"] is None and prov["host"]["hostname"]
    final = res["final"]
    assert 1 <= final["eval/isc@domain"] <= 10
    assert 0 <= final["eval/precision@domain"] <= 1 and 0 <= final["eval/recall@domain"] <= 1
    fid = res["crosscheck"]["fid@domain"]
    assert fid["torch_fidelity"] == final["eval/fid@domain"]
    assert fid["torchmetrics"] == pytest.approx(fid["torch_fidelity"], rel=1e-5)
    kid = res["crosscheck"]["kid@domain"]
    assert kid["torchmetrics"] == pytest.approx(kid["torch_fidelity"], rel=1e-9)
    assert kid["n_gen"] == kid["n_real"] == 200  # m = min(N_real = holdout, N_gen = 300)
    row = pd.read_csv(write_results_csv(tmp_path / "run")).iloc[0]
    assert row["eval/isc@domain"] == pytest.approx(final["eval/isc@domain"])
    assert row["eval/recall@domain"] == pytest.approx(final["eval/recall@domain"])
