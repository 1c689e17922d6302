"""Defaults the data decides (issue #24): a toy spec that leaves out backbone, model.nz and WGAN-GP's λ gets what
every toy setup uses (mlp, nz 2, λ = 0.1); a value the user sets always wins; shipped sweeps keep their trial ids
wherever their resolved configs did not change; the report's setup says which defaults came from the data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lightning_modules import ALGORITHMS
from study.config import ConfigError, data_defaults, load_trial_config
from study.data import DATASETS
from study.paper.plan import OVERRIDES
from study.report.compute import defaults_lines, paper_deviations
from study.report.load import load_run
from study.spec import load_spec
from study.trial import WorkerContext, run_trial
from test_report_fixture import write_trial

ROOT = Path(__file__).resolve().parents[1]

# The spec, as a new user writes it: no backbone, no model.nz, no λ.
TOY_SPEC = """name: toy
base:
  data: {name: ring8}
  model: {mlp_width: 128}
  train: {gen_iters: 3000, batch_size: 256}
grid:
  loss: [gan, wgan, wgan_gp, wgan_sn]
  seed: [0, 1, 2]
"""


def toy_trials(tmp_path, *sets: str):
    spec = tmp_path / "toy.yaml"
    spec.write_text(TOY_SPEC)
    return load_spec(spec, list(sets))[1]


def test_a_toy_spec_without_backbone_or_nz_gets_the_mlp_and_2d_noise(tmp_path):
    trials = toy_trials(tmp_path)
    assert len(trials) == 12
    assert {(t.config.backbone.generator, t.config.backbone.critic, t.config.model.nz) for t in trials} == \
        {("mlp", "mlp", 2)}
    assert all(t.id.startswith(f"{t.config.loss}_mlp_ring8_s") for t in trials)
    cfg = trials[0].config.resolved()  # what config.yaml shows
    assert (cfg["backbone"], cfg["model"]["nz"], cfg["model"]["mlp_width"]) == \
        ({"generator": "mlp", "critic": "mlp"}, 2, 128)


def test_a_tiny_toy_trial_from_defaults_runs(tiny, tmp_path):
    raw = tiny(loss="wgan_gp", train__gen_iters=6, eval__every=0)
    del raw["backbone"], raw["model"]["nz"]
    cfg = load_trial_config(raw)
    r = run_trial(cfg, tmp_path, ctx=WorkerContext(evaluate=False))
    assert (r["status"], r["gen_iters"], r["critic_iters"]) == ("completed", 6, 30)  # n_critic 5
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (written["backbone"]["generator"], written["model"]["nz"], written["wgan_gp"]["gp_weight"]) == \
        ("mlp", 2, 0.1)


def test_image_data_keep_the_generic_defaults():
    cfg = load_trial_config({"data": {"name": "mnist5k"}})
    assert (cfg.backbone.label, cfg.model.nz) == ("dcgan", 100)
    assert data_defaults({"data": {"name": "mnist5k"}}) == {}
    assert data_defaults({}) == {}  # the default data set is mnist5k


@pytest.mark.parametrize("data", ["ring8", "grid25"])
def test_what_points_data_decide(data):
    assert data_defaults({"data": {"name": data}}) == {"backbone": "mlp", "model.nz": 2, "wgan_gp.gp_weight": 0.1}


@pytest.mark.parametrize("data", DATASETS.names())
def test_every_data_set_resolves_by_its_kind(data):
    """Every registration's defaults are valid settings: points get the MLP, 2-D noise and the toy λ; images the
    paper's image setup, for every loss."""
    toy = DATASETS.get(data).kind == "points"
    for loss in ALGORITHMS.names():
        cfg = load_trial_config({"data": {"name": data}, "loss": loss})
        assert (cfg.backbone.label, cfg.model.nz, cfg.wgan_gp.gp_weight) == \
            (("mlp", 2, 0.1) if toy else ("dcgan", 100, 10.0))


