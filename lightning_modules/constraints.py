"""How an algorithm keeps its critic Lipschitz (compare_gan's penalty_lib, one interface for all):
weight clipping (WGAN), a gradient penalty (WGAN-GP), spectral normalisation (WGAN-SN), or nothing (GAN).

Hooks, called by the one training step in adversarial.py:
- `prepare(critic)` once, when the module is built (spectral normalisation reparametrises layers);
- `before_update(critic)` / `after_update(critic)` around each critic optimizer step (clipping);
- `penalty(score, real, fake)` a term added to the critic's loss (the gradient penalty);
- `metrics(critic)` extra train/* values, computed with the row of each generator iteration.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn


class Constraint:
    def prepare(self, critic: nn.Module) -> None:
        pass

    def before_update(self, critic: nn.Module) -> None:
        pass

    def after_update(self, critic: nn.Module) -> None:
        pass

    def penalty(self, score: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                fake: torch.Tensor) -> Optional[dict[str, torch.Tensor]]:
        return None

    def metrics(self, critic: nn.Module) -> dict[str, torch.Tensor]:
        return {}


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
        at = sum(int((p.abs() >= 0.99 * self.c).sum()) for p in critic.parameters())
        total = sum(p.numel() for p in critic.parameters())
        return {"train/clip_fraction": torch.tensor(at / max(total, 1))}


class GradientPenalty(Constraint):
    """Gulrajani et al. 2017, Algorithm 1: weight * (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = eps real +
    (1 - eps) fake, eps ~ U[0, 1] per sample. Needs a per-sample critic: no batch norm (layer norm instead)."""

    def __init__(self, weight: float, generator: Optional[torch.Generator] = None):
        self.weight, self.generator = weight, generator

    def penalty(self, score, real, fake):
        shape = (len(real),) + (1,) * (real.dim() - 1)
        eps = torch.rand(shape, generator=self.generator, device=real.device, dtype=real.dtype)
        x = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(score(x).sum(), x, create_graph=True)
        norm = grad.flatten(1).norm(dim=1)
        gp = ((norm - 1) ** 2).mean()
        return {"loss": self.weight * gp, "train/gp": gp, "train/grad_norm": norm.mean()}


class SpectralNorm(Constraint):
    """Miyato et al. 2018: every Conv/Linear weight of the critic divided by its largest singular value,
    estimated by one power iteration per forward pass in training (torch's parametrisation)."""

    def prepare(self, critic: nn.Module) -> None:
        for m in list(critic.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                torch.nn.utils.parametrizations.spectral_norm(m)
