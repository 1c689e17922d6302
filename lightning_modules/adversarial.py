"""One adversarial training step for every algorithm (GAN, WGAN and its variants).

A Lightning training step is one *generator iteration*: `critic_steps(gen_iter)` critic updates on
fresh real batches, then one generator update. Algorithms differ only where their registration says
(lightning_modules/algorithms.py): the loss, the critic schedule, the constraint, the optimizer.
Manual optimization throughout (Lightning's GAN template). Each update is a function of tensors (every
random draw made before it), so `train.compile` can run it compiled or graph-captured
(lightning_modules/updates.py). The study's step axis is `gen_iter`, kept here and logged as `step`
(Lightning's `global_step` counts optimizer steps only when they go through its wrapper, i.e. in eager mode).

`cfg.conditional` (AC-GAN / AC-WGAN) changes no algorithm: the generator also takes labels, the
critic also returns class logits, and class_weight x cross-entropy joins both players' losses.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules import updates
from lightning_modules.algorithms import Algorithm
from lightning_modules.losses import class_accuracy, class_loss

NOISE_SEED_OFFSET = 1      # training noise stream: seed + 1 (the data stream uses the seed itself)
EVAL_NOISE_SEED_OFFSET = 2  # evaluation samples: a fresh stream, so eval frequency never alters training
REPEAT_NOISE_SEED_OFFSET = 3  # a second, independent evaluation set: measures the metrics' sampling noise


class Diverged(RuntimeError):
    """A loss became NaN or inf: a result of the study (status `diverged`), not a crash."""

    def __init__(self, gen_iter: int, values: dict[str, float]):
        self.gen_iter = gen_iter
        bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
        super().__init__(f"non-finite loss at generator iteration {gen_iter}: {bad}")


def make_optimizer(cfg: Any, params) -> torch.optim.Optimizer:
    """From an algorithm's settings (optimizer, lr, betas)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.RMSprop(params, lr=cfg.lr)


