"""log.tensorboard: event files beside metrics.csv with the same scalars, the sample grids and critic histograms."""
import pandas as pd
import pytest

from study.config import ConfigError, TrialConfig, load_trial_config
from study.trial import WorkerContext, run_trial


def _events(trial_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(trial_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_tensorboard_trial_writes_scalars_grids_and_histograms(tiny, tmp_path):
    # ring8, 20 iterations, evaluations at 0, 10, 20; clipping after each update, so the critic logged at an
    # evaluation is inside the box (with the reference order it is clamped at the next critic update)
    cfg = load_trial_config(tiny(log__tensorboard=True, wgan__clip_order="after"))
    r = run_trial(cfg, tmp_path, ctx=WorkerContext())
    assert r["status"] == "completed"
    acc = _events(tmp_path)
    tags = acc.Tags()
    csv = pd.read_csv(tmp_path / "metrics.csv")
    metric_cols = [c for c in csv.columns if c.startswith(("train/", "eval/"))]
    assert set(metric_cols) <= set(tags["scalars"])
    # the same numbers at the same generator iterations as metrics.csv
    for col in ("train/w_estimate", "eval/w1"):
        rows = csv[["step", col]].dropna()
        events = acc.Scalars(col)
        assert [e.step for e in events] == rows["step"].tolist()
        assert [e.value for e in events] == pytest.approx(rows[col].tolist(), rel=1e-6)
    assert [e.step for e in acc.Images("samples/grid")] == [0, 10, 20]
    hist = [t for t in tags["histograms"] if t.startswith("critic/")]
    assert hist and all([e.step for e in acc.Histograms(t)] == [0, 10, 20] for t in hist)
    # a WGAN critic's weights all lie within the clipping bound
    assert all(acc.Histograms(t)[-1].histogram_value.max <= cfg.wgan.clip + 1e-9 for t in hist)
    assert "config/text_summary" in tags["tensors"]


def test_resumed_trial_logs_each_step_once(tiny, tmp_path):
    cfg = load_trial_config(tiny(log__tensorboard=True))
    run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))
    again = run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))  # resumes from iter_000010.ckpt
    assert again["resumed_from"] == 10
    steps = [e.step for e in _events(tmp_path).Scalars("train/d_loss")]
    assert steps == list(range(1, 21))  # steps 11-20 of the first run were purged, not doubled


def test_tensorboard_is_off_by_default_and_keeps_trial_ids(tiny, tmp_path):
    cfg = load_trial_config(tiny())
    assert cfg.log.tensorboard is False
    # the log section never enters the id: turning TensorBoard on resumes the same trial
    without = cfg.resolved()
    without.pop("log")
    assert TrialConfig.model_validate(without).trial_id() == cfg.trial_id()
    assert load_trial_config(tiny(log__tensorboard=True)).trial_id() == cfg.trial_id()
    # ids computed before the log section existed (main at 5dea7e2; WGAN then clipped after each update)
    assert TrialConfig.model_validate({"wgan": {"clip_order": "after"}}).trial_id() == "wgan_dcgan_mnist5k_s0_3a47d313"
    assert TrialConfig.model_validate({"loss": "gan", "backbone": "mlp", "data": {"name": "mnist5k"},
                                       "conditional": True}).trial_id() == "acgan_mlp_mnist5k_s0_bc6d7979"
    run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))
    assert not (tmp_path / "tb").exists()
    with pytest.raises(ConfigError, match=r"log\.tb: unknown key \(allowed: tensorboard\)"):
        load_trial_config(tiny(log__tb=True))


def test_sweep_refuses_tensorboard_without_the_package(tmp_path, monkeypatch, capsys):
    import importlib.util

    from study.sweep import main
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\nbase: {data: {name: ring8}, backbone: mlp, log: {tensorboard: true}}\ngrid: {seed: [0]}\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main([str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "log.tensorboard: true needs the tensorboard package" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written
