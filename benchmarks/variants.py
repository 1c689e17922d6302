"""Candidate changes to AdversarialModule.training_step, measured here before anyone edits the harness.

`lean_step(flags)` returns a training_step doing the same math as lightning_modules/adversarial.py with
some Lightning indirections replaced by their plain-PyTorch equivalents (fp32, one device: what every
study trial uses). Flags:
  raw_opt      self.optimizers(use_pl_optimizer=False): torch optimizers, no LightningOptimizer.step
               wrapper (strategy -> precision plugin -> closure -> on_before_optimizer_step hooks)
  backward     loss.backward() instead of self.manual_backward(loss) (strategy/precision hooks)
  toggle       requires_grad_ on the two networks' parameters instead of toggle/untoggle_optimizer
               (which walk every optimizer's param groups and build a dict each time)
  foreach_clip torch._foreach_clamp_min_/max_ over the critic's parameters, one call for all tensors
               instead of one clamp_ per tensor (bit-identical)
The losses it produces are checked equal to the unmodified module's by benchmarks.step_overhead.
"""
from __future__ import annotations

import math
import types

import torch

from lightning_modules.adversarial import Diverged

FLAGS = ("raw_opt", "backward", "toggle", "foreach_clip")


def lean_step(flags: frozenset):
    raw_opt, plain_backward, own_toggle, foreach_clip = (f in flags for f in FLAGS)

    def training_step(self, batch, batch_idx):
        d_opt, g_opt = self.optimizers(use_pl_optimizer=not raw_opt)
        backward = (lambda loss: loss.backward()) if plain_backward else self.manual_backward
        if not hasattr(self, "_bench_params"):
            self._bench_params = (list(self.critic.parameters()), list(self.generator.parameters()))
        d_params, g_params = self._bench_params
        if own_toggle:
            for p in g_params:
                p.requires_grad_(False)
        else:
            self.toggle_optimizer(d_opt)
        for _ in range(self.critic_steps(self.gen_iter)):
            real = self.real.next()
            with torch.no_grad():
                fake = self.generator(self.noise(len(real)))
            d_real, d_fake = self.critic(real), self.critic(fake)
            terms = self.loss_fn(d_real, d_fake)
            d_opt.zero_grad(set_to_none=True)
            backward(terms.d_loss)
            d_opt.step()
            self.after_critic_step()
            self.critic_iters += 1
        if own_toggle:
            for p in g_params:
                p.requires_grad_(True)
            for p in d_params:
                p.requires_grad_(False)
        else:
            self.untoggle_optimizer(d_opt)
            self.toggle_optimizer(g_opt)
        d_gen = self.critic(self.generator(self.noise(self.cfg.train.batch_size)))
        g_loss = self.loss_fn(d_real.detach(), d_gen).g_loss
        g_opt.zero_grad(set_to_none=True)
        backward(g_loss)
        g_opt.step()
        if own_toggle:
            for p in d_params:
                p.requires_grad_(True)
        else:
            self.untoggle_optimizer(g_opt)
        self.gen_iter += 1
        values = torch.stack([terms.d_loss, g_loss, d_real.mean(), d_fake.mean(), self.estimate(terms)])
        d_loss, g_l, d_r, d_f, est = values.detach().cpu().tolist()
        self.row = {"train/d_loss": d_loss, "train/g_loss": g_l, "train/d_real": d_r, "train/d_fake": d_f,
                    self.estimate_key: est, "train/critic_iters": self.critic_iters}
        if not all(map(math.isfinite, (d_loss, g_l, d_r, d_f, est))):
            raise Diverged(self.gen_iter, self.row)
        if self.gen_iter >= self.cfg.train.gen_iters:
            self.trainer.should_stop = True

    def clip(self):
        c = self.cfg.wgan.clip
        params = self._bench_params[0] if hasattr(self, "_bench_params") else list(self.critic.parameters())
        with torch.no_grad():
            torch._foreach_clamp_min_(params, -c)
            torch._foreach_clamp_max_(params, c)

    return training_step, (clip if foreach_clip else None)


def patched_factory(flags):
    """A module factory for benchmarks.common.time_lightning with the given flags applied."""
    from benchmarks.common import fresh_module
    flags = frozenset(flags)
    step, clip = lean_step(flags)

    def make(cfg, device="cpu"):
        m = fresh_module(cfg, device)
        m.training_step = types.MethodType(step, m)
        if clip is not None and cfg.loss == "wgan":
            m.clip = types.MethodType(clip, m)
        return m
    return make
