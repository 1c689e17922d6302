import math

import pandas as pd
import pytest
import torch

from study.config import load_trial_config
from study.trial import WorkerContext, run_trial

TRAIN_KEYS = {"step", "train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/critic_iters"}


@pytest.mark.parametrize("order", ["after", "before"])
def test_wgan_critic_parameters_are_clipped_in_either_order(tiny, one_iteration, order):
    cfg = load_trial_config(tiny(wgan__clip=0.005, wgan__lr=0.5, wgan__clip_order=order))  # a huge lr pushes every weight out
    m = one_iteration(cfg)
    m.cfg.train.gen_iters = 10 ** 6
    m.training_step(None, 0)
    params = lambda: torch.cat([p.detach().flatten() for p in m.critic.parameters()])  # noqa: E731
    if order == "before":  # the reference code: the last update is not clamped until the next critic iteration
        assert params().abs().max().item() > 0.005
        m.constraint.before_update(m.critic)
    assert params().abs().max().item() <= 0.005 + 1e-9
    assert (params().abs() > 0.0049).float().mean() > 0.5  # the clamp was active, not vacuous
    assert 0.5 < m.row["train/clip_fraction"] <= 1.0  # at the bound (or, before the next clamp, beyond it)


def test_the_reference_clip_order_is_the_default_and_old_ids_are_unchanged():
    """Ids computed by the code before the algorithm registry and the clip-order switch (commit 5dea7e2):
    trials that ran then (clipping after each update) keep their directories."""
    assert load_trial_config({}).wgan.clip_order == "before"
    assert load_trial_config({"loss": "wgan", "wgan": {"clip_order": "after"}}).trial_id() == \
        "wgan_dcgan_mnist5k_s0_3a47d313"
    assert load_trial_config({"loss": "gan"}).trial_id() == "gan_dcgan_mnist5k_s0_aeb6f6cd"
    assert load_trial_config({"loss": "gan", "conditional": True}).trial_id() == "acgan_dcgan_mnist5k_s0_234ddcdb"
    assert load_trial_config({"loss": "wgan"}).trial_id() != "wgan_dcgan_mnist5k_s0_3a47d313"  # a new run


@pytest.mark.parametrize("warmup,expected", [(True, 2525), (False, 150)])
def test_critic_updates_after_30_generator_iterations(tiny, tmp_path, warmup, expected):
    cfg = load_trial_config(tiny(wgan__warmup=warmup, train__gen_iters=30, train__batch_size=8, eval__every=0))
    r = run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))
    assert (r["status"], r["gen_iters"], r["critic_iters"]) == ("completed", 30, expected)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df["step"].tolist() == list(range(1, 31))  # one row per generator iteration, not per optimizer step
    assert df["train/critic_iters"].iloc[-1] == expected


@pytest.mark.parametrize("loss,estimate", [("gan", "train/js_estimate"), ("wgan", "train/w_estimate")])
@pytest.mark.parametrize("data,backbone", [("ring8", "mlp"), ("mnist5k", "dcgan")])
def test_twenty_iteration_fit_writes_metrics(tiny, tmp_path, loss, estimate, data, backbone):
    cfg = load_trial_config(tiny(loss=loss, backbone=backbone, data__name=data, data__image_size=16,
                                 model__nz=8, model__width=4))
    r = run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))
    assert r["status"] == "completed" and r["gen_iters"] == 20
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert TRAIN_KEYS | {estimate} <= set(df.columns) and len(df) == 20
    assert all(math.isfinite(v) for v in df[sorted(TRAIN_KEYS | {estimate})].to_numpy().ravel())
    if loss == "wgan":
        assert df["train/w_estimate"].tolist() == pytest.approx((-df["train/d_loss"]).tolist(), abs=1e-6)
    else:
        assert df["train/js_estimate"].tolist() == pytest.approx((math.log(2) - df["train/d_loss"] / 2).tolist(), abs=1e-6)
    assert (tmp_path / "samples" / "grid_000010.png").exists() and (tmp_path / "samples" / "grid_000020.png").exists()
    x = __import__("numpy").load(tmp_path / "samples.npz")["x"]
    assert x.shape == (200, 2 if data == "ring8" else 16 * 16)


def test_nan_ends_the_trial_as_diverged(tiny, tmp_path, monkeypatch):
    import dataclasses
    from lightning_modules import ALGORITHMS
    nan = dataclasses.replace(ALGORITHMS.get("wgan"), estimate=lambda d_loss: d_loss * float("nan"))
    monkeypatch.setitem(ALGORITHMS._items, "wgan", nan)
    r = run_trial(load_trial_config(tiny()), tmp_path, ctx=WorkerContext(evaluate=False))
    assert r["status"] == "diverged" and r["diverged_at"] == 1 and "non-finite" in r["error"]


def test_same_seed_same_metrics(tiny, tmp_path):
    cfg = load_trial_config(tiny(loss="gan", train__gen_iters=15))
    run_trial(cfg, tmp_path / "a", ctx=WorkerContext(evaluate=False))
    run_trial(cfg, tmp_path / "b", ctx=WorkerContext(evaluate=False))
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()


def test_corrupt_last_checkpoint_falls_back_to_the_one_before(tiny, tmp_path):
    cfg = load_trial_config(tiny(train__gen_iters=20, train__checkpoint_every=5, eval__every=0))
    ref = run_trial(cfg, tmp_path / "ref", ctx=WorkerContext(evaluate=False))
    run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))
    ckpts = sorted((tmp_path / "t" / "checkpoints").glob("iter_*.ckpt"))
    assert [c.name for c in ckpts] == ["iter_000010.ckpt", "iter_000015.ckpt"]  # keep_checkpoints = 2
    assert (tmp_path / "t" / "checkpoints" / "final.ckpt").exists()  # what a longer trial would continue from
    (tmp_path / "t" / "result.json").unlink()  # as if killed before the end
    ckpts[-1].write_bytes(b"half a checkpoint")
    with pytest.warns(UserWarning, match="corrupt checkpoint"):
        r = run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))
    assert r["status"] == "completed" and r["resumed_from"] == 10 and r["critic_iters"] == ref["critic_iters"]
    assert (tmp_path / "t" / "checkpoints" / "iter_000015.corrupt").exists()
    a, b = pd.read_csv(tmp_path / "t" / "metrics.csv"), pd.read_csv(tmp_path / "ref" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)
