"""train.compile: the updates run eagerly, over torch.compile'd networks, or captured into CUDA graphs
(lightning_modules/updates.py). Every mode gives the losses of eager (tolerance below) and resumes exactly.

On CPU the compiled tests use torch.compile's `aot_eager` backend (dynamo + AOTAutograd, seconds) and one
slow test uses inductor (25 s of code generation with a cold cache); the CUDA-graph bookkeeping runs on CPU with the
capture replaced by re-running the update on the static buffers (what a replay does), and for real on a GPU."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from lightning_modules import updates
from study.config import load_trial_config
from study.trial import WorkerContext, run_trial
from test_sweep_files import ROOT

LOSSES = ["gan", "wgan", "wgan_gp", "wgan_sn"]
# Compiled vs eager, relative: measured 0 for the MLPs (the same kernels) and up to 4e-6 with spectral
# normalisation (fused power iteration); 1e-4 leaves room for other CPUs and is far below seed noise.
RTOL, ATOL = 1e-4, 1e-6
# train/clip_fraction counts weights within 1% of the bound: a float-noise difference moves a weight across
# that line (measured: 1 of 720 on the tiny DCGAN critic). Up to 1% of the weights may differ.
COUNT_ATOL = {"train/clip_fraction": 0.01}


def assert_close_to_eager(a: pd.DataFrame, eager: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL) -> None:
    cont = [c for c in a.columns if c not in COUNT_ATOL]
    pd.testing.assert_frame_equal(a[cont], eager[cont], rtol=rtol, atol=atol)
    for c in set(COUNT_ATOL) & set(a.columns):
        assert (a[c] - eager[c]).abs().max() <= COUNT_ATOL[c], c


def train_frame(path) -> pd.DataFrame:
    df = pd.read_csv(path / "metrics.csv")
    return df[[c for c in df.columns if c.startswith("train/")]]


def cpu_graphs(monkeypatch, graph=None) -> None:
    """`train.compile: on` means CUDA graphs on CPU too, with `graph` (a stand-in for updates.Graph) if given;
    optimizers stay plain (capturable ones need CUDA)."""
    monkeypatch.setitem(updates.ON, "cpu", "cuda_graph")
    set_capturable = updates.set_capturable
    monkeypatch.setattr(updates, "set_capturable", lambda opt, on: set_capturable(opt, False))
    if graph is not None:
        monkeypatch.setattr(updates, "Graph", graph)


def straight_and_resumed(cfg, tmp_path, kill_at, tag: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(result, metrics of 20 iterations straight, metrics when killed at 15 and resumed from 10)."""
    ctx = WorkerContext(evaluate=False)
    res = run_trial(cfg, tmp_path / f"{tag}_a", ctx=ctx)
    restore = kill_at(15)
    run_trial(cfg, tmp_path / f"{tag}_b", ctx=ctx)
    restore()
    assert run_trial(cfg, tmp_path / f"{tag}_b", ctx=ctx)["resumed_from"] == 10
    return res, train_frame(tmp_path / f"{tag}_a"), train_frame(tmp_path / f"{tag}_b")


def test_resolve_and_the_config_switch(tiny):
    assert updates.resolve("off", "cuda") == "eager" and updates.resolve("on", "cpu") == "inductor"
    assert updates.resolve("on", "cuda") == "cuda_graph" and updates.resolve("on", "mps") == "eager"
    assert updates.resolve("auto", "cpu") == updates.AUTO["cpu"] == "eager"  # measured: compile slower on CPU
    on, off = (load_trial_config(tiny(train__compile=v)) for v in ("on", "off"))
    assert on.trial_id() == off.trial_id()  # how a trial runs is not what it computes: same trial, resumable
    assert on.resolved()["train"]["compile"] == "on"
    assert load_trial_config(yaml.safe_load("train: {compile: on}")).train.compile == "on"  # YAML 1.1's on/off
    with pytest.raises(Exception, match="train.compile"):
        load_trial_config(tiny(train__compile=1))


