"""Hostile input and faults (issue 16): every entry point answers with one line on stderr and a documented
exit code (study/cli.py), never hangs, and leaves what is finished untouched. Tiny CPU trials, seconds each."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from study import sweep as sweep_mod
from study.cli import BAD_INPUT, INTERNAL, INTERRUPTED, OK

REPO = Path(__file__).resolve().parent.parent
SPEC = """name: t
base:
  data: {data}
  model: {{nz: 2, mlp_width: 16}}
  train: {{gen_iters: {iters}, batch_size: 16, checkpoint_every: 2}}
  eval: {{every: 0, num_samples: 32, w1_points: 32, w1_draws: 1, grid_size: 16}}
  wgan: {{warmup: false}}
grid:
  loss: [gan, wgan]
  backbone: [mlp]
  seed: [0, 1]
"""
RING8 = "{name: ring8, holdout: 100, synthetic_size: 1024}"


def write_spec(d: Path, iters: int = 4, data: str = RING8) -> Path:
    spec = d / "t.yaml"
    spec.write_text(SPEC.format(iters=iters, data=data))
    return spec


def cmd(*args: str, module: str = "study.sweep") -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def one_line(err: str) -> str:
    """The single line a failing command prints (its last line: progress lines may come before)."""
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def snapshot(run: Path, ids) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for t in ids for p in sorted((run / t).rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A finished sweep of 4 tiny trials, run with --out and --report from an empty working directory."""
    root = tmp_path_factory.mktemp("done")
    spec, out = write_spec(root), root / "run"
    p = subprocess.run(cmd(spec, "--out", out, "--workers", "1", "--report"), cwd=root, env=env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return root, spec, out


def copy_run(done_run, tmp_path) -> tuple[Path, Path]:
    _, spec, out = done_run
    shutil.copytree(out, tmp_path / "run")
    return spec, tmp_path / "run"


def results(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))}


# ----------------------------------------------------------------------------------------- 1. interrupts
def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_stops_a_200_trial_sweep_within_seconds(tmp_path, how):
    spec, out = write_spec(tmp_path, iters=2), tmp_path / "run"
    seeds = "[" + ",".join(map(str, range(100))) + "]"  # 2 losses x 100 seeds = 200 trials
    proc = subprocess.Popen(cmd(spec, "--out", out, "--workers", "2", "--set", f"grid.seed={seeds}"),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not list(out.glob("*/result.json")) and time.time() < deadline:
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert list(out.glob("*/result.json")) and len(workers) >= 2, "no trial finished in time"
        t0 = time.time()
        if how == "ctrl-c":  # the terminal sends SIGINT to the whole process group, workers included
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=60)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    assert rc == INTERRUPTED and took < 10, (rc, took, err[-2000:])
    line = one_line(err)
    assert f"interrupted ({'SIGINT' if how == 'ctrl-c' else 'SIGTERM'})" in line and "of 200 trials done" in line
    assert "run the same command again to resume" in line
    assert "leaked" not in err, err[-2000:]  # no semaphore of a killed worker for the resource tracker
    deadline = time.time() + 10
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "a worker outlived the sweep"
    done = [t for t, r in results(out).items() if r["status"] == "completed"]
    listed = pd.read_csv(out / "results.csv").set_index("trial_id")["status"]
    assert sorted(listed[listed == "completed"].index) == sorted(done)  # results.csv written on the way out


