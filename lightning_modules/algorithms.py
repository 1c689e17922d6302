"""The algorithm registry: everything the harness knows about a loss lives in its registration.

An `Algorithm` bundles its settings class (whose defaults are the paper's settings, and which becomes
the config section of the same name), its loss, its critic constraint and schedule, the divergence
estimate it reads off the critic loss, and how it is labelled. Each algorithm is one file in
`lightning_modules/algos/`; adding one is that file, one import in algos/__init__.py, and its tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from lightning_modules.constraints import Constraint
from lightning_modules.losses import LossFn
from lightning_modules.registry import Registry
from lightning_modules.settings import OptimSettings


@dataclass(frozen=True)
class Algorithm:
    name: str                                   # registry key, config section, trial-id prefix
    label: str                                  # as printed in reports: "WGAN-GP"
    settings: type[OptimSettings]               # config section; defaults = the paper's settings
    loss: Callable[[OptimSettings], LossFn]     # one signature for all losses (losses.py)
    constraint: Callable[..., Constraint]       # (settings, torch.Generator) -> the critic's constraint
    critic_steps: Callable[[int, OptimSettings], int]  # critic updates before generator update k (0-based)
    estimate_key: str                           # the divergence estimate logged every iteration
    estimate: Callable[[torch.Tensor], torch.Tensor]   # from d_loss
    paper_keys: tuple[str, ...]                 # settings whose non-default values make a cell an ablation
    wasserstein: bool                           # a Wasserstein variant: judged against the GAN by every claim
    reference: str                              # where the defaults come from
    critic_norm: Callable[[OptimSettings], str] = field(default=lambda s: "batch")
    # settings whose published value depends on the kind of data ("points" / "image", a data set's registration):
    # {kind: {setting: value}}, applied where a trial leaves the setting unset (study.config.data_defaults); the
    # settings class holds the value for every other kind. by_data_reference says where these values come from.
    by_data: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_data_reference: str = ""

    def critic_updates(self, s: OptimSettings) -> float:
        """Critic updates per generator iteration in steady state (relative cost, sweep ordering)."""
        return float(self.critic_steps(10**9 + 1, s))


ALGORITHMS: Registry[Algorithm] = Registry("loss")