def test_a_sweep_cannot_vary_how_trials_run(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"base": {"loss": "gan"}, "grid": {"train.compile": ["on", "off"]}}))
    proc = subprocess.run([sys.executable, "-m", "study.sweep", str(spec), "--dry-run"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "grid.train.compile" in line and "cannot be an axis" in line and "--set base.train.compile" in line


# every arm, and the class-conditional variant (labels as inputs, a critic with two heads) on a conv net
ARMS = {loss: {"loss": loss} for loss in LOSSES} | {"ac_wgan_dcgan": dict(
    loss="wgan", conditional=True, backbone="dcgan", data__name="mnist5k", data__image_size=16, model__nz=8,
    model__width=4)}


@pytest.mark.parametrize("arm", ARMS)
def test_compiled_updates_match_eager_and_resume_exactly(tiny, tmp_path, monkeypatch, kill_at, arm):
    monkeypatch.setattr(updates, "INDUCTOR_BACKEND", "aot_eager")
    eager = run_trial(load_trial_config(tiny(**ARMS[arm], train__compile="off")), tmp_path / "eager",
                      ctx=WorkerContext(evaluate=False))
    res, a, b = straight_and_resumed(load_trial_config(tiny(**ARMS[arm], train__compile="on")), tmp_path,
                                     kill_at, "compiled")
    assert eager["compile"] == "eager" and res["compile"] == "inductor"
    assert_close_to_eager(a, train_frame(tmp_path / "eager"))
    pd.testing.assert_frame_equal(a, b)  # exact resume


@pytest.mark.slow
def test_inductor_matches_eager_on_a_conv_critic(tiny, tmp_path, kill_at):
    """The real backend, on the DCGAN (convolutions, batch norm) and the MLP: 25 s with a cold code cache."""
    for loss, backbone in (("wgan", "dcgan"), ("gan", "mlp")):
        over = dict(loss=loss, backbone=backbone, train__gen_iters=20)
        if backbone == "dcgan":
            over.update(data__name="mnist5k", data__image_size=16, model__nz=8, model__width=4)
        eager = tmp_path / f"{loss}_eager"
        run_trial(load_trial_config(tiny(**over, train__compile="off")), eager, ctx=WorkerContext(evaluate=False))
        res, a, b = straight_and_resumed(load_trial_config(tiny(**over, train__compile="on")), tmp_path,
                                         kill_at, loss)
        assert res["compile"] == "inductor"
        assert_close_to_eager(a, train_frame(eager))
        pd.testing.assert_frame_equal(a, b)


class CpuGraph(updates.Graph):
    """updates.Graph's bookkeeping on CPU: warm-up calls run the update; 'capture' keeps the function and the
    static arguments, and each 'replay' runs it on them, writing into the same output tensors (a CUDA graph
    replays its kernels on the captured buffers). What it checks: inputs reach the static buffers on every
    call, outputs are read before they are overwritten, and the tensors a replay would update (parameters,
    optimizer state) are the very ones that existed at capture: none replaced (e.g. by a restore after the
    capture), none created later. What it cannot check (re-running Python re-reads every Python value): a value
    baked into the graph at capture; the CUDA test below does."""

    def _warmup(self, inputs):
        return self.fn(*inputs)

    def _capture(self, static_args):
        self.static_out = {}
        module, graph = self.fn.__self__, self
        opt = module._d_opt if self.fn.__name__ == "critic_update" else module._g_opt  # the one this update steps
        tensors = lambda: [(id(t), t.data_ptr()) for t in (*module.parameters(), *(  # noqa: E731
            v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)))]
        at_capture = tensors()

        class Replay:
            def replay(self):
                out = graph.fn(*static_args)
                assert tensors() == at_capture, "a tensor the graph updates was replaced or created after capture"
                for k, v in out.items():
                    graph.static_out.setdefault(k, torch.empty_like(v)).copy_(v)
        return Replay()


class StaleInputs(CpuGraph):
    """A broken runner that never refreshes its static inputs: the test must tell it apart."""

    def __call__(self, *inputs):
        if self.graph is not None:
            self.graph.replay()
            return self.static_out
        return super().__call__(*inputs)


@pytest.mark.parametrize("loss", ["wgan", "wgan_gp"])
def test_graph_replay_bookkeeping_gives_eager_losses_and_resumes_exactly(tiny, tmp_path, monkeypatch, kill_at,
                                                                         loss):
    """wgan: clamping inside the update; wgan_gp: a random draw (the penalty's interpolation weights) as an input."""
    cpu_graphs(monkeypatch, CpuGraph)
    eager = run_trial(load_trial_config(tiny(loss=loss, train__compile="off")), tmp_path / "eager",
                      ctx=WorkerContext(evaluate=False))
    cfg = load_trial_config(tiny(loss=loss, train__compile="on"))
    res, a, b = straight_and_resumed(cfg, tmp_path, kill_at, "graph")
    assert res["compile"] == "cuda_graph" and eager["compile"] == "eager"
    pd.testing.assert_frame_equal(a, train_frame(tmp_path / "eager"))  # CPU kernels either way: bit for bit
    pd.testing.assert_frame_equal(a, b)
    monkeypatch.setattr(updates, "Graph", StaleInputs)
    run_trial(cfg, tmp_path / "stale", ctx=WorkerContext(evaluate=False))
    stale = train_frame(tmp_path / "stale")
    assert not stale["train/d_real"].equals(a["train/d_real"])  # the check above would catch stale buffers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss", ["wgan", "wgan_gp"])
def test_cuda_graphs_match_eager_and_resume_exactly(tiny, tmp_path, kill_at, loss):
    over = dict(loss=loss, backbone="dcgan", data__name="mnist5k", data__image_size=16, model__nz=8, model__width=4)

    def run(compile_, where):
        return run_trial(load_trial_config(tiny(**over, train__compile=compile_)), tmp_path / where, device="cuda",
                         ctx=WorkerContext(evaluate=False))
    run("off", "eager")
    ctx = WorkerContext(evaluate=False)
    cfg = load_trial_config(tiny(**over, train__compile="on"))
    assert run_trial(cfg, tmp_path / "a", device="cuda", ctx=ctx)["compile"] == "cuda_graph"
    restore = kill_at(15)
    run_trial(cfg, tmp_path / "b", device="cuda", ctx=ctx)
    restore()
    run_trial(cfg, tmp_path / "b", device="cuda", ctx=ctx)
    a, b = train_frame(tmp_path / "a"), train_frame(tmp_path / "b")
    assert_close_to_eager(a, train_frame(tmp_path / "eager"), rtol=1e-3, atol=1e-5)  # capturable optimizers' math
    assert_close_to_eager(a, b, rtol=1e-5, atol=1e-7)


def test_optimizer_state_follows_the_mode_it_resumes_in():
    """A checkpoint written with capturable optimizers (a GPU run with graphs) resumed eagerly, e.g. on CPU: the
    restored flag would make the first step fail ('params and state_steps must be on supported devices')."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["capturable"] = True   # as load_state_dict restores it from such a checkpoint
    with pytest.raises(Exception):
        opt.step()
    updates.set_capturable(opt, False)
    opt.step()
    assert opt.state[w]["step"].item() == 2 and opt.state[w]["step"].device.type == "cpu"


def test_a_failed_capture_keeps_the_checkpoint_it_resumed_from(tiny, tmp_path, monkeypatch, kill_at):
    """Capture runs in the first iteration after a restore, when a failure would otherwise count against the
    checkpoint (study/trial.py sets such checkpoints aside): a capture failure is the harness's."""
    class Broken(CpuGraph):
        def _capture(self, static_args):
            raise updates.CaptureError("CUDA graph capture failed (test)")
    cfg = load_trial_config(tiny(train__compile="on"))
    cpu_graphs(monkeypatch, CpuGraph)
    restore = kill_at(15)
    run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))   # killed at 15: a checkpoint at 10
    restore()
    monkeypatch.setattr(updates, "Graph", Broken)
    res = run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))
    assert res["status"] == "failed" and "capture failed" in res["error"]
    assert (tmp_path / "t" / "checkpoints" / "iter_000010.ckpt").exists()


