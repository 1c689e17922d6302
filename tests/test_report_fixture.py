"""A hand-made sweep directory with known numbers (docs/run-layout.md), for the report tests."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

STEPS = 200
EVAL_EVERY = 20  # 5 evaluations in the last half: the least a trend interval is fitted on (evidence.MIN_LATE)

# (loss, backbone, data) -> final FID per seed. dcgan: a tie; mlp: WGAN clearly better.
# Anchors: every trial's untrained generator scores CEILING, real data FLOOR (normalised q = (fid - 1) / 99).
# Five seeds each; make_run uses the first three unless asked for more (a "works" call needs five).
FID = {("gan", "dcgan"): [20.0, 22.0, 24.0, 21.0, 23.0], ("wgan", "dcgan"): [21.0, 23.0, 25.0, 22.0, 24.0],
       ("gan", "mlp"): [80.0, 90.0, 100.0, 85.0, 95.0], ("wgan", "mlp"): [30.0, 32.0, 34.0, 31.0, 33.0]}
CEILING, FLOOR, NOISE = 100.0, 1.0, 0.5
# per-trial Spearman rho of estimate vs FID: WGAN tracks, GAN does not
RHO = {"gan": [0.0, 0.1, -0.1, 0.05, -0.05], "wgan": [0.9, 0.8, 1.0, 0.85, 0.95]}
# modes covered of 10 digit classes, and reverse KL: the GAN MLP collapses
MODES = {("gan", "dcgan"): [10, 10, 9, 10, 10], ("wgan", "dcgan"): [10, 10, 10, 10, 10],
         ("gan", "mlp"): [4, 3, 5, 4, 3], ("wgan", "mlp"): [10, 9, 10, 10, 9]}
KL = {("gan", "dcgan"): [0.05, 0.06, 0.1, 0.05, 0.07], ("wgan", "dcgan"): [0.04, 0.05, 0.06, 0.05, 0.04],
      ("gan", "mlp"): [1.2, 1.5, 1.0, 1.3, 1.4], ("wgan", "mlp"): [0.1, 0.2, 0.15, 0.1, 0.2]}


def config(loss: str, backbone: str, seed: int, data: str = "mnist5k", **algo) -> dict:
    section = {"gan": {"optimizer": "adam", "lr": 2e-4, "betas": [0.5, 0.999], "generator_loss": "non_saturating",
                       "d_steps": 1},
               "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "betas": [0.5, 0.999], "clip": 0.01, "n_critic": 5,
                        "warmup": True, "warmup_critic": 100, "warmup_iters": 25, "warmup_every": 500}}[loss]
    section.update(algo)
    return {"loss": loss, "backbone": {"generator": backbone, "critic": backbone}, "seed": seed,
            "data": {"name": data, "image_size": 32},
            "train": {"gen_iters": STEPS, "batch_size": 64}, "eval": {"every": EVAL_EVERY, "num_samples": 500},
            loss: section}


def trial_id(cfg: dict) -> str:
    """The id a sweep gives this config (readers set aside a trial whose config does not hash to its id)."""
    from study.config import load_trial_config, with_legacy
    return load_trial_config(with_legacy(cfg)).trial_id()


def write_trial(root: Path, cfg: dict, fid: float, rho: float, modes: float, kl: float,
                status: str = "completed", extra_final: dict | None = None, quality: str = "eval/fid@domain",
                factors: tuple = (1.5, 1.01, 1.0, 1.0), ceiling: float = CEILING, floor: float = FLOOR,
                noise: float = NOISE, knn_modes: float | None = None, hq: float = 0.8,
                every: int = EVAL_EVERY) -> Path:
    """One trial directory; `fid` is the final value of `quality`, reached through `factors` x fid at the
    evaluation points (default: flat over the last half of training, converged by the report's rule), with
    the untrained generator's `ceiling` at iteration 0, the real `floor` and repeat `noise` in result.json.
    Mode counts: `modes` by the domain CNN (argmax and confident), `knn_modes` (default: the same) by kNN."""
    tid = trial_id(cfg)
    d = root / tid
    (d / "samples").mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    steps = np.arange(0, STEPS + 1)
    est_key = "train/w_estimate" if cfg["loss"] == "wgan" else "train/js_estimate"
    # WGAN: the estimate falls over training and ends higher for worse trials (across-trial rho = 1)
    est = (fid / 1000 * np.exp(-steps / 80) + 0.001) if cfg["loss"] == "wgan" else \
        np.full(len(steps), math.log(2) - 0.01 - 0.001 * cfg["seed"])
    m = pd.DataFrame({"step": steps, "train/d_loss": -est, est_key: est})
    m.loc[m["step"] == 0, ["train/d_loss", est_key]] = np.nan  # the step-0 row has evaluation only
    eval_steps = list(range(every, STEPS + 1, every))
    evals = np.interp(np.linspace(0, 1, len(eval_steps)), np.linspace(0, 1, len(factors)), factors) * fid
    knn_modes = modes if knn_modes is None else knn_modes
    cols = [quality, "eval/modes", "eval/mode_kl", "eval/modes_hq", "eval/modes_knn", "eval/hq", "eval/hq_knn"]
    for col in cols:
        m[col] = np.nan
    m.loc[m["step"] == 0, quality] = ceiling
    for i, s in enumerate(eval_steps):
        m.loc[m["step"] == s, cols] = [evals[i], modes, kl, modes, knn_modes, hq, hq]
        if s % EVAL_EVERY == 0:
            px = np.random.default_rng(i).integers(0, 255, (66, 66), dtype=np.uint8) // (4 - i % 4)
            Image.fromarray(px, "L").save(d / "samples" / f"grid_{s:06d}.png")
    m.to_csv(d / "metrics.csv", index=False)
    final = {quality: fid, "eval/modes": modes, "eval/mode_kl": kl, "eval/modes_hq": modes,
             "eval/modes_knn": knn_modes, "eval/hq": hq, "eval/hq_knn": hq, est_key: float(est[-1])}
    final.update(extra_final or {})
    result = {"trial_id": tid, "status": status, "error": None, "diverged_at": None, "gen_iters": STEPS,
              "critic_iters": STEPS * (5 if cfg["loss"] == "wgan" else 1),
              "wall_s": 20.0 if cfg["loss"] == "wgan" else 10.0,
              "eval_s": 2.0, "device": "cpu", "versions": {"torch": "2.3.0", "pytorch_lightning": "2.2.0"},
              "final": final,
              "correlation": {"estimate": est_key, "quality": quality, "n": len(eval_steps), "spearman": rho,
                              "pearson": rho},
              "eval_info": {"num_samples": 500, "domain_classifier_acc": 0.97, "knn_acc": 0.93, "notes": [],
                            "real_floor": {quality: floor}},
              "noise": {"abs_diff": {quality: noise}}, "config": cfg}
    (d / "result.json").write_text(json.dumps(result))
    return d


def make_run(root: Path, name: str = "tiny", every: int = EVAL_EVERY, seeds: int = 3) -> Path:
    """2 losses x 2 backbones x `seeds` completed seeds on mnist5k (the numbers above), plus what a partial
    sweep leaves: a diverged, a failed, an incomplete (no result.json) and a missing trial (listed in
    results.csv only), and an ablation cell (WGAN with Adam, worse than the GAN) kept out of verdicts."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.yaml").write_text(yaml.safe_dump({"name": name, "grid": {
        "loss": ["gan", "wgan"], "backbone": ["dcgan", "mlp"], "seed": [0, 1, 2, 3]}}))
    rows = []

    def add(cfg, fid, rho, modes, kl, status="completed"):
        write_trial(root, cfg, fid, rho, modes, kl, status, every=every)
        rows.append({"trial_id": trial_id(cfg), "loss": cfg["loss"], "backbone": cfg["backbone"]["generator"],
                     "seed": cfg["seed"], "wgan.optimizer": cfg.get("wgan", {}).get("optimizer"), "status": status})

    for (loss, bb), fids in FID.items():
        for seed, fid in enumerate(fids[:seeds]):
            add(config(loss, bb, seed), fid, RHO[loss][seed], MODES[(loss, bb)][seed], KL[(loss, bb)][seed])
    extra = seeds  # the seed of the partial sweep's extra trials
    add(config("gan", "mlp", extra), 300.0, 0.0, 1, 2.0, status="diverged")
    add(config("gan", "dcgan", extra), math.nan, math.nan, math.nan, math.nan, status="failed")
    for seed in (0, 1):
        add(config("wgan", "mlp", seed, optimizer="adam"), 150.0 + seed, 0.9, 10, 0.1)
    # incomplete: killed mid-run, so config.yaml and metrics.csv but no result.json
    inc = write_trial(root, config("wgan", "dcgan", extra), 30.0, 0.9, 10, 0.1, every=every)
    (inc / "result.json").unlink()
    rows.append({"trial_id": trial_id(config("wgan", "mlp", extra)), "loss": "wgan", "backbone": "mlp", "seed": extra,
                 "wgan.optimizer": "rmsprop", "status": "completed"})  # a stale row: its directory is gone
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root