def test_a_value_the_user_sets_wins_even_at_the_generic_default(tmp_path):
    on_ring8 = {"data": {"name": "ring8"}}
    assert load_trial_config({**on_ring8, "model": {"nz": 100}}).model.nz == 100
    assert load_trial_config({**on_ring8, "model": {"nz": 7}}).model.nz == 7
    assert data_defaults({**on_ring8, "model": {"nz": 100}, "backbone": "mlp"}) == {"wgan_gp.gp_weight": 0.1}
    pair = load_trial_config({**on_ring8, "backbone": {"generator": "mlp", "critic": "mlp"}})
    assert (pair.backbone.label, pair.model.nz) == ("mlp", 2)  # backbone given, nz still from the data
    with pytest.raises(ConfigError, match="backbone 'dcgan' needs image data, but data 'ring8' is points"):
        load_trial_config({**on_ring8, "backbone": "dcgan"})  # kept, so still refused: never silently replaced
    kept = toy_trials(tmp_path, "base.model.nz=100")  # --set, as a user overrides a spec
    assert {t.config.model.nz for t in kept} == {100}
    # nz 100 and nz 2 are different trials; an explicit nz 2 is the same trial as the data's default
    assert not {t.id for t in kept} & {t.id for t in toy_trials(tmp_path)}
    assert [t.id for t in toy_trials(tmp_path, "base.model.nz=2", "base.backbone=mlp")] == \
        [t.id for t in toy_trials(tmp_path)]


def test_wgan_gp_lambda_follows_the_data_unless_set():
    gp = lambda **raw: load_trial_config({"loss": "wgan_gp", **raw}).wgan_gp.gp_weight  # noqa: E731
    assert gp(data={"name": "ring8"}) == 0.1 and gp(data={"name": "grid25"}) == 0.1
    assert gp(data={"name": "mnist5k"}) == 10.0 and gp() == 10.0
    assert gp(data={"name": "ring8"}, wgan_gp={"gp_weight": 10.0}) == 10.0
    assert gp(data={"name": "ring8"}, wgan_gp={"lr": 1e-3}) == 0.1  # other settings given: λ still the data's
    assert gp(data={"name": "mnist5k"}, wgan_gp={"gp_weight": 0.1}) == 0.1
    # the other sections are the paper's everywhere
    toy = load_trial_config({"loss": "wgan_gp", "data": {"name": "ring8"}})
    assert toy.resolved()["wgan_gp"] == {"optimizer": "adam", "lr": 1e-4, "betas": [0.0, 0.9], "n_critic": 5,
                                         "gp_weight": 0.1, "critic_norm": "layer"}


def shipped_ids() -> dict[str, list[str]]:
    """Every shipped sweep's trial ids (and the paper's quick scale: the same files with plan.py's --set)."""
    out = {}
    for p in sorted((ROOT / "sweeps").rglob("*.yaml")):
        out[str(p.relative_to(ROOT))] = [t.id for t in load_spec(p)[1]]
    for name, sets in OVERRIDES["quick"].items():
        out[f"sweeps/paper/{name}.yaml --scale quick"] = [t.id for t in load_spec(ROOT / "sweeps/paper" /
                                                                                   f"{name}.yaml", sets)[1]]
    return out


