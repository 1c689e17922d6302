"""Candidate changes to AdversarialModule's eager step, measured here before anyone edits the harness.

`patched_factory(flags)` builds the trial's module (benchmarks.common.fresh_module) with some of Lightning's
indirections replaced by their plain-PyTorch equivalents (fp32, one device: what every study trial uses).
The math and the order of random draws are the module's own, so losses must stay bit-identical (checked by
benchmarks.step_overhead). Flags:
  raw_opt      torch optimizers instead of LightningOptimizer.step (strategy -> precision plugin -> closure ->
               on_before_optimizer_step hooks); the compiled modes of train.compile already do this
  backward     loss.backward() instead of self.manual_backward(loss) (strategy/precision hooks); likewise
  toggle       requires_grad_ on the two networks' parameters instead of toggle/untoggle_optimizer
               (which walk every optimizer's param groups and build a dict each time)
  foreach_clip torch._foreach_clamp_min_/max_ over the critic's parameters, one call for all tensors
               instead of one clamp_ per tensor (bit-identical)
"""
from __future__ import annotations

import types

import torch

from lightning_modules.algos.wgan import WeightClip

FLAGS = ("raw_opt", "backward", "toggle", "foreach_clip")


class ForeachClip(WeightClip):
    @torch.no_grad()
    def clip(self, critic) -> None:
        params = list(critic.parameters())
        torch._foreach_clamp_min_(params, -self.c)
        torch._foreach_clamp_max_(params, self.c)


def patched_factory(flags):
    """A module factory for benchmarks.common.time_lightning with the given flags applied."""
    from benchmarks.common import fresh_module
    flags = frozenset(flags)
    unknown = flags - set(FLAGS)
    assert not unknown, f"unknown flags {sorted(unknown)} (known: {', '.join(FLAGS)})"

    def make(cfg, device="cpu"):
        m = fresh_module(cfg, device)
        prepare = m._prepare_updates

        def patched_prepare(self):
            prepare()
            if "raw_opt" in flags:
                self._d_opt, self._g_opt = self.optimizers(use_pl_optimizer=False)
            if "backward" in flags:
                self._backward = torch.Tensor.backward
        m._prepare_updates = types.MethodType(patched_prepare, m)
        if "toggle" in flags:
            d_params, g_params = list(m.critic.parameters()), list(m.generator.parameters())

            def toggle(self, opt):  # the optimizer's own network trains, the other is frozen
                critic_turn = opt is self._d_opt
                for p in g_params if critic_turn else d_params:
                    p.requires_grad_(False)

            def untoggle(self, opt):
                for p in d_params + g_params:
                    p.requires_grad_(True)
            m.toggle_optimizer = types.MethodType(toggle, m)
            m.untoggle_optimizer = types.MethodType(untoggle, m)
        if "foreach_clip" in flags and isinstance(m.constraint, WeightClip):
            m.constraint.__class__ = ForeachClip
        return m
    return make
