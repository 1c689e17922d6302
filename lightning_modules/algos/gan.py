"""The vanilla GAN (Goodfellow et al. 2014): BCE on logits, -log D (default) or minimax G loss.
Defaults: DCGAN's Adam (lr 2e-4, beta1 0.5), the paper's baseline with the -log D trick."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from lightning_modules.algorithms import ALGORITHMS, Algorithm
from lightning_modules.constraints import Constraint
from lightning_modules.losses import LOSSES, js_estimate
from lightning_modules.settings import Float, Int, OptimSettings


class GanSettings(OptimSettings):
    optimizer: Literal["adam", "rmsprop"] = "adam"
    lr: Float = Field(2e-4, gt=0)
    generator_loss: Literal["non_saturating", "minimax"] = "non_saturating"   # paper's baseline: -log D
    d_steps: Int = Field(1, gt=0)


ALGORITHMS.register("gan", Algorithm(
    name="gan", label="GAN", settings=GanSettings, loss=lambda s: LOSSES.get(s.generator_loss),
    constraint=lambda s, g: Constraint(), critic_steps=lambda k, s: s.d_steps,
    estimate_key="train/js_estimate", estimate=js_estimate,
    paper_keys=("optimizer", "lr", "betas", "generator_loss"), wasserstein=False,
    reference="Radford et al. 2016 (DCGAN); Arjovsky et al. 2017 use it with -log D as the baseline"))
