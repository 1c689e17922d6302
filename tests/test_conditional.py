"""AC-GAN / AC-WGAN (conditional: true): shapes, the class loss, clipping of the class head, a short
fit with its new keys and the class sheet, evaluation against the asked labels, and config errors."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lightning_modules.backbones import ConditionalCritic, ConditionalGenerator, build, make_conditional
from lightning_modules.losses import class_accuracy, class_loss
from lightning_modules.backbones import Sizes
from study.config import ConfigError, load_trial_config
from study.trial import WorkerContext, run_trial

CLASS_KEYS = {"train/d_class_loss", "train/g_class_loss", "train/class_acc_real", "train/class_acc_fake"}


def conditional(tiny, **over):
    base = dict(conditional=True, backbone="dcgan", data__name="mnist5k", data__image_size=16,
                model__nz=8, model__width=4, train__batch_size=20)
    return load_trial_config(tiny(**(base | over)))


@pytest.mark.parametrize("name,shape", [("dcgan", (1, 16, 16)), ("dcgan", (3, 32, 32)), ("mlp", (1, 16, 16))])
def test_conditional_shapes(name, shape):
    cfg = Sizes(nz=8, width=4, mlp_width=16)
    g, d = make_conditional(build(name, "generator", cfg, shape), build(name, "critic", cfg, shape), 10, 8)
    assert isinstance(g, ConditionalGenerator) and isinstance(d, ConditionalCritic)
    z, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 7, 8, 9])
    x = g(z, y)
    assert x.shape == (6, *shape)
    scores, logits = d(x)
    assert scores.shape == (6,) and logits.shape == (6, 10)
    assert g.embed.weight.shape == (10, 8)  # the class embedded in nz dimensions
    # the class changes the sample (z is multiplied by the class embedding), the noise alone does not decide it
    assert not torch.allclose(g(z, torch.zeros(6, dtype=torch.long)), g(z, torch.ones(6, dtype=torch.long)))


def test_conditional_critic_shares_features_with_the_adversarial_head():
    cfg = Sizes(nz=8, width=4)
    pair = lambda: (build("dcgan", "generator", cfg, (1, 16, 16)), build("dcgan", "critic", cfg, (1, 16, 16)))  # noqa: E731
    torch.manual_seed(0)
    plain_g, plain = pair()
    torch.manual_seed(0)
    cond_g, cond = make_conditional(*pair(), 10, 8)
    x = torch.randn(5, 1, 16, 16)
    # same seed: both backbones hold the unconditional pair's weights, so the adversarial output is the same
    assert all(torch.equal(a, b) for a, b in zip(plain_g.parameters(), cond_g.backbone.parameters()))
    assert torch.allclose(cond(x)[0], plain(x))
    assert set(plain.state_dict()) == {k.removeprefix("backbone.") for k in cond.state_dict() if k.startswith("backbone.")}
    assert all(k.startswith("main.") for k in plain.state_dict())  # checkpoints from before the class head load
    h = cond.backbone.features(x)
    assert torch.allclose(cond(x)[1], cond.class_head(h).flatten(1))


def test_class_loss_equals_hand_computed_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [-2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 0, 1])
    by_hand = []
    for row, k in zip(logits.tolist(), labels.tolist()):
        by_hand.append(-(row[k] - math.log(sum(math.exp(v) for v in row))))
    assert class_loss(logits, labels).item() == pytest.approx(sum(by_hand) / 4, abs=1e-6)
    assert class_accuracy(logits, labels).item() == pytest.approx(0.5)  # rows 0 and 1 right


def test_step_adds_class_terms_to_both_players(tiny, one_iteration):
    """The critic's loss is d_loss + w (CE real + CE fake); the generator's g_loss + w CE: with the
    class head zeroed every logit is 0, so each CE is log K exactly and the rows must say so."""
    cfg = conditional(tiny, loss="gan", class_weight=0.5)
    m = one_iteration(cfg)
    with torch.no_grad():
        m.critic.class_head.weight.zero_()
    for opt in m.optimizers():
        for group in opt.param_groups:
            group["lr"] = 0.0  # no update: the logged terms are those of the zeroed head
    m.training_step(None, 0)
    assert m.row["train/d_class_loss"] == pytest.approx(2 * math.log(10), abs=1e-5)
    assert m.row["train/g_class_loss"] == pytest.approx(math.log(10), abs=1e-5)
    assert 0.0 <= m.row["train/class_acc_real"] <= 1.0 and 0.0 <= m.row["train/class_acc_fake"] <= 1.0


def test_class_weight_zero_leaves_the_class_head_untrained(tiny, one_iteration):
    cfg = conditional(tiny, loss="gan", class_weight=0.0)
    m = one_iteration(cfg)
    before = m.critic.class_head.weight.detach().clone()
    m.training_step(None, 0)
    assert torch.equal(m.critic.class_head.weight, before)  # its gradient is zero: Adam leaves it
    assert math.isfinite(m.row["train/d_loss"]) and m.row["train/d_class_loss"] > 0  # still measured


def test_conditional_wgan_clips_every_critic_parameter_including_the_class_head(tiny, one_iteration):
    cfg = conditional(tiny, loss="wgan", wgan__clip=0.005, wgan__lr=0.5, wgan__clip_order="after")  # a huge lr pushes every weight out
    m = one_iteration(cfg)
    m.cfg.train.gen_iters = 10 ** 6
    m.training_step(None, 0)
    named = dict(m.critic.named_parameters())
    assert any(k.startswith("class_head") for k in named)
    for name, p in named.items():
        assert p.abs().max().item() <= 0.005 + 1e-9, name
    head = m.critic.class_head.weight
    assert (head.abs() > 0.0049).float().mean() > 0.5  # the clamp was active on the class head too
    assert m.generator.embed.weight.abs().max() > 0.005  # the generator is not clipped


@pytest.mark.parametrize("loss", ["gan", "wgan"])
def test_twenty_iteration_conditional_fit_writes_the_new_keys(tiny, tmp_path, loss):
    cfg = conditional(tiny, loss=loss, eval__num_samples=200, eval__every=10)
    ctx = WorkerContext(cache_dir=tmp_path / "cache")
    r = run_trial(cfg, tmp_path / "t", ctx=ctx)
    assert r["status"] == "completed" and r["gen_iters"] == 20
    assert r["trial_id"].startswith(f"ac{loss}_dcgan_mnist5k_s0_")
    df = pd.read_csv(tmp_path / "t" / "metrics.csv")
    assert df["step"].iloc[0] == 0 and df.iloc[0][sorted(CLASS_KEYS)].isna().all()  # the untrained generator: eval only
    df = df[df["step"] > 0]
    assert CLASS_KEYS <= set(df.columns) and df[sorted(CLASS_KEYS)].notna().all().all()
    assert ((df["train/class_acc_real"] >= 0) & (df["train/class_acc_real"] <= 1)).all()
    evals = df.dropna(subset=["eval/class_acc"])
    assert evals["step"].tolist() == [10, 20]
    per_class = [f"eval/class_fid@domain/c{c}" for c in range(10)]
    assert set(per_class) <= set(df.columns)
    # the mean over classes is what the report shows
    last = evals.iloc[-1]
    assert last["eval/class_fid@domain"] == pytest.approx(np.mean([last[k] for k in per_class]), rel=1e-6)
    final = json.loads((tmp_path / "t" / "result.json").read_text())["final"]
    assert 0.0 <= final["eval/class_acc"] <= 1.0 and final["eval/class_fid@domain"] > 0
    assert CLASS_KEYS <= set(final)
    # the class sheet: one row per class, the same noise in each column -> 10 x 10 tiles of 16 px
    img = Image.open(tmp_path / "t" / "samples" / "grid_000020.png")
    assert img.size == (10 * 16 + 11 * 2, 10 * 16 + 11 * 2)  # torchvision's 2-px padding
    z = np.load(tmp_path / "t" / "samples.npz")
    assert z["x"].shape == (200, 256) and z["y"].tolist() == [i % 10 for i in range(200)]


def test_class_metrics_score_the_asked_labels(tiny, tmp_path):
    """Real held-out digits 'asked for' with their true labels score the classifier's accuracy;
    the same digits with shuffled labels score about chance, and per-class FID gets worse."""
    from study.data import load_dataset
    from study.eval.evaluator import Evaluator
    cfg = conditional(tiny, eval__num_samples=500)
    data = load_dataset(cfg.data)
    ev = Evaluator(data, cfg.data, cfg.eval, "cpu", tmp_path)
    idx = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(0))[:500]
    x, y = data.train_x[idx], data.train_y[idx]
    assert len(y.unique()) == 10
    right = ev(x, final=False, labels=y)
    wrong = ev(x, final=False, labels=y[torch.randperm(500, generator=torch.Generator().manual_seed(0))])
    assert right["eval/class_acc"] > 0.85 and wrong["eval/class_acc"] < 0.25
    assert wrong["eval/class_fid@domain"] > 2 * right["eval/class_fid@domain"]
    # the first conditional call adds the floor's per-class FID (real images, true labels), not its accuracy
    floor = ev.info["real_floor"]
    assert "eval/class_acc" not in floor and 0 < floor["eval/class_fid@domain"] < wrong["eval/class_fid@domain"]
    assert {f"eval/class_fid@domain/c{c}" for c in range(10)} <= set(floor)
    assert "eval/class_acc" not in ev(x, final=False)  # unconditional calls are unchanged


@pytest.mark.parametrize("data", ["ring8", "grid25", "stacked_mnist5k"])
def test_conditional_without_class_labels_is_a_one_line_config_error(tiny, data):
    backbone = "mlp" if data != "stacked_mnist5k" else "dcgan"
    with pytest.raises(ConfigError) as e:
        load_trial_config(tiny(conditional=True, backbone=backbone, data__name=data), where="sweeps/x.yaml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("sweeps/x.yaml")
    assert f"data '{data}' has none" in msg and "mnist5k" in msg and "cifar10" in msg


def test_unconditional_trial_ids_are_unchanged_by_the_new_keys(tiny):
    a = load_trial_config(tiny()).trial_id()
    b = load_trial_config(tiny(class_weight=3.0)).trial_id()  # inert without conditional
    assert a == b and not a.startswith("ac")
    assert load_trial_config(tiny(conditional=True, data__name="mnist5k", backbone="dcgan")).trial_id().startswith("acwgan")


def test_class_sheet_shapes(tiny, one_iteration):
    m = one_iteration(conditional(tiny, backbone="mlp", eval__grid_size=16))  # no BN: tiles are independent
    x, nrow = m.grid_samples()
    assert nrow == 10 and x.shape == (100, 1, 16, 16)
    # rows are classes: tile (r, c) is G(noise c, class r)
    with torch.no_grad():
        want = m.generator(m.fixed_noise[3:4], torch.tensor([7]))
    assert torch.allclose(x[7 * 10 + 3], want[0], atol=1e-6)
    assert torch.equal(m.eval_labels(25)[:12], torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]))
    assert F.mse_loss(x[0], x[1]).item() > 0  # different noise per column


def test_conditional_resume_is_exact(tiny, tmp_path):
    """Labels are drawn from the checkpointed noise stream and the real sampler's stream: a trial
    resumed from its checkpoint at iteration 5 writes the same metrics as one never interrupted."""
    cfg = conditional(tiny, loss="gan", train__gen_iters=10, train__checkpoint_every=5, eval__every=0)
    ref = run_trial(cfg, tmp_path / "ref", ctx=WorkerContext(evaluate=False))
    run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))
    (tmp_path / "t" / "result.json").unlink()  # as if killed after the checkpoint at 5
    r = run_trial(cfg, tmp_path / "t", ctx=WorkerContext(evaluate=False))
    assert r["resumed_from"] == 5 and r["status"] == ref["status"] == "completed"
    a, b = pd.read_csv(tmp_path / "t" / "metrics.csv"), pd.read_csv(tmp_path / "ref" / "metrics.csv")
    assert CLASS_KEYS <= set(a.columns)
    pd.testing.assert_frame_equal(a, b)
