"""The vanilla GAN (Goodfellow et al. 2014): BCE on logits, -log D (default) or minimax G loss."""
from __future__ import annotations

import torch

from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LOSSES, LossTerms, js_estimate


class GAN(AdversarialModule):
    estimate_key = "train/js_estimate"

    def __init__(self, generator, critic, cfg, real=None):
        super().__init__(generator, critic, cfg, real, LOSSES.get(cfg.gan.generator_loss))

    def critic_steps(self, gen_iter: int) -> int:
        return self.cfg.gan.d_steps

    def estimate(self, terms: LossTerms) -> torch.Tensor:
        return js_estimate(terms.d_loss)
