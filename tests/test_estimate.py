"""Know the cost before the run (issue 31): the scaling math on made-up timings, the dry run's estimate, warning
and CPU-sized alternative (timing mocked), the time left on the progress line, and that estimating changes no
trial id. One test times a tiny real shape."""
import json
import sys
from pathlib import Path

import pytest
import torch

from study import estimate as E
from study import sweep as sweep_mod
from study.config import load_trial_config
from study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

COST = E.ShapeCost(critic_s=0.01, gen_s=0.02, step_s=0.001, eval_s=0.5, final_eval_s=1.5, checkpoint_s=0.1,
                   setup_s=0.3)


@pytest.fixture(autouse=True)
def _estimates_on(monkeypatch):
    """The suite skips estimates (tests/conftest.py); here they are what is tested."""
    monkeypatch.delenv("WGAN_STUDY_NO_ESTIMATE", raising=False)


def cfg(**over):
    d = {"loss": "wgan", "data": {"name": "ring8"}, "train": {"gen_iters": 600, "checkpoint_every": 200},
         "eval": {"every": 100}, "wgan": {"warmup_iters": 10}}
    for k, v in over.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    return load_trial_config(d)


def fake_timer(configs, device, threads, cache_dir, known=None):
    """Every shape costs COST; the worker set-up 2 s per data/eval config."""
    return E.Timings({E.shape_key(c): COST for c in configs}, {E.eval_key(c): 2.0 for c in configs}, 0.01,
                     device, threads, 0.0)


# ------------------------------------------------------------------------------------------ the math
def test_critic_updates_follow_the_schedule_with_its_warm_up():
    # WGAN: 100 updates while gen_iter < 10 and at 500; 5 otherwise: 10*100 + 100 + 589*5
    assert E.critic_updates(cfg()) == 1000 + 100 + 589 * 5 == 4045
    assert E.critic_updates(cfg(), start=250) == 100 + 349 * 5
    assert E.critic_updates(cfg(loss="gan")) == 600
    assert E.critic_updates(cfg(wgan={"warmup": False})) == 3000


def test_evaluations_and_checkpoints_are_counted_as_the_callbacks_make_them():
    # evaluations at 0, 100, ..., 500 and the final one at 600 (priced apart)
    assert E.eval_points(100, 600) == 6 and E.eval_points(100, 600, start=250) == 3
    assert E.eval_points(0, 600) == 1 and E.eval_points(0, 600, start=300) == 0
    assert E.eval_points(250, 3000) == 12  # cpu_verdicts: "12 evaluation points plus the untrained generator"
    assert E.checkpoints(200, 600) == 3 and E.checkpoints(200, 600, start=400) == 1
    assert E.checkpoints(500, 3000) == 6 and E.checkpoints(1000, 2500) == 3


def test_a_trial_is_the_sum_of_its_parts():
    c = cfg()
    want = 0.3 + 600 * (0.02 + 0.001) + 4045 * 0.01 + 6 * 0.5 + 1.5 + 3 * 0.1
    assert E.trial_seconds(c, COST) == pytest.approx(want)
    resumed = 0.3 + 200 * 0.021 + (100 + 199 * 5) * 0.01 + 1 * 0.5 + 1.5 + 1 * 0.1  # from iteration 400
    assert E.trial_seconds(c, COST, start=400) == pytest.approx(resumed)
    assert E.trial_seconds(c, COST, start=600) == 0.0
    longer = 0.3 + 1200 * 0.021 + (1000 + 200 + 1188 * 5) * 0.01 + 12 * 0.5 + 1.5 + 6 * 0.1  # warm-up at 500, 1000
    assert E.trial_seconds(c, COST, gen_iters=1200) == pytest.approx(longer)


def test_workers_take_the_next_trial_as_they_free():
    assert E.makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert E.makespan([3, 3, 2, 2, 2], 1) == 12 and E.makespan([5, 1], 8) == 5 and E.makespan([], 2) == 0
    assert E.makespan([1, 1], 2, busy=[4, 0.5]) == 4  # a running trial with 4 s to go
    start = E.WORKER_START_S + 2.0
    assert E.sweep_seconds([3, 3, 2, 2, 2], 2, 2.0) == pytest.approx(start + 7)
    assert E.sweep_seconds([3], 4, 2.0) == pytest.approx(start + 3)  # one worker starts for one trial


def test_the_adaptive_maximum_is_every_cell_at_max_seeds_and_the_largest_budget():
    assert E._max_iters({"extensions": 1}, 3000) == 6000 and E._max_iters({"extensions": 0}, 3000) == 3000
    assert E._max_iters({"extensions": 2}, 500) == 2000 and E._max_iters({}, 500) == 1000  # default: 1 doubling
    assert E._max_iters({"budgets": [3000, 6000]}, 3000) == 6000  # declared budgets (the lead's new form)
    assert E._max_iters({"budgets": [3000, 6000], "extensions": 3}, 3000) == 6000
    trials = load_spec(ROOT / "sweeps" / "cpu_verdicts.yaml")[1]  # 6 cells x 3 seeds at 3,000 iterations
    one = lambda c, g: g / 1000  # noqa: E731  (a trial: 1 s per 1,000 iterations)
    total = lambda ds: sum(ds)  # noqa: E731  (one worker, no start)
    assert E.adaptive_range(trials, one, {"max_seeds": 10, "extensions": 0}, total) == (18 * 3, 60 * 3, 10, 3000)
    assert E.adaptive_range(trials, one, {"max_seeds": 10, "extensions": 1}, total) == (54, 60 * 6, 10, 6000)
    assert E.adaptive_range(trials, one, {"max_seeds": 5, "budgets": [3000, 9000]}, total) == (54, 30 * 9, 5, 9000)


