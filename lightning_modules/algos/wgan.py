"""The WGAN (Arjovsky et al. 2017, Algorithm 1): weight-clipped critic, RMSProp, the reference code's
n_critic schedule (100 critic updates while gen_iter < 25 or gen_iter % 500 == 0)."""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from lightning_modules.algorithms import ALGORITHMS, Algorithm
from lightning_modules.constraints import Constraint
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


class WeightClip(Constraint):
    """Clamp every critic parameter to [-c, c]. `order="before"` is the reference code's (clamp at the
    start of each critic iteration, so the generator meets the critic as its last update left it);
    "after" clamps after each update (the critic is inside the box whenever it is used)."""

    def __init__(self, c: float, order: str = "before"):
        self.c, self.order = c, order

    @torch.no_grad()
    def clip(self, critic: nn.Module) -> None:
        for p in critic.parameters():
            p.clamp_(-self.c, self.c)

    def prepare(self, critic: nn.Module) -> None:
        self.clip(critic)

    def before_update(self, critic: nn.Module) -> None:
        if self.order == "before":
            self.clip(critic)

    def after_update(self, critic: nn.Module) -> None:
        if self.order == "after":
            self.clip(critic)

    @torch.no_grad()
    def metrics(self, critic: nn.Module) -> dict[str, torch.Tensor]:
        """train/clip_fraction: the share of critic weights at (with order "before": at or beyond) the bound (Gulrajani et al. Fig. 1: clipping
        pushes weights to +-c). Within 1% of c counts: an RMSProp step after a clamp rarely lands exactly on it."""
        params = list(critic.parameters())
        at = torch.stack([(p.abs() >= 0.99 * self.c).sum() for p in params]).sum()  # on the device: no host sync
        return {"train/clip_fraction": at.double() / max(sum(p.numel() for p in params), 1)}


ALGORITHMS.register("wgan", Algorithm(
    name="wgan", label="WGAN", settings=WganSettings, loss=lambda s: wasserstein_loss,
    constraint=lambda s, g: WeightClip(s.clip, s.clip_order),
    critic_steps=lambda k, s: critic_schedule(k, s.n_critic, s.warmup, s.warmup_critic, s.warmup_iters,
                                              s.warmup_every),
    estimate_key="train/w_estimate", estimate=w_estimate,
    paper_keys=("optimizer", "lr", "clip", "n_critic"), wasserstein=True,
    reference="Arjovsky, Chintala & Bottou 2017, Algorithm 1 and the reference code (martinarjovsky/WassersteinGAN)"))
