"""One adversarial training step, shared by the GAN and the WGAN.

A Lightning training step is one *generator iteration*: `critic_steps(gen_iter)` critic updates on
fresh real batches, then one generator update. Subclasses differ only where the algorithm does:
the loss, the critic schedule, what happens after a critic update (clipping), and the optimizer.
Manual optimization throughout (Lightning's GAN template), so Lightning's `global_step` counts
every optimizer step; the study's step axis is `gen_iter`, kept here and logged as `step`.

`cfg.conditional` (AC-GAN / AC-WGAN) changes no algorithm: the generator also takes labels, the
critic also returns class logits, and class_weight x cross-entropy joins both players' losses.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch import nn

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

    def generate(self, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        return self.generator(z) if y is None else self.generator(z, y)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(critic scores, class logits or None)."""
        return self.critic(x) if self.conditional else (self.critic(x), None)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        d_opt, g_opt = self.optimizers()
        self.toggle_optimizer(d_opt)
        for _ in range(self.critic_steps(self.gen_iter)):
            self.constraint.before_update(self.critic)  # the reference code clamps here, before the critic's loss
            real, y_real = self.real.next_labelled() if self.conditional else (self.real.next(), None)
            y_fake = self.labels(len(real))
            with torch.no_grad():
                fake = self.generate(self.noise(len(real)), y_fake)
            # real and fake in separate passes, as the reference code: BN statistics per batch
            (d_real, c_real), (d_fake, c_fake) = self.score(real), self.score(fake)
            terms = self.loss_fn(d_real, d_fake)
            d_total = terms.d_loss
            extra = self.constraint.penalty(lambda x: self.score(x)[0], real, fake)
            if extra is not None:  # WGAN-GP: the penalty joins the critic's loss, not its estimate
                d_total = d_total + extra["loss"]
            if self.conditional:
                d_class = class_loss(c_real, y_real) + class_loss(c_fake, y_fake)
                d_total = d_total + self.class_weight * d_class
            d_opt.zero_grad(set_to_none=True)
            self.manual_backward(d_total)
            d_opt.step()
            self.constraint.after_update(self.critic)
            self.critic_iters += 1
        self.untoggle_optimizer(d_opt)

        self.toggle_optimizer(g_opt)
        y_gen = self.labels(self.cfg.train.batch_size)
        d_gen, c_gen = self.score(self.generate(self.noise(self.cfg.train.batch_size), y_gen))
        # g_loss depends on fake scores only; the last critic batch fills the d_real slot
        g_loss = self.loss_fn(d_real.detach(), d_gen).g_loss
        g_total = g_loss
        if self.conditional:
            g_class = class_loss(c_gen, y_gen)
            g_total = g_total + self.class_weight * g_class
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        g_opt.step()
        self.untoggle_optimizer(g_opt)
        self.gen_iter += 1
        self.restoring = False

        # one device->host transfer per generator iteration
        keys = ["train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", self.estimate_key]
        values = [terms.d_loss, g_loss, d_real.mean(), d_fake.mean(), self.spec.estimate(terms.d_loss)]
        for k, v in {**(extra or {}), **self.constraint.metrics(self.critic)}.items():
            if k.startswith("train/"):  # e.g. train/gp, train/grad_norm, train/clip_fraction
                keys.append(k)
                values.append(v.detach().to(d_real.device, d_real.dtype))
        if self.conditional:  # the class head at the last critic update, and the generator's class term
            keys += ["train/d_class_loss", "train/g_class_loss", "train/class_acc_real", "train/class_acc_fake"]
            values += [d_class, g_class, class_accuracy(c_real, y_real), class_accuracy(c_fake, y_fake)]
        self.row = dict(zip(keys, torch.stack(values).detach().cpu().tolist()))
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
        return torch.cat([self.generate(z, y) for z, y in zip(zs, ys)])

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
