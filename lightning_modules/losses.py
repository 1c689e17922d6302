"""Adversarial losses with one signature (compare_gan's loss_lib): critic outputs in, four terms out.

`d_real`, `d_fake` are raw critic outputs (logits for the GAN, unbounded scores for the WGAN),
shape (N,). Every loss returns LossTerms(d_loss, d_loss_real, d_loss_fake, g_loss), means over
the batch; the critic minimises d_loss, the generator minimises g_loss.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from lightning_modules.registry import Registry

LOG2 = math.log(2.0)


class LossTerms(NamedTuple):
    d_loss: torch.Tensor
    d_loss_real: torch.Tensor
    d_loss_fake: torch.Tensor
    g_loss: torch.Tensor


LossFn = Callable[[torch.Tensor, torch.Tensor], LossTerms]
LOSSES: Registry[LossFn] = Registry("loss")


def _bce(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # with logits, never sigmoid + BCE: log(sigmoid(x)) underflows exactly where D saturates
    real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real, fake


@LOSSES.decorator("non_saturating")
def non_saturating_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> LossTerms:
    """GAN with the -log D generator loss (the paper's baseline)."""
    real, fake = _bce(d_real, d_fake)
    g_loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return LossTerms(real + fake, real, fake, g_loss)


@LOSSES.decorator("minimax")
def minimax_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> LossTerms:
    """GAN with the original minimax generator loss: minimise E log(1 - D(G(z)))."""
    real, fake = _bce(d_real, d_fake)
    return LossTerms(real + fake, real, fake, -fake)


@LOSSES.decorator("wasserstein")
def wasserstein_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> LossTerms:
    """WGAN: the critic maximises E f(real) - E f(fake); -d_loss is the W estimate."""
    real, fake = -d_real.mean(), d_fake.mean()
    return LossTerms(real + fake, real, fake, -fake)


def js_estimate(d_loss: torch.Tensor) -> torch.Tensor:
    """The paper's Fig. 4 reading of the discriminator loss: for the optimal D,
    d_loss = 2 log 2 - 2 JS, so JS = log 2 - d_loss / 2 (at most log 2)."""
    return LOG2 - 0.5 * d_loss


def w_estimate(d_loss: torch.Tensor) -> torch.Tensor:
    """Algorithm 1's estimate of W(P_r, P_g) (up to the clipping's Lipschitz constant)."""
    return -d_loss


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's auxiliary term: cross-entropy of the class head (logits, never softmax + NLL by hand).
    Both players minimise it on generated samples; the critic also on real ones."""
    return F.cross_entropy(logits, labels)


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == labels).float().mean()