def test_time_left_scales_by_what_finished_trials_took():
    assert E.time_left([], [10, 10], 2) == 10
    assert E.time_left([], [10, 10], 2, ratio=1.5) == 15
    assert E.time_left([(10, 4)], [10], 1) == 16         # 6 s to go, then 10
    assert E.time_left([(10, 12)], [], 1) == 0            # over its estimate: never negative
    assert E.time_left([(10, 4)], [10, 10], 2, ratio=2) == 36  # 16 to go | 20, then 20 on the first free


def test_contention_of_workers_sharing_the_cores():
    assert E.contention(0.0, 2, 2, 1) == 1.0          # idle: one core each
    assert E.contention(1.0, 2, 2, 1) == pytest.approx(1.5)  # 3 runnable on 2 cores, timed alone at a full core
    assert E.contention(6.0, 2, 2, 1) == pytest.approx(8 / 7)
    assert E.contention(0.0, 2, 1, 2) == 1.0
    # timed in CPU seconds: the worker's share alone (2 workers and 6 other runnable threads on 2 cores: 1/4 each)
    assert E.contention(6.0, 2, 2, 1, cpu_clock=True) == pytest.approx(4.0)
    assert E.contention(0.0, 2, 2, 1, cpu_clock=True) == 1.0


def test_others_load_is_the_machines_busy_time_less_our_own():
    # 2 cores over 4 s: 6 busy CPU seconds, 4 of them ours (one thread timing) -> half a core of other work
    assert E.others_load((100.0, 500.0), (106.0, 508.0), own_cpu_s=4.0, wall_s=4.0) == pytest.approx(0.5)
    assert E.others_load((100.0, 500.0), (103.9, 508.0), own_cpu_s=4.0, wall_s=4.0) == 0.0  # clock jitter
    assert E.others_load(None, (1.0, 2.0), 1.0, 1.0) is None
    busy = E._cpu_busy()
    assert busy is None or 0 <= busy[0] <= busy[1]


def test_human_times():
    assert [E.human(s) for s in (42, 600, 3 * 3600, 9 * 86400)] == ["42 s", "10 min", "3.0 h", "9.0 days"]


def test_warning_only_without_a_gpu_and_when_long():
    assert E.warning("arch", 4 * 3600, gpu=True, longest_iters=20000) is None
    assert E.warning("arch", 2 * 3600, gpu=False, longest_iters=20000) is None
    w = E.warning("correlation", 10 * 3600, gpu=False, longest_iters=10000)
    assert w.startswith("warning: about 10.0 h") and "sweeps/toys.yaml" in w
    w = E.warning("mine", 6 * 3600, gpu=False, longest_iters=10000)  # no spec sized for it: the --set that fits
    assert "--set base.train.gen_iters=5000" in w


