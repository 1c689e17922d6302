"""TensorBoard for a trial (`log.tensorboard: true`): event files in <trial_dir>/tb/, so that
`tensorboard --logdir runs/<sweep>` shows every trial of a sweep side by side.

- Scalars: every train/* and eval/* value of metrics.csv, at the generator iteration (the same rows: the module
  logs them through one logger, which sends each row to the CSV file and to TensorBoard).
- Images: the fixed-noise sample grid of each evaluation (`samples/grid`, the PNG the trial saves; toys: the
  scatter plot), and histograms of every critic weight (`critic/<parameter>`) at the same points.
- A resumed trial drops what the first run logged after the checkpoint it resumes from (`purge_step`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import yaml
from pytorch_lightning.loggers import CSVLogger, Logger

from study.callbacks import is_eval_point

TB_DIR = "tb"


class TeeLogger(Logger):
    """metrics.csv's CSVLogger and a TensorBoardLogger as one logger. The module logs each row through
    `self.logger`, which Lightning makes the *first* of several loggers: one logger that writes to both keeps
    every row (the step-0 evaluation, the final flush) in both places."""

    def __init__(self, csv: CSVLogger, tensorboard: Any):
        super().__init__()
        self.csv, self.tensorboard = csv, tensorboard

    @property
    def name(self) -> str:
        return self.csv.name

    @property
    def version(self) -> Any:
        return self.csv.version

    @property
    def save_dir(self) -> Optional[str]:
        return self.csv.save_dir

    @property
    def log_dir(self) -> str:
        return self.csv.log_dir

    @property
    def experiment(self) -> Any:
        return self.csv.experiment

    def log_metrics(self, metrics: dict[str, float], step: Optional[int] = None) -> None:
        self.csv.log_metrics(metrics, step)
        self.tensorboard.log_metrics(metrics, step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.csv.log_hyperparams(params)

    def save(self) -> None:
        self.csv.save()
        self.tensorboard.save()

    def finalize(self, status: str) -> None:
        self.csv.finalize(status)
        self.tensorboard.finalize(status)


def tensorboard_logger(trial_dir: Path, resume_step: int) -> Any:
    """A TensorBoardLogger writing to <trial_dir>/tb; a resumed trial purges events after `resume_step`."""
    from pytorch_lightning.loggers import TensorBoardLogger
    purge = {"purge_step": resume_step + 1} if resume_step else {}
    return TensorBoardLogger(save_dir=str(trial_dir), name=TB_DIR, version="", default_hp_metric=False, **purge)


class TensorBoardCallback(pl.Callback):
    """At each evaluation point (after EvalCallback, which saves the grid): the grid image and critic histograms."""

    def __init__(self, tensorboard: Any, trial_dir: Path):
        self.writer, self.trial_dir = tensorboard.experiment, trial_dir

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        if module.gen_iter == 0:
            self.writer.add_text("config", f"```\n{yaml.safe_dump(module.cfg.resolved(), sort_keys=False)}```", 0)
            self._log(module)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        if is_eval_point(module.gen_iter, module.cfg.eval.every, module.cfg.train.gen_iters):
            self._log(module)

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        self.writer.flush()

    def _log(self, module: Any) -> None:
        step = module.gen_iter
        grid = self.trial_dir / "samples" / f"grid_{step:06d}.png"
        if grid.exists():
            from PIL import Image
            with Image.open(grid) as im:
                self.writer.add_image("samples/grid", np.asarray(im.convert("RGB")), step, dataformats="HWC")
        for name, p in module.critic.named_parameters():
            self.writer.add_histogram(f"critic/{name}", p.detach().float().cpu(), step)
