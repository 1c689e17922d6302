"""Callbacks of a trial: evaluation and sample grids, atomic checkpoints, progress reports."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytorch_lightning as pl

from study.io import atomic_path
from study.samples import save_grid


def is_eval_point(gen_iter: int, every: int, total: int) -> bool:
    return gen_iter == total or (every > 0 and gen_iter % every == 0)


class EvalCallback(pl.Callback):
    """At generator iteration 0 (the untrained generator: the report's "no learning" anchor), every
    `eval.every` generator iterations and at the end: score samples (eval/* keys join that
    iteration's metrics row), save a sample grid, and keep the final samples. At the end the same
    generator is also scored on a second, independent noise set (`repeat`): the difference is the
    sampling noise of the metrics, which the report needs before it calls any change real."""

    def __init__(self, evaluator: Optional[Callable], trial_dir: Path, data_kind: str, modes=None):
        self.evaluator, self.trial_dir, self.data_kind, self.modes = evaluator, trial_dir, data_kind, modes
        self.seconds = 0.0
        self.last: dict[str, float] = {}
        self.repeat: dict[str, float] = {}
        self.notes: list[str] = []  # what the evaluator noticed about this trial's samples
        self.crosscheck: dict = {}  # the final FID/KID once more, by torchmetrics (study/eval/crosscheck.py)

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        if module.gen_iter == 0:  # a fresh start; a resumed trial already has its step-0 row
            self._evaluate(module)
            module.flush_row()

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        cfg = module.cfg
        if is_eval_point(module.gen_iter, cfg.eval.every, cfg.train.gen_iters):
            self._evaluate(module)

    def _evaluate(self, module: Any) -> None:
        cfg = module.cfg
        t0 = time.perf_counter()
        samples = module.sample(cfg.eval.num_samples)
        final = module.gen_iter >= cfg.train.gen_iters
        labels = module.eval_labels(cfg.eval.num_samples)  # None unless conditional
        scores = self.evaluator(samples, final=final, labels=labels) if self.evaluator is not None else {}
        module.row.update(scores)
        self.last = scores
        self.notes += [n for n in getattr(self.evaluator, "call_notes", []) if n not in self.notes]
        grid, nrow = module.grid_samples() if self.data_kind == "image" else (samples, None)
        save_grid(grid, self.trial_dir / "samples" / f"grid_{module.gen_iter:06d}.png", self.modes,
                  title=f"{cfg.loss} {cfg.backbone.label}, generator iteration {module.gen_iter}", nrow=nrow)
        if final and self.evaluator is not None:
            self.repeat = self.evaluator(module.sample(cfg.eval.num_samples, repeat=True), final=False, labels=labels)
            self.crosscheck = getattr(self.evaluator, "crosscheck", lambda x: {})(samples)
        if final:
            with atomic_path(self.trial_dir / "samples.npz") as tmp:
                with open(tmp, "wb") as f:
                    extra = {} if labels is None else {"y": labels.cpu().numpy()}  # conditional: the classes asked for
                    np.savez_compressed(f, x=samples.flatten(1).float().cpu().numpy(), **extra)
        self.seconds += time.perf_counter() - t0


FINAL_CHECKPOINT = "final.ckpt"  # the state at the last iteration: what a longer trial continues from
                                 # (study/adaptive.py); never resumed by the trial itself (not iter_*.ckpt)


class CheckpointCallback(pl.Callback):
    """Every `every` generator iterations: flush metrics, then write a checkpoint atomically and
    keep the newest `keep` (more than one, so a corrupt last one can fall back). At the last iteration,
    FINAL_CHECKPOINT, so that the trial can be extended to more iterations exactly."""

    def __init__(self, directory: Path, every: int, keep: int):
        self.directory, self.every, self.keep = directory, every, keep

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        last = module.gen_iter >= module.cfg.train.gen_iters
        if module.gen_iter % self.every and not last:
            return
        module.flush_row()
        if trainer.logger is not None:
            trainer.logger.save()
        path = self.directory / (FINAL_CHECKPOINT if last else f"iter_{module.gen_iter:06d}.ckpt")
        with atomic_path(path) as tmp:
            trainer.save_checkpoint(tmp, weights_only=False)
        if last:
            return
        for old in sorted(self.directory.glob("iter_*.ckpt"))[:-self.keep]:
            old.unlink()


class ProgressCallback(pl.Callback):
    """Reports the generator iteration to `report` (the sweep's progress display) at most every
    `interval` seconds, and always at the end."""

    def __init__(self, report: Callable[[int], None], interval: float = 1.0):
        self.report, self.interval, self._last = report, interval, 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval or module.gen_iter >= module.cfg.train.gen_iters:
            self._last = now
            self.report(module.gen_iter)
