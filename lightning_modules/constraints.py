"""How an algorithm keeps its critic Lipschitz (compare_gan's penalty_lib, one interface for all): each
algorithm's file defines its own (weight clipping in algos/wgan.py, the gradient penalty in algos/wgan_gp.py,
spectral normalisation in algos/wgan_sn.py); the GAN uses this base, which does nothing.

Hooks, called by the one training step in adversarial.py:
- `prepare(critic)` once, when the module is built (spectral normalisation reparametrises layers);
- `before_update(critic)` / `after_update(critic)` around each critic optimizer step (clipping);
- `draw(real)` the random inputs of one update's penalty, drawn before the update (so an update is a function
  of tensors that a CUDA graph can replay: lightning_modules/updates.py);
- `penalty(score, real, fake, draws)` a term added to the critic's loss (the gradient penalty);
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

    def draw(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return ()

    def penalty(self, score: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                draws: Optional[tuple] = None) -> Optional[dict[str, torch.Tensor]]:
        return None

    def metrics(self, critic: nn.Module) -> dict[str, torch.Tensor]:
        return {}
