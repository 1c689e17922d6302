"""The WGAN (Arjovsky et al. 2017, Algorithm 1): weight-clipped critic, RMSProp, the reference code's
n_critic schedule (100 critic updates while gen_iter < 25 or gen_iter % 500 == 0)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from lightning_modules.algorithms import ALGORITHMS, Algorithm
from lightning_modules.constraints import WeightClip
from lightning_modules.losses import w_estimate, wasserstein_loss
from lightning_modules.settings import Bool, Float, Int, OptimSettings


class WganSettings(OptimSettings):
    optimizer: Literal["adam", "rmsprop"] = "rmsprop"
    lr: Float = Field(5e-5, gt=0)
    clip: Float = Field(0.01, gt=0)
    n_critic: Int = Field(5, gt=0)
    warmup: Bool = True
    warmup_critic: Int = Field(100, gt=0)
    warmup_iters: Int = Field(25, ge=0)
    warmup_every: Int = Field(500, gt=0)
    # the reference code clamps before each critic update; "after" is what this harness did until
    # 2026-11-30 (trial ids of those runs do not include this key: see TrialConfig.trial_id)
    clip_order: Literal["before", "after"] = "before"


def critic_schedule(gen_iter: int, n_critic: int, warmup: bool, warmup_critic: int = 100,
                    warmup_iters: int = 25, warmup_every: int = 500) -> int:
    """Critic updates before generator update number `gen_iter` (0-based). The reference code
    trains the critic to near-optimality early on and periodically after: 100 updates while
    gen_iter < 25 or gen_iter % 500 == 0, else n_critic."""
    if warmup and (gen_iter < warmup_iters or gen_iter % warmup_every == 0):
        return warmup_critic
    return n_critic


ALGORITHMS.register("wgan", Algorithm(
    name="wgan", label="WGAN", settings=WganSettings, loss=lambda s: wasserstein_loss,
    constraint=lambda s, g: WeightClip(s.clip, s.clip_order),
    critic_steps=lambda k, s: critic_schedule(k, s.n_critic, s.warmup, s.warmup_critic, s.warmup_iters,
                                              s.warmup_every),
    estimate_key="train/w_estimate", estimate_label="W estimate (-critic loss)", estimate=w_estimate,
    paper_keys=("optimizer", "lr", "clip", "n_critic"), wasserstein=True, constraint_label="weight clipping",
    reference="Arjovsky, Chintala & Bottou 2017, Algorithm 1 and the reference code (martinarjovsky/WassersteinGAN)"))
