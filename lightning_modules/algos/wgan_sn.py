"""WGAN-SN: the Wasserstein loss with spectral normalisation on every critic layer (Miyato et al. 2018,
"Spectral Normalization for GANs"), no clipping, no penalty. Defaults: their Table 1 setting A
(Adam alpha = 1e-4, beta1 = 0.5, beta2 = 0.9, n_dis = 5), and no batch norm in the critic (their critics
have none; spectral normalisation is the whole constraint)."""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from lightning_modules.algorithms import ALGORITHMS, Algorithm
from lightning_modules.constraints import Constraint
from lightning_modules.losses import w_estimate, wasserstein_loss
from lightning_modules.settings import Beta, CriticNorm, Float, Int, OptimSettings


class WganSnSettings(OptimSettings):
    optimizer: Literal["adam", "rmsprop"] = "adam"
    lr: Float = Field(1e-4, gt=0)
    betas: tuple[Beta, Beta] = (0.5, 0.9)
    n_critic: Int = Field(5, gt=0)
    critic_norm: CriticNorm = "none"


class SpectralNorm(Constraint):
    """Miyato et al. 2018: every Conv/Linear weight of the critic divided by its largest singular value,
    estimated by one power iteration per forward pass in training (torch's parametrisation)."""

    def prepare(self, critic: nn.Module) -> None:
        for m in list(critic.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                torch.nn.utils.parametrizations.spectral_norm(m)


ALGORITHMS.register("wgan_sn", Algorithm(
    name="wgan_sn", label="WGAN-SN", settings=WganSnSettings, loss=lambda s: wasserstein_loss,
    constraint=lambda s, g: SpectralNorm(), critic_steps=lambda k, s: s.n_critic,
    estimate_key="train/w_estimate", estimate=w_estimate,
    paper_keys=("optimizer", "lr", "betas", "n_critic", "critic_norm"), wasserstein=True,
    critic_norm=lambda s: s.critic_norm,
    reference="Miyato et al. 2018, arXiv 1802.05957, Table 1 setting A"))