# ------------------------------------------------------------------------------------------ the CLI
def test_dry_run_of_arch_prints_the_estimate_the_warning_and_the_cpu_sized_spec(monkeypatch, capsys):
    monkeypatch.setattr(E, "time_shapes", fake_timer)
    assert sweep_mod.main([str(ROOT / "sweeps" / "arch.yaml"), "--dry-run", "--devices", "cpu", "--workers", "2",
                           "--out", "/nonexistent/arch"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1].startswith("30 trials")  # the table is unchanged (after the adaptive line)
    lines = [ln for ln in err.splitlines() if ln.startswith("[arch]")]
    assert len(lines) == 3, err
    # round 1: 30 trials of 20,000 iterations on 2 workers; maximum: 10 cells x 10 seeds at 40,000
    assert lines[0].startswith("[arch] estimate: about ") and "for round 1 (30 trials), up to " in lines[0]
    assert "if every cell needs 10 seeds at 40,000 generator iterations, on 2 worker(s)" in lines[0]
    assert lines[1].startswith("[arch] estimate measured: timed 10 trial shape(s) on cpu with ")
    assert lines[2].startswith("[arch] warning: about ") and "without a GPU" in lines[2]
    assert lines[2].endswith("sweeps/cpu_verdicts.yaml is sized for a CPU")


def test_dry_run_estimate_is_the_scaled_sum(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(E, "time_shapes", fake_timer)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {loss: gan, data: {name: ring8}, train: {gen_iters: 600, checkpoint_every: 200},"
                    " eval: {every: 100}}\ngrid: {seed: [0, 1, 2]}\n")
    assert sweep_mod.main([str(spec), "--dry-run", "--devices", "cpu", "--workers", "1",
                           "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    one = 0.3 + 600 * 0.021 + 600 * 0.01 + 6 * 0.5 + 1.5 + 3 * 0.1
    want = E.WORKER_START_S + 2.0 + 3 * one
    assert f"[s] estimate: about {E.human(want)} for 3 trials on 1 worker(s)" in err
    assert "warning" not in err and not (tmp_path / "o").exists()


def one_trial_spec(tmp_path, monkeypatch, error: Exception) -> Path:
    """A one-trial spec whose shape timing raises `error`."""
    def timer(*a, **k):
        raise error
    monkeypatch.setattr(E, "time_shapes", timer)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {loss: gan, data: {name: ring8}}\ngrid: {seed: [0]}\n")
    return spec


def test_no_estimate_times_nothing(tmp_path, monkeypatch, capsys):
    spec = one_trial_spec(tmp_path, monkeypatch, AssertionError("timed"))
    assert sweep_mod.main([str(spec), "--dry-run", "--devices", "cpu", "--no-estimate"]) == 0
    assert "estimate" not in capsys.readouterr().err
    monkeypatch.setenv("WGAN_STUDY_NO_ESTIMATE", "1")  # what the test suite sets
    assert sweep_mod.main([str(spec), "--dry-run", "--devices", "cpu"]) == 0
    assert "estimate" not in capsys.readouterr().err


def test_a_shape_that_cannot_be_timed_is_one_line_and_no_failure(tmp_path, monkeypatch, capsys):
    spec = one_trial_spec(tmp_path, monkeypatch, RuntimeError("no data here\nsecond line"))
    assert sweep_mod.main([str(spec), "--dry-run", "--devices", "cpu"]) == 0
    assert capsys.readouterr().err.strip() == "[s] no estimate: RuntimeError: no data here"


# ------------------------------------------------------------------------------------- time left
def test_progress_line_shows_time_left_refined_by_finished_trials(monkeypatch, capsys):
    now = [100.0]
    monkeypatch.setattr(sweep_mod.time, "monotonic", lambda: now[0])
    p = sweep_mod.Progress("q", 3, 0, {"a": 10, "b": 10, "c": 10}, {"a": 60.0, "b": 60.0, "c": 60.0}, workers=1)
    p.update(("start", "a", 1))
    assert "~3 min left" in capsys.readouterr().err  # 60 + 60 + 60 on one worker
    now[0] += 30
    p.update(("progress", "a", 5))
    p.show(force=True)
    assert "0/3 done, 1 running, 0 failed, ~2 min left | a 5/10" in capsys.readouterr().err  # 30 + 60 + 60
    now[0] += 90  # a took 120 s: twice its estimate, so b and c will too
    p.update(("done", "a", "completed"))
    assert "1/3 done, 0 running, 0 failed, ~4 min left" in capsys.readouterr().err  # 2 x (60 + 60) = 240 s


def test_progress_without_an_estimate_is_as_before(capsys):
    p = sweep_mod.Progress("q", 1, 0, {"a": 10})
    p.update(("start", "a", 1))
    assert capsys.readouterr().err.strip() == "[q] 0/1 done, 1 running, 0 failed | a 0/10"


# ----------------------------------------------------------------------------------- trial ids
def test_estimating_changes_no_trial_id(monkeypatch):
    """Every shipped sweep's ids (tests/fixtures/sweep_ids.json) after the estimate's scaling has read them."""
    from test_data_defaults import CHANGED
    monkeypatch.setattr(E, "time_shapes", fake_timer)
    pinned = json.loads((ROOT / "tests" / "fixtures" / "sweep_ids.json").read_text())["sweeps"]
    for name, ids in pinned.items():
        if " --scale " in name:
            continue
        trials = load_spec(ROOT / name)[1]
        est = E.Estimator("cpu", 1, 2, 2, None)
        est.durations(trials, Path("/nonexistent"))
        est.adaptive(trials, {"max_seeds": 10, "extensions": 1})
        assert [t.config.trial_id() for t in trials] == [CHANGED.get(name, {}).get(i, i) for i in ids], name


def test_timing_a_real_shape_changes_neither_the_configs_nor_the_random_state(tmp_path):
    c = cfg(model={"mlp_width": 16}, train={"batch_size": 16},
            eval={"num_samples": 64, "w1_points": 32, "w1_draws": 1, "grid_size": 16},
            data={"holdout": 100, "synthetic_size": 1024})
    before, tid = c.model_dump(), c.trial_id()
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    t = E.time_shapes([c, c], "cpu", 1, tmp_path / "cache")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert c.model_dump() == before and c.trial_id() == tid
    (cost,) = t.shapes.values()
    assert 0 < cost.critic_s < 1 and 0 < cost.gen_s < 1 and 0 < cost.eval_s <= cost.final_eval_s < 10
    assert cost.checkpoint_s > 0 and cost.setup_s > 0 and (t.device, t.threads, t.clock) == ("cpu", 1, "cpu")
    assert list(t.worker_setup) == [E.eval_key(c)] and t.seconds < 30
