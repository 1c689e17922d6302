"""The WGAN (Arjovsky et al. 2017, Algorithm 1): weight-clipped critic, RMSProp, n_critic schedule."""
from __future__ import annotations

import torch

from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LossTerms, wasserstein_loss, w_estimate


def critic_schedule(gen_iter: int, n_critic: int, warmup: bool, warmup_critic: int = 100,
                    warmup_iters: int = 25, warmup_every: int = 500) -> int:
    """Critic updates before generator update number `gen_iter` (0-based). The reference code
    trains the critic to near-optimality early on and periodically after: 100 updates while
    gen_iter < 25 or gen_iter % 500 == 0, else n_critic."""
    if warmup and (gen_iter < warmup_iters or gen_iter % warmup_every == 0):
        return warmup_critic
    return n_critic


class WGAN(AdversarialModule):
    estimate_key = "train/w_estimate"

    def __init__(self, generator, critic, cfg, real=None):
        super().__init__(generator, critic, cfg, real, wasserstein_loss)

    def critic_steps(self, gen_iter: int) -> int:
        w = self.cfg.wgan
        return critic_schedule(gen_iter, w.n_critic, w.warmup, w.warmup_critic, w.warmup_iters, w.warmup_every)

    def on_fit_start(self) -> None:
        self.clip()

    def after_critic_step(self) -> None:
        # Clipping after every update keeps the critic inside [-c, c] whenever it is used: the same
        # family as the reference code's clamp-before-each-critic-iteration.
        self.clip()

    @torch.no_grad()
    def clip(self) -> None:
        c = self.cfg.wgan.clip
        for p in self.critic.parameters():
            p.clamp_(-c, c)

    def estimate(self, terms: LossTerms) -> torch.Tensor:
        return w_estimate(terms.d_loss)