def test_gpu_figures_are_never_filled_in_without_a_gpu():
    """benchmarks.gpu_capture on a machine without CUDA measures nothing and RESULTS.md says 'not measured yet';
    a measured run is judged against each target of the issue, '-' where a part did not run."""
    from benchmarks.gpu_capture import main
    from benchmarks.render import render_capture
    if not torch.cuda.is_available():
        out = main([])
        assert out["status"] == "not measured yet" and out["parts"] == {}
        assert "**Not measured yet**" in render_capture(out)
    measured = {"status": "measured", "device": "GPU", "machine": {}, "parts": {
        "steps": {"device": "cuda", "threads": 2, "results": [
            {"case": "ring8", "loss": "wgan", "batch": 256, "mode": "cuda_graph", "iters": 30, "skip": 8, "repeats": 2,
             "eager_ms": 40.0, "compiled_ms": 3.2, "speedup": 12.5, "one_off_first_s": 1.0, "one_off_s": 0.5,
             "loss_rel_diff": 1e-6, "compiled_repeatable": True}]},
        "long_ring8": {"gen_iters": 100000, "wall_s": 75.0, "wall_100k_s": 75.0, "wall_100k_is": "measured"},
        "quick_sweep": {"on": {"wall_s": 30.0, "rc": 0, "gpu_util_mean_pct": 61.0}}}}
    md = render_capture(measured)
    assert "| ring8 WGAN speedup per trial >= 10x | 12.5 | met |" in md
    assert "| 100,000 ring8 WGAN iterations <= 60 s | 75 | NOT met |" in md
    assert "| mean GPU utilisation in the quick sweep >= 60% | 61 | met |" in md
    assert "| arch.yaml <= 20 min (projected) | - | - |" in md