# ------------------------------------------------------------------------------ 2, 6. damaged run directory
def test_damaged_files_are_set_aside_and_rerun_and_the_rest_is_untouched(done_run, tmp_path):
    spec, out = copy_run(done_run, tmp_path)
    before = results(out)
    ids = sorted(before)
    rnd, lst, kept = ids[0], ids[1], ids[2:]
    (out / rnd / "result.json").write_bytes(os.urandom(500))
    (out / lst / "result.json").write_text("[1, 2, 3]\n")
    (out / "unrelated").mkdir()
    (out / "unrelated" / "config.yaml").write_text("a: !Ref x\n")
    (out / "sweep.yaml").write_bytes(b"name: t\n\xff\xfe\n")
    untouched = snapshot(out, kept)
    p = subprocess.run(cmd(spec, "--out", out, "--workers", "1"), env=env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == OK, p.stderr
    assert "Traceback" not in p.stderr
    assert f"2 damaged result.json set aside as result.json.damaged, run again: {rnd}, {lst}" in p.stderr
    assert "sweep.yaml: not valid YAML (ReaderError); kept as sweep." in p.stderr
    after = results(out)
    for t in (rnd, lst):  # re-run from the last checkpoint: the same numbers as before the damage
        assert after[t]["status"] == "completed" and after[t]["final"] == before[t]["final"]
        assert (out / t / "result.json.damaged").exists()
    assert snapshot(out, kept) == untouched
    rows = pd.read_csv(out / "results.csv").set_index("trial_id")
    assert (rows.loc[ids, "status"] == "completed").all()
    assert rows.loc["unrelated", "status"] == "incomplete" and "config.yaml: not valid YAML" in rows.loc["unrelated", "error"]
    assert len(list(out.glob("sweep.*.yaml"))) == 1  # the damaged spec is kept, not lost

    p = subprocess.run(cmd(out, "--out", tmp_path / "report", module="study.report"), env=env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == OK, p.stderr


def test_report_reads_a_non_utf8_sweep_yaml_as_a_note(done_run, tmp_path):
    from study.report.load import load_run
    _, out = copy_run(done_run, tmp_path)
    (out / "sweep.yaml").write_bytes(b"name: t\n\xff\n")
    run = load_run(out)
    assert "sweep.yaml unreadable (UnicodeDecodeError)" in run.notes and len(run.trials) == 4


# ----------------------------------------------------------------------------------------- 3, 4. --report
def test_report_with_out_goes_beside_the_run(done_run):
    root, _, out = done_run
    assert (out / "report" / "REPORT.md").exists() and (out / "report" / "report.html").exists()
    assert not (root / "reports").exists()


def _fake_finished(spec: Path, out: Path, status: str) -> list[str]:
    """Trial directories that a sweep skips (a terminal status), so main() runs no worker."""
    from study.spec import load_spec
    from study.io import write_json, write_yaml
    ids = []
    for t in load_spec(spec)[1]:
        write_yaml(out / t.id / "config.yaml", t.config.resolved())
        write_json(out / t.id / "result.json", {"trial_id": t.id, "status": status, "error": "x", "gen_iters": 4,
                                                "config": t.config.resolved()})
        ids.append(t.id)
    return ids


def test_report_when_no_trial_completed_is_one_line_exit_2(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "run"
    _fake_finished(spec, out, "diverged")
    assert sweep_mod.main([str(spec), "--out", str(out), "--report"]) == BAD_INPUT
    line = one_line(capsys.readouterr().err)
    assert line == f"report: {out}: no completed trial to report on (4 diverged)"
    from study.report.__main__ import main as report_main
    assert report_main([str(out)]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == line


# ------------------------------------------------------------------------------------------- 5. full disk
def test_full_disk_in_the_sweep_itself_is_one_line_and_keeps_finished_trials(tmp_path, capsys, monkeypatch):
    spec, out = write_spec(tmp_path), tmp_path / "run"
    ids = _fake_finished(spec, out, "completed")
    finished = snapshot(out, ids)
    real = os.replace

    def full(src, dst, *a, **k):
        if str(dst).endswith("results.csv"):
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full)
    assert sweep_mod.main([str(spec), "--out", str(out)]) == BAD_INPUT
    line = one_line(capsys.readouterr().err)
    assert line.startswith("python -m study.sweep: ") and "No space left on device; free some space and run the " \
                                                         "same command again" in line
    assert snapshot(out, ids) == finished
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind


SITECUSTOMIZE = """
import errno, os
_replace = os.replace
def _full(src, dst, *a, **k):  # the disk fills up when seed 2's trials write their first checkpoint
    if "_s2_" in str(dst) and str(dst).endswith(".ckpt"):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))
    return _replace(src, dst, *a, **k)
os.replace = _full
"""


def test_full_disk_in_a_worker_stops_the_sweep_with_one_line_and_resumes_later(done_run, tmp_path):
    spec, out = copy_run(done_run, tmp_path)
    ids = list(results(out))
    finished = snapshot(out, ids)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)  # every process of the sweep, workers too
    full_env = env() | {"PYTHONPATH": os.pathsep.join([str(inject), env()["PYTHONPATH"]])}
    grow = ["--set", "grid.seed=[0, 1, 2]"]
    p = subprocess.run(cmd(spec, "--out", out, "--workers", "1", *grow), env=full_env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == BAD_INPUT, p.stderr
    line = one_line(p.stderr)
    assert line.startswith("[t] stopped: ") and "iter_000002.ckpt: No space left on device; free some space" in line
    assert snapshot(out, ids) == finished
    assert not [t for t in out.glob("*_s2_*/result.json")], "a trial stopped by the disk must not count as failed"

    p = subprocess.run(cmd(spec, "--out", out, "--workers", "1", *grow), env=env(), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == OK, p.stderr
    assert "6 trials: 6 completed" in p.stderr


# ----------------------------------------------------------------------------------- 7. unusable --out
def test_report_and_paper_refuse_an_out_that_is_a_file(done_run, tmp_path, capsys):
    from study.paper.__main__ import main as paper_main
    from study.report.__main__ import main as report_main
    _, _, out = done_run
    f = tmp_path / "afile"
    f.write_text("x")
    assert report_main([str(out), "--out", str(f)]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == f"report directory {f}: is a file, not a directory; choose another directory"
    assert paper_main(["--no-run", "--out", str(f)]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == f"--out {f}: is a file, not a directory; choose another directory"
    assert f.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_report_refuses_a_read_only_out(done_run, tmp_path, capsys):
    from study.report.__main__ import main as report_main
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert report_main([str(done_run[2]), "--out", str(ro / "r")]) == BAD_INPUT
    assert "not writable (Permission denied)" in one_line(capsys.readouterr().err)
    assert not (ro / "r").exists()


# ------------------------------------------------------------------------------------ 6, 8. bad input
GOOD = "name: t\nbase: {data: {name: ring8}, backbone: mlp, model: {nz: 2}}\ngrid: {loss: [gan, wgan]}\n"
BAD = [  # (--set, the one line's ending)
    ("base.gan.betas=[1.5, 0.999]", "base.gan.betas[0]: Input should be less than 1 (got 1.5)"),
    ("base.eval.num_samples=1", "base.eval.num_samples: Input should be greater than or equal to 2 (got 1)"),
    ("base.train.batch_size=1000000000", "base.train.batch_size: Input should be less than or equal to 16384 "
                                         "(got 1000000000)"),
    ("base.train.batch_size=1e9", "base.train.batch_size: Input should be a valid integer (got 1000000000.0)"),
    ("base.train.gen_iters=true", "base.train.gen_iters: Input should be a valid integer (got True)"),
    ('base.train.batch_size="64"', "base.train.batch_size: Input should be a valid integer (got '64')"),
    ("base.wgan.clip=.inf", "base.wgan.clip: Input should be a finite number (got inf)"),
    ("base.wgan.lr=.nan", "base.wgan.lr: Input should be a finite number (got nan)"),
    ("base.wgan.warmup=1", "base.wgan.warmup: Input should be a valid boolean (got 1)"),
    ("name=" + "a" * 300, "name: at most 100 characters (got 300): it names the output directory runs/<name>"),
    ("base={train.gen_iters: 5, train: {gen_iters: 3}}", "base.train.gen_iters: given twice"),
]


@pytest.mark.parametrize("assign,ending", BAD, ids=[b[0][:30] for b in BAD])
def test_values_that_would_fail_every_trial_are_refused_up_front(tmp_path, capsys, monkeypatch, assign, ending):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "x.yaml"
    spec.write_text(GOOD)
    assert sweep_mod.main([str(spec), "--set", assign]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == f"{spec}: {ending}"
    assert sorted(os.listdir(tmp_path)) == ["x.yaml"]  # nothing written, no empty ./runs


def test_dotted_keys_in_base_and_exponent_floats_are_read_as_meant(tmp_path):
    from study.spec import load_spec
    spec = tmp_path / "x.yaml"
    spec.write_text("name: t\nbase: {data.name: ring8, backbone: mlp, train.gen_iters: 5, wgan: {lr: 5e-5}}\n"
                    "grid: {loss: [wgan]}\n")
    (t,) = load_spec(spec)[1]
    assert t.config.train.gen_iters == 5 and t.config.data.name == "ring8" and t.config.wgan.lr == 5e-5
    (t,) = load_spec(spec, ["base.train.gen_iters=7"])[1]  # --set wins over the dotted key
    assert t.config.train.gen_iters == 7


def test_environment_problems_are_named_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, f = tmp_path / "x.yaml", tmp_path / "afile"
    spec.write_text(GOOD)
    f.write_text("")
    cases = [
        (["--out", str(f)], f"--out {f}: is a file, not a directory; choose another directory"),
        (["--out", str(tmp_path / "o"), "--cache-dir", str(f)],
         f"--cache-dir {f}: is a file, not a directory; choose another directory"),
        (["--out", str(tmp_path / "o"), "--set", "base.data.name=cifar10", "--set", "grid.backbone=[dcgan]"],
         f"{spec}: data/cifar-10-batches-py: missing; put the torchvision"),
        (["--out", str(f / "sub")], f"--out {f}/sub: {f} is a file, not a directory; choose another directory"),
    ]
    for argv, start in cases:
        assert sweep_mod.main([str(spec), *argv]) == BAD_INPUT
        assert one_line(capsys.readouterr().err).startswith(start)
    assert sorted(os.listdir(tmp_path)) == ["afile", "x.yaml"]


def test_a_non_utf8_spec_is_one_line(tmp_path):
    spec = tmp_path / "x.yaml"
    spec.write_bytes(b"name: t\n# caf\xe9\n")
    p = subprocess.run(cmd(spec), env=env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == BAD_INPUT
    assert p.stderr == f"{spec}: not UTF-8 text (byte 0xe9 at offset 13); a spec is a YAML text file\n"


# ------------------------------------------------------------------------------------------ 9. smaller ones
def test_unloadable_checkpoint_is_set_aside_so_a_retry_succeeds(tmp_path, tiny):
    from study.config import TrialConfig
    from study.trial import WorkerContext, run_trial
    ctx = WorkerContext(evaluate=False)
    rms = TrialConfig.model_validate(tiny(train__gen_iters=4, train__checkpoint_every=2))
    adam = TrialConfig.model_validate(tiny(train__gen_iters=4, train__checkpoint_every=2, wgan__optimizer="adam"))
    assert run_trial(rms, tmp_path / "rms", ctx=ctx)["status"] == "completed"
    (tmp_path / "adam" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "rms" / "checkpoints" / "iter_000002.ckpt", tmp_path / "adam" / "checkpoints")
    with pytest.warns(UserWarning, match="unusable checkpoint, set aside as iter_000002.unusable; the trial starts"):
        res = run_trial(adam, tmp_path / "adam", ctx=ctx)
    assert res["status"] == "failed" and "KeyError: 'betas'" in res["error"] and "set aside" in res["error"]
    res = run_trial(adam, tmp_path / "adam", ctx=ctx)  # what --retry-failed does
    assert res["status"] == "completed" and res["resumed_from"] == 0 and res["gen_iters"] == 4


def test_corrupt_only_checkpoint_does_not_promise_an_older_one(tmp_path):
    from study.trial import latest_checkpoint
    (tmp_path / "iter_000002.ckpt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="set aside as iter_000002.corrupt; the trial starts afresh"):
        assert latest_checkpoint(tmp_path) == (None, 0)


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path):
    spec = write_spec(tmp_path)
    p = subprocess.Popen(cmd(spec, "--dry-run", "--set", "grid.seed=[" + ",".join(map(str, range(3000))) + "]"),
                         env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    assert p.wait(timeout=120) == OK
    assert p.stderr.read() == b""


def test_result_files_have_the_usual_mode(done_run):
    mask = os.umask(0)
    os.umask(mask)
    for p in [*done_run[2].glob("*/result.json"), done_run[2] / "results.csv", done_run[2] / "sweep.yaml"]:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p


def test_paper_checks_its_arguments_and_data_before_running(tmp_path, capsys, monkeypatch):
    from study.paper.__main__ import main as paper_main
    monkeypatch.chdir(tmp_path)
    assert paper_main(["--workers", "0"]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == "python -m study.paper: error: --workers: must be at least 1 (got 0)"
    assert paper_main(["--scale", "full", "--figure", "5"]) == BAD_INPUT
    line = one_line(capsys.readouterr().err)
    assert "sweeps/paper/gan_wgan.yaml: data/lsun/bedroom: no images found" in line and "pass --data-root DIR" in line
    assert os.listdir(tmp_path) == []  # checked before anything was created


def test_benchmarks_run_bad_merge_file_is_one_line(tmp_path, capsys):
    from benchmarks.run import main as bench_main
    assert bench_main(["--merge", f"gpu={tmp_path / 'nope.json'}"]) == BAD_INPUT
    assert one_line(capsys.readouterr().err) == f"--merge gpu: {tmp_path / 'nope.json'}: cannot read (No such file or directory)"


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path)

    def boom(*a, **k):
        raise RuntimeError("something nobody expected\nsecond line")

    monkeypatch.setattr(sweep_mod, "load_spec", boom)
    assert sweep_mod.main([str(spec)]) == INTERNAL
    assert one_line(capsys.readouterr().err) == ("python -m study.sweep: internal error: RuntimeError: something "
                                                 "nobody expected (run again with --debug for the traceback)")
    with pytest.raises(RuntimeError):
        sweep_mod.main([str(spec), "--debug"])