# The only trials whose resolved config the data's defaults change: constraint_quick's WGAN-GP on ring8 left λ
# unset, so it now runs at the toy λ = 0.1 (was 10).
CHANGED = {"sweeps/constraint_quick.yaml": {"wgan_gp_mlp_ring8_s0_c038c710": "wgan_gp_mlp_ring8_s0_d8e6e123",
                                            "wgan_gp_mlp_ring8_s1_0ea7d6c7": "wgan_gp_mlp_ring8_s1_05bf3e8e"},
           # stacked MNIST's last evaluation counts modes over 26,000 samples (issue 30: eval.final_num_samples)
           "sweeps/modes.yaml": {f"{loss}_dcgan_stacked_mnist5k_s{s}_{a}": f"{loss}_dcgan_stacked_mnist5k_s{s}_{b}"
                                 for loss, s, a, b in [
                                     ("gan", 0, "840f9bf9", "fdf166ff"), ("gan", 1, "4e7dfb04", "61236cce"),
                                     ("gan", 2, "1d1d40f7", "823a0b3e"), ("gan", 3, "87680342", "0281b9e8"),
                                     ("gan", 4, "6aaf95e2", "56437672"), ("wgan", 0, "87b0b036", "7a2dfb23"),
                                     ("wgan", 1, "9c7e539b", "ee5b4a3b"), ("wgan", 2, "8096a2ff", "a3be75cd"),
                                     ("wgan", 3, "413f09d5", "f7f5a7ce"), ("wgan", 4, "29edc14f", "76e61402")]}}


def test_shipped_sweeps_keep_their_trial_ids_where_the_resolved_config_is_unchanged():
    before = json.loads((ROOT / "tests" / "fixtures" / "sweep_ids.json").read_text())["sweeps"]
    now = shipped_ids()
    assert now.keys() == before.keys()
    for sweep, ids in before.items():
        assert now[sweep] == [CHANGED.get(sweep, {}).get(i, i) for i in ids], sweep
    _, trials = load_spec(ROOT / "sweeps" / "constraint_quick.yaml")
    moved = [t.config for t in trials if t.id in CHANGED["sweeps/constraint_quick.yaml"].values()]
    assert [(c.loss, c.data.name, c.wgan_gp.gp_weight) for c in moved] == [("wgan_gp", "ring8", 0.1)] * 2


def test_the_report_says_which_defaults_came_from_the_data(tmp_path):
    """WGAN-GP at λ 0.1 on ring8 and 10 on mnist5k: both are the paper's for their data (no deviation noted),
    and the setup names the data's defaults. λ 10 on ring8 beside λ 0.1 there is an ablation (10 stays the
    paper's on mnist5k); λ 10 for every ring8 trial is noted against the toy value."""
    def add(root, seed, data, **raw):
        cfg = load_trial_config({"loss": "wgan_gp", "seed": seed, "train": {"gen_iters": 200}, "data": {"name": data},
                                 **raw}).resolved()
        toy = data == "ring8"
        write_trial(root, cfg, 0.1 if toy else 30.0, 0.9, 8 if toy else 10, 0.1, quality="eval/w1" if toy else
                    "eval/fid@domain")
    for seed in (0, 1):
        add(tmp_path / "a", seed, "ring8"), add(tmp_path / "a", seed, "mnist5k")
    run = load_run(tmp_path / "a")
    assert run.trials["in_verdict"].all() and paper_deviations(run) == []
    lines = defaults_lines(run)
    assert lines[0].startswith("WGAN-GP: defaults from Gulrajani et al. 2017") and "gan_toy.py" in lines[0]
    assert lines[1:] == ["Defaults from the data: backbone=mlp, model.nz=2, wgan_gp.gp_weight=0.1 (ring8 is points; "
                         "applied where a spec leaves them unset)"]

    add(tmp_path / "a", 2, "ring8", wgan_gp={"gp_weight": 10.0})
    run = load_run(tmp_path / "a")
    ablation = run.trials[~run.trials["in_verdict"]]
    assert list(ablation["cell"]) == ["ring8 · mlp · WGAN-GP (gp_weight=10.0)"] and paper_deviations(run) == []
    assert "wgan_gp.gp_weight=0.1 (2 of 3 trials)" in defaults_lines(run)[1]

    for seed in (0, 1):
        add(tmp_path / "b", seed, "ring8", wgan_gp={"gp_weight": 10.0})
    assert paper_deviations(load_run(tmp_path / "b")) == [
        "WGAN-GP cells in the verdicts use `wgan_gp.gp_weight` = 10.0; the published setting on points is 0.1."]