class CountingGraph(CpuGraph):
    calls: dict[str, list[str]] = {}

    def __call__(self, *inputs):
        kind = "warmup" if self.graph is None and self.calls < self.warmup else "replay"
        CountingGraph.calls.setdefault(self.fn.__name__, []).append(kind)
        return super().__call__(*inputs)


def test_warm_up_schedule_replays_one_graph_and_nan_inputs_still_diverge(tiny, tmp_path, monkeypatch):
    """The reference schedule (here 7 critic updates in each of the first 2 generator iterations, then 5) replays
    the one captured critic update; a non-finite real batch after capture ends the trial as diverged."""
    cpu_graphs(monkeypatch, CountingGraph)
    over = dict(wgan__warmup=True, wgan__warmup_critic=7, wgan__warmup_iters=2, train__gen_iters=6)
    run_trial(load_trial_config(tiny(**over, train__compile="off")), tmp_path / "eager", ctx=WorkerContext(evaluate=False))
    CountingGraph.calls = {}
    res = run_trial(load_trial_config(tiny(**over, train__compile="on")), tmp_path / "graph",
                    ctx=WorkerContext(evaluate=False))
    critic = CountingGraph.calls["critic_update"]
    assert res["critic_iters"] == len(critic) == 7 + 7 + 4 * 5
    assert critic.count("warmup") == updates.GRAPH_WARMUP_CALLS and critic.count("replay") == len(critic) - 3
    pd.testing.assert_frame_equal(train_frame(tmp_path / "graph"), train_frame(tmp_path / "eager"))

    from study.data import RealSampler
    draws = {"n": 0}
    real_next = RealSampler.next

    def poisoned(self):
        draws["n"] += 1
        x = real_next(self)
        return x * float("nan") if draws["n"] > 20 else x  # after capture (call 4)
    monkeypatch.setattr(RealSampler, "next", poisoned)
    res = run_trial(load_trial_config(tiny(**over, train__compile="on")), tmp_path / "nan",
                    ctx=WorkerContext(evaluate=False))
    # draws 1-14: iterations 1-2, 15-19: iteration 3, 20-24: iteration 4 (from draw 21 on, NaN)
    assert res["status"] == "diverged" and res["diverged_at"] == 4 and "non-finite" in res["error"]