class AdversarialModule(pl.LightningModule):
    """One adversarial training step for every registered algorithm (lightning_modules.algorithms):
    the algorithm's spec supplies its loss, critic schedule, constraint and estimate.

    `cfg` is the trial's configuration, read by attribute only (model code imports nothing of the
    harness): seed, model.nz, train.batch_size/gen_iters, eval.grid_size, conditional, class_weight, and
    the algorithm's own section (`cfg.<spec.name>`)."""

    def __init__(self, generator: nn.Module, critic: nn.Module, cfg: Any, real: Any, spec: Algorithm):
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.critic, self.cfg, self.real, self.spec = generator, critic, cfg, real, spec
        self.settings = getattr(cfg, spec.name)
        self.loss_fn = spec.loss(self.settings)
        self.estimate_key = spec.estimate_key
        self.nz = cfg.model.nz
        self.conditional, self.class_weight = cfg.conditional, cfg.class_weight
        self.num_classes = generator.embed.num_embeddings if cfg.conditional else 0
        g = torch.Generator().manual_seed(cfg.seed)
        # fixed noise for sample grids: a buffer, so it follows the module's device and checkpoints
        self.register_buffer("fixed_noise", torch.randn(cfg.eval.grid_size, self.nz, generator=g))
        device = real.device if real is not None else torch.device("cpu")
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + NOISE_SEED_OFFSET)
        # the constraint draws (penalty interpolates) from the training noise stream: checkpointed, resumable
        self.constraint = spec.constraint(self.settings, self.noise_gen)
        self.constraint.prepare(self.critic)
        self.gen_iter = 0
        self.critic_iters = 0
        self.row: dict[str, float] = {}  # this iteration's metrics; callbacks may add eval/* before it is logged
        self.history: list[dict] = []    # every row logged by this process (a resumed trial adds the kept ones)
        self.restoring = False
        self.compile_mode: Optional[str] = None  # train.compile as resolved on this device (updates.resolve)
        self._runners: Optional[tuple] = None     # built at the first step (_prepare_updates)

    def critic_steps(self, gen_iter: int) -> int:
        return self.spec.critic_steps(gen_iter, self.settings)

    # -- the shared algorithm -----------------------------------------------------
    def configure_optimizers(self):
        return (make_optimizer(self.settings, self.critic.parameters()),
                make_optimizer(self.settings, self.generator.parameters()))

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.nz, generator=self.noise_gen, device=self.noise_gen.device)

    def labels(self, n: int) -> Optional[torch.Tensor]:
        """Classes asked of the generator (uniform), or None for an unconditional model."""
        if not self.conditional:
            return None
        return torch.randint(self.num_classes, (n,), generator=self.noise_gen, device=self.noise_gen.device)

    @staticmethod
    def generate(g_net: Any, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        return g_net(z) if y is None else g_net(z, y)

    def score(self, d_net: Any, x: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(critic scores, class logits or None) by `d_net` (the critic, or its compiled forward)."""
        return d_net(x) if self.conditional else (d_net(x), None)

    # -- the two updates, as functions of tensors (lightning_modules/updates.py runs them) ---------
    def critic_update(self, real: torch.Tensor, y_real: Optional[torch.Tensor], y_fake: Optional[torch.Tensor],
                      z: torch.Tensor, draws: tuple) -> dict[str, torch.Tensor]:
        """One critic update on a real batch and noise drawn beforehand; returns its row values."""
        g_net, d_net = self._nets
        self.constraint.before_update(self.critic)  # the reference code clamps here, before the critic's loss
        with torch.no_grad():
            fake = self.generate(g_net, z, y_fake)
        # real and fake in separate passes, as the reference code: BN statistics per batch
        (d_real, c_real), (d_fake, c_fake) = self.score(d_net, real), self.score(d_net, fake)
        terms = self.loss_fn(d_real, d_fake)
        d_total = terms.d_loss
        # the penalty's double backward on the eager critic (a compiled forward has no double backward)
        extra = self.constraint.penalty(lambda x: self.score(self.critic, x)[0], real, fake, draws)
        out = {"train/d_loss": terms.d_loss, "train/d_real": d_real.mean(), "train/d_fake": d_fake.mean()}
        if extra is not None:  # WGAN-GP: the penalty joins the critic's loss, not its estimate
            d_total = d_total + extra.pop("loss")
            out.update(extra)   # train/gp, train/grad_norm
        if self.conditional:
            d_class = class_loss(c_real, y_real) + class_loss(c_fake, y_fake)
            d_total = d_total + self.class_weight * d_class
            out.update({"train/d_class_loss": d_class, "train/class_acc_real": class_accuracy(c_real, y_real),
                        "train/class_acc_fake": class_accuracy(c_fake, y_fake)})
        self._d_opt.zero_grad(set_to_none=True)
        self._backward(d_total)
        self._d_opt.step()
        self.constraint.after_update(self.critic)
        return {k: v.detach() for k, v in out.items()}

    def generator_update(self, y: Optional[torch.Tensor], z: torch.Tensor) -> dict[str, torch.Tensor]:
        g_net, d_net = self._nets
        d_gen, c_gen = self.score(d_net, self.generate(g_net, z, y))
        g_loss = self.loss_fn(d_gen.detach(), d_gen).g_loss  # g_loss depends on the fake scores only
        out, g_total = {"train/g_loss": g_loss}, g_loss
        if self.conditional:
            out["train/g_class_loss"] = g_class = class_loss(c_gen, y)
            g_total = g_total + self.class_weight * g_class
        self._g_opt.zero_grad(set_to_none=True)
        self._backward(g_total)
        self._g_opt.step()
        return {k: v.detach() for k, v in out.items()}

    def _prepare_updates(self) -> None:
        """The callers of both updates in the resolved `train.compile` mode (after any checkpoint restore: a
        capture must see the optimizer state it will update)."""
        self.compile_mode = updates.resolve(self.cfg.train.compile, self.device.type)
        d_opt, g_opt = self.optimizers(use_pl_optimizer=self.compile_mode == "eager")
        self._d_opt, self._g_opt = d_opt, g_opt
        self._backward = self.manual_backward if self.compile_mode == "eager" else torch.Tensor.backward
        for opt in (d_opt, g_opt):  # a checkpoint brings back the flag it was written with: set it for this run
            updates.set_capturable(opt, self.compile_mode == "cuda_graph")
        self._nets = ((updates.compiled(self.generator), updates.compiled(self.critic))
                      if self.compile_mode == "inductor" else (self.generator, self.critic))
        self._runners = (updates.runner(self.compile_mode, self.critic_update),
                         updates.runner(self.compile_mode, self.generator_update))

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self._runners is None:
            self._prepare_updates()
        critic, generator = self._runners
        self.toggle_optimizer(self._d_opt)
        for _ in range(self.critic_steps(self.gen_iter)):
            # every draw before the update, in the order the step has always drawn them (real, labels, noise, penalty)
            real, y_real = self.real.next_labelled() if self.conditional else (self.real.next(), None)
            y_fake = self.labels(len(real))
            z = self.noise(len(real))
            d_out = critic(real, y_real, y_fake, z, self.constraint.draw(real))
            self.critic_iters += 1
        self.untoggle_optimizer(self._d_opt)

        self.toggle_optimizer(self._g_opt)
        y_gen = self.labels(self.cfg.train.batch_size)
        g_out = generator(y_gen, self.noise(self.cfg.train.batch_size))
        self.untoggle_optimizer(self._g_opt)
        self.gen_iter += 1
        self.restoring = False

        # one device->host transfer per generator iteration (the last critic update's values and the generator's)
        values = {**d_out, **g_out, self.estimate_key: self.spec.estimate(d_out["train/d_loss"]),
                  **self.constraint.metrics(self.critic)}
        ref = d_out["train/d_loss"]
        stacked = torch.stack([v.to(ref.device, ref.dtype) for v in values.values()])
        self.row = dict(zip(values, stacked.cpu().tolist()))
        self.row["train/critic_iters"] = self.critic_iters
        if not all(map(math.isfinite, self.row.values())):
            raise Diverged(self.gen_iter, self.row)
        if self.gen_iter >= self.cfg.train.gen_iters:
            self.trainer.should_stop = True

    def on_train_batch_end(self, *args: Any) -> None:
        self.flush_row()

    def flush_row(self) -> None:
        """Log this iteration's row (train/* and any eval/* added by callbacks) at step = gen_iter."""
        if self.row:
            self.history.append({"step": self.gen_iter, **self.row})  # the trial's final values read these
            if self.logger is not None:
                self.logger.log_metrics(self.row, step=self.gen_iter)
        self.row = {}

    def eval_labels(self, n: int) -> Optional[torch.Tensor]:
        """Classes of the evaluation samples: balanced (0, 1, ..., K-1, 0, ...), so per-class metrics
        see n / K samples of every class; None for an unconditional model."""
        return torch.arange(n, device=self.device) % self.num_classes if self.conditional else None

    @torch.no_grad()
    def sample(self, n: int, batch_size: int = 500, repeat: bool = False) -> torch.Tensor:
        """n samples on a fixed evaluation noise stream (classes: eval_labels(n)), in batches (G stays
        in train mode, as in the reference code, so BN uses batch statistics exactly as in training).
        `repeat`: another, independent noise stream (the same generator scored twice gives the noise
        of the metrics themselves)."""
        offset = REPEAT_NOISE_SEED_OFFSET if repeat else EVAL_NOISE_SEED_OFFSET
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + offset)
        zs = torch.randn(n, self.nz, generator=g, device=self.device).split(batch_size)
        ys = self.eval_labels(n).split(batch_size) if self.conditional else [None] * len(zs)
        return torch.cat([self.generate(self.generator, z, y) for z, y in zip(zs, ys)])

    @torch.no_grad()
    def grid_samples(self) -> tuple[torch.Tensor, Optional[int]]:
        """(fixed-noise grid images, images per row or None for the default). Conditional: a class
        sheet, one row per class (at most as many as fixed noise vectors), the same noise per column."""
        if not self.conditional:
            return self.generator(self.fixed_noise), None
        k = min(self.num_classes, len(self.fixed_noise))
        z = self.fixed_noise[:k].repeat(k, 1)                                   # row r, column c: noise c
        y = torch.arange(k, device=self.device).repeat_interleave(k)            # row r: class r
        return self.generator(z, y), k

    # -- exact resumes: counters and RNG streams travel with the checkpoint ---------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["study"] = {"gen_iter": self.gen_iter, "critic_iters": self.critic_iters,
                               "noise_rng": self.noise_gen.get_state(),
                               "real": self.real.state_dict() if self.real is not None else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # until the first generator iteration after it completes: a (non-memory) failure in between is the
        # checkpoint's (e.g. another optimizer's state fails at its first step)
        self.restoring = True
        state = checkpoint["study"]
        self.gen_iter, self.critic_iters = state["gen_iter"], state["critic_iters"]
        self.noise_gen.set_state(state["noise_rng"])
        if self.real is not None and state["real"] is not None:
            self.real.load_state_dict(state["real"])
        self._runners = None  # captures and compiled networks refer to the state as it was: rebuild after restore
