"""Callbacks of a trial: evaluation and sample grids, atomic checkpoints, progress reports."""
from __future__ import annotations

import sys
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
        self.expected_s: Optional[float] = None  # an evaluation's time, from one timed batch (study/eval/budget.py)
        self._probe = (0, 0.0, 0.0)  # (first timed iteration, its clock, evaluation seconds by then)

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        self._time_an_evaluation(module)
        if module.gen_iter == 0:  # a fresh start; a resumed trial already has its step-0 row
            self._evaluate(module)
            module.flush_row()

    def _time_an_evaluation(self, module: Any) -> None:
        """Before the first evaluation: its time from one timed batch, said at once when it is long."""
        if self.evaluator is None:
            return
        from study.eval.budget import LONG_EVAL_S, probe_seconds
        n = module.cfg.eval.num_samples
        self.expected_s = probe_seconds(module, self.evaluator, n)
        self._probe = (module.gen_iter + 1, 0.0, 0.0)  # timed from the end of the first iteration (warm-up)
        if self.expected_s > LONG_EVAL_S:
            self._say(f"each evaluation of {n:,} samples will take about {self.expected_s:,.0f} s (timed on one "
                      "batch); lower eval.num_samples for shorter ones")

    def _compare_with_training(self, module: Any) -> None:
        """After TRAIN_PROBE_ITERS timed iterations: warn when an evaluation outlasts the training between two."""
        from study.eval.budget import TRAIN_PROBE_ITERS
        start, t0, eval0 = self._probe
        if module.gen_iter == start:
            self._probe = (start, time.perf_counter(), self.seconds)
        elif module.gen_iter == start + TRAIN_PROBE_ITERS:
            per_iter = (time.perf_counter() - t0 - (self.seconds - eval0)) / TRAIN_PROBE_ITERS
            cfg = module.cfg
            every = cfg.eval.every or cfg.train.gen_iters
            if self.expected_s > per_iter * every:
                self._say(f"an evaluation ({cfg.eval.num_samples:,} samples, about {self.expected_s:,.1f} s) takes "
                          f"longer than the {every:,} generator iterations between two (about "
                          f"{per_iter * every:,.1f} s); raise eval.every or lower eval.num_samples")
            self.expected_s = None

    def _say(self, text: str) -> None:
        """A line on the worker's stderr (the sweep's terminal), kept in the trial's notes (result.json)."""
        print(f"[{self.trial_dir.name}] {text}", file=sys.stderr, flush=True)
        self.notes.append(text)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        cfg = module.cfg
        if self.expected_s is not None:
            self._compare_with_training(module)
        if is_eval_point(module.gen_iter, cfg.eval.every, cfg.train.gen_iters):
            self._evaluate(module)

    def _evaluate(self, module: Any) -> None:
        cfg = module.cfg
        t0 = time.perf_counter()
        final = module.gen_iter >= cfg.train.gen_iters
        n_final = max(cfg.eval.final_num_samples or 0, cfg.eval.num_samples)  # the last evaluation may count more
        samples = module.sample(n_final if final else cfg.eval.num_samples)
        labels = module.eval_labels(cfg.eval.num_samples)  # None unless conditional
        scores = self.evaluator(samples, final=final, labels=labels) if self.evaluator is not None else {}
        module.row.update(scores)
        self.last = scores
        self.notes += [n for n in getattr(self.evaluator, "call_notes", []) if n not in self.notes]
        grid, nrow = module.grid_samples() if self.data_kind == "image" else (samples, None)
        save_grid(grid, self.trial_dir / "samples" / f"grid_{module.gen_iter:06d}.png", self.modes,
                  title=f"{cfg.loss} {cfg.backbone.label}, generator iteration {module.gen_iter}", nrow=nrow)
        if final and self.evaluator is not None:
            self.repeat = self.evaluator(module.sample(n_final, repeat=True), final=False, labels=labels)
            self.crosscheck = getattr(self.evaluator, "crosscheck", lambda x: {})(samples)
        if final:
            with atomic_path(self.trial_dir / "samples.npz") as tmp:
                with open(tmp, "wb") as f:
                    extra = {} if labels is None else {"y": labels.cpu().numpy()}  # conditional: the classes asked for
                    n = cfg.eval.num_samples  # `x`: the samples every metric used; the larger final count's set as uint8
                    if len(samples) > n and self.data_kind == "image":  # uint8, as the evaluator reads them: small
                        extra["x_final_u8"] = ((samples.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
                    elif len(samples) > n:
                        extra["x_final"] = samples.flatten(1).float().cpu().numpy()
                    np.savez_compressed(f, x=samples[:n].flatten(1).float().cpu().numpy(), **extra)
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
