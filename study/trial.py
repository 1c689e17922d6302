"""Run one trial: build backbones and the LightningModule, train with resumable checkpoints,
evaluate, and write result.json. Everything a trial leaves behind is in its own directory."""
from __future__ import annotations

import csv
import errno
import logging
import os
import platform
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from lightning_modules import AdversarialModule, Diverged
from lightning_modules.backbones import build, make_conditional
from lightning_modules.updates import CaptureError
from study.callbacks import CheckpointCallback, EvalCallback, ProgressCallback
from study.config import TrialConfig
from study.data import DATASETS, Dataset, RealSampler, load_dataset
from study.metrics import quality_metric
from study.io import atomic_path
from study.rundir import CHECKPOINTS, METRICS, read_checkpoint, write_config, write_result

log = logging.getLogger("wgan-study")
FINAL_WINDOW = 101  # the paper median-filters loss curves over 101 iterations; final train values use it


class GenIterations:
    """The 'data loader' Lightning iterates: one item per generator iteration. Real batches are
    drawn inside the step (a WGAN iteration needs many), so the items carry no data. Stateful, so
    Lightning resumes it mid-epoch without warnings."""

    def __init__(self, total: int):
        self.total, self.pos = total, 0

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        while self.pos < self.total:
            self.pos += 1
            yield self.pos

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"]


class WorkerContext:
    """What a worker process builds once and reuses across its trials: data sets and evaluators."""

    def __init__(self, cache_dir: Optional[Path] = None, evaluate: bool = True):
        self.cache_dir, self.evaluate = cache_dir, evaluate
        self._data: dict[str, Dataset] = {}
        self._evaluators: dict[str, Any] = {}
        self._provenance: dict[str, dict] = {}
        self._threads: Optional[dict] = None

    def dataset(self, cfg: TrialConfig) -> Dataset:
        key = cfg.data.model_dump_json()
        if key not in self._data:
            self._data[key] = load_dataset(cfg.data)
        return self._data[key]

    def evaluator(self, cfg: TrialConfig, device: str) -> Any:
        if not self.evaluate:
            return None
        key = cfg.data.model_dump_json() + cfg.eval.model_dump_json() + device
        if key not in self._evaluators:
            from study.eval.evaluator import Evaluator, default_cache_dir
            self._evaluators[key] = Evaluator(self.dataset(cfg), cfg.data, cfg.eval, torch.device(device),
                                              self.cache_dir or default_cache_dir())
        return self._evaluators[key]

    def threads(self) -> dict:
        """The threads this worker may use (study/worker.py), read once: result.json's `threads`."""
        if self._threads is None:
            from study.worker import worker_threads
            self._threads = worker_threads()
        return self._threads

    def provenance(self, device: str) -> dict:
        """Git state and host devices, once per worker: the code it runs was imported when it started."""
        if device not in self._provenance:
            from study.provenance import provenance
            self._provenance[device] = provenance(device)
        return self._provenance[device]


def quiet_lightning() -> None:
    """Workers share one terminal with the sweep's progress display: keep Lightning's tips and
    info lines (and warnings that do not apply to a manual-optimization GAN) out of it."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*LeafSpec.*", ".*exists and is not empty.*", ".*resuming from a checkpoint.*"):
        warnings.filterwarnings("ignore", message=pattern)


def skip_nvml_cuda_check() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (fork safety), which makes every
    torch.cuda.is_available() reload NVML; torch.optim asks on every step(). On a CPU machine that
    was the largest cost outside model math (0.2-0.7 ms per optimizer step, measured). Workers are
    spawned, never forked, so the plain CUDA runtime check is safe."""
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


def versions() -> dict[str, str]:
    import numpy
    import torch_fidelity
    return {"python": platform.python_version(), "torch": torch.__version__, "pytorch_lightning": pl.__version__,
            "torch_fidelity": torch_fidelity.__version__, "numpy": numpy.__version__}


def build_module(cfg: TrialConfig, real: Optional[RealSampler], shape: tuple[int, ...]):
    torch.manual_seed(cfg.seed)  # weight init is part of the trial's identity
    sizes = cfg.sizes()
    g = build(cfg.backbone.generator, "generator", sizes, shape)
    d = build(cfg.backbone.critic, "critic", sizes, shape)
    if cfg.conditional:
        g, d = make_conditional(g, d, DATASETS.get(cfg.data.name).classes, cfg.model.nz)
    return AdversarialModule(g, d, cfg, real, cfg.spec)


def latest_checkpoint(ckpt_dir: Path) -> tuple[Optional[Path], int]:
    """(newest checkpoint that loads, its generator iteration); a corrupt one is set aside with a
    warning and an older one used; (None, 0) when there is none (the trial starts afresh)."""
    for path in sorted(ckpt_dir.glob("iter_*.ckpt"), reverse=True):
        step, problem = read_checkpoint(path)
        if problem is None:
            return path, step
        set_aside(path, "corrupt")  # truncated or garbage file: keep it for inspection, use an older one
    return None, 0


def set_aside(ckpt: Path, why: str) -> Path:
    """Rename a checkpoint that cannot be resumed from to *.<why> (kept for inspection), with a warning."""
    bad = ckpt.with_suffix(f".{why}")
    ckpt.rename(bad)
    older = any(ckpt.parent.glob("iter_*.ckpt"))
    warnings.warn(f"{ckpt}: {why} checkpoint, set aside as {bad.name}; "
                  + ("falling back to an older one" if older else "the trial starts afresh"))
    return bad


def _disk_full(e: BaseException) -> bool:
    """Out of space is the machine's problem, not the trial's: the sweep stops instead of recording a failure."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _number(text: str) -> float | int:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _rows_up_to(metrics: Path, step: int) -> list[dict]:
    """Rows of an interrupted run's metrics.csv up to the checkpoint it resumes from."""
    if not metrics.exists():
        return []
    out = []
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            try:
                if int(row["step"]) <= step:
                    out.append({k: _number(v) for k, v in row.items() if v not in ("", None)})
            except (TypeError, ValueError):
                break  # a torn last line from a kill
    return out


def extend(short_dir: Path, long_dir: Path) -> Optional[int]:
    """Make `long_dir` the continuation of the finished trial in `short_dir` (the same config but for more
    generator iterations): its final checkpoint becomes the long trial's checkpoint at that iteration, and its
    metrics rows are kept, less the metrics only a last evaluation computes. With constant learning rates the
    first N iterations of a longer trial are the shorter trial, so the result equals a fresh long trial bit for
    bit (tests/test_extend.py). Returns the iteration it continues from (idempotent), or None when the short
    trial has no final checkpoint (written before they existed): the long trial then runs from the start."""
    import shutil
    from study.callbacks import FINAL_CHECKPOINT
    from study.eval.evaluator import FINAL_ONLY
    if not (short_dir / CHECKPOINTS / FINAL_CHECKPOINT).exists():
        return None
    state = torch.load(short_dir / CHECKPOINTS / FINAL_CHECKPOINT, map_location="cpu", weights_only=False)
    step = int(state["study"]["gen_iter"])
    ckpt = long_dir / CHECKPOINTS / f"iter_{step:06d}.ckpt"
    if ckpt.exists() or (long_dir / "result.json").exists():
        return step
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows_up_to(short_dir / METRICS, step)
    final_only = {k for r in rows for k in r if k.startswith("eval/") and k[5:].split("@")[0] in FINAL_ONLY}
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in final_only))
    with open(long_dir / METRICS, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k in keys} for r in rows)
    if (short_dir / "samples").is_dir():
        shutil.copytree(short_dir / "samples", long_dir / "samples", dirs_exist_ok=True)
    # the short trial's loader had reached its last item; the long one's has not: the epoch goes on
    state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"] = False
    with atomic_path(ckpt) as tmp:  # last: its presence means "prepared"
        torch.save(state, tmp)
    return step


def final_values(rows: list[dict], estimate_key: str) -> tuple[dict, dict]:
    """(final metrics, loss-quality correlation) from the trial's metrics rows (those it resumed with and
    those it logged: no re-reading of metrics.csv)."""
    import pandas as pd
    from study.eval.stats import loss_quality_correlation, median_filter
    df = pd.DataFrame(rows).sort_values("step", kind="stable")
    final: dict[str, float] = {}
    for col in df.columns:
        if col == "train/critic_iters":  # a counter: its last value, not a filtered one
            final[col] = int(df[col].iloc[-1])
        elif col.startswith("train/"):
            final[col] = float(median_filter(df[col].to_numpy(), FINAL_WINDOW)[-1])
        elif col.startswith("eval/"):  # NaN (e.g. mode_kl with no high-quality sample) stays visible as null
            final[col] = float(df[col].dropna().iloc[-1]) if df[col].notna().any() else None
    quality = quality_metric(c for c in df.columns if df[c].notna().any())
    corr = loss_quality_correlation(df, estimate_key, quality) if quality and estimate_key in df else {}
    return final, corr


def make_trainer(cfg: TrialConfig, trial_dir: Path, data: Dataset, evaluator: Any, device: str,
                 extra_callbacks: list = (), kept_rows: list = (), show_progress_bar: bool = False,
                 resume_step: int = 0):
    """(Trainer, its EvalCallback) for one trial, as every trial runs: CSV metrics (with the rows a resumed
    trial keeps), evaluation, TensorBoard if asked, atomic checkpoints. The benchmarks time this very setup."""
    logger = csv = CSVLogger(save_dir=str(trial_dir), name="", version="")
    csv.experiment.metrics.extend(kept_rows)  # the writer truncates the file; keep what the checkpoint covers
    csv.save()  # at once: a kill before the next checkpoint must not leave the kept rows only in memory
    evaluator_cb = EvalCallback(evaluator, trial_dir, data.kind, data.modes)
    callbacks = [*extra_callbacks, evaluator_cb,
                 CheckpointCallback(trial_dir / CHECKPOINTS, cfg.train.checkpoint_every, cfg.train.keep_checkpoints)]
    if cfg.log.tensorboard:  # after EvalCallback: it logs the grid that one has just saved
        from study.tensorboard import TeeLogger, TensorBoardCallback, tensorboard_logger
        tb = tensorboard_logger(trial_dir, resume_step)
        logger = TeeLogger(csv, tb)
        callbacks.insert(callbacks.index(evaluator_cb) + 1, TensorBoardCallback(tb, trial_dir))
    trainer = pl.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
                         max_steps=-1, logger=logger, callbacks=callbacks, enable_checkpointing=False,
                         enable_progress_bar=show_progress_bar, enable_model_summary=False,
                         num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=str(trial_dir))
    return trainer, evaluator_cb


def run_trial(cfg: TrialConfig, trial_dir: Path, device: str = "cpu", ctx: Optional[WorkerContext] = None,
              progress: Optional[Callable[[int], None]] = None, show_progress_bar: bool = False) -> dict:
    """Train (or resume) one trial to completion and write result.json; returns the result."""
    ctx = ctx or WorkerContext()
    quiet_lightning()
    skip_nvml_cuda_check()
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_config(trial_dir, cfg.resolved())
    t0 = time.perf_counter()
    result: dict[str, Any] = {"trial_id": cfg.trial_id(), "status": "failed", "error": None, "diverged_at": None,
                              "gen_iters": 0, "critic_iters": 0, "device": device, "versions": versions(),
                              "provenance": ctx.provenance(device), "threads": ctx.threads()}
    module = evaluator_cb = ckpt = None
    kept: list[dict] = []
    resume_step = 0
    try:
        data = ctx.dataset(cfg)
        real = RealSampler(data, cfg.train.batch_size, cfg.seed, device)
        module = build_module(cfg, real, data.shape)
        ckpt_dir = trial_dir / CHECKPOINTS
        ckpt, resume_step = latest_checkpoint(ckpt_dir)
        result["resumed_from"] = resume_step
        kept = _rows_up_to(trial_dir / METRICS, resume_step) if ckpt else []
        extra = []
        if progress is not None:
            progress(resume_step)
            extra.append(ProgressCallback(progress))
        trainer, evaluator_cb = make_trainer(cfg, trial_dir, data, ctx.evaluator(cfg, device), device, extra, kept,
                                             show_progress_bar, resume_step)
        trainer.fit(module, train_dataloaders=GenIterations(cfg.train.gen_iters),
                    ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
        result["status"] = "completed"
    except Diverged as e:
        result.update(status="diverged", error=str(e), diverged_at=e.gen_iter)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # any failure is a recorded result; the sweep goes on
        if _disk_full(e):
            raise
        oom = isinstance(e, (MemoryError, torch.OutOfMemoryError))
        result["error"] = ("out of memory: " if oom else "") + f"{type(e).__name__}: {e}".splitlines()[0]
        (trial_dir / "error.txt").write_text(traceback.format_exc())
        if (ckpt is not None and ckpt.exists() and module is not None and module.restoring and not oom
                and not isinstance(e, CaptureError)):
            # it failed while the checkpoint was being restored (e.g. another optimizer's state: KeyError
            # 'betas'): keep it out of the way, or every --retry-failed would load it and fail the same way.
            # Failures before (building the evaluator) or after (a step) leave a good checkpoint alone.
            result["error"] += f" (resuming from {ckpt.name}, now set aside as {set_aside(ckpt, 'unusable').name})"
    if module is not None:
        module.flush_row()
        if module.logger is not None:
            module.logger.save()
        result.update(gen_iters=module.gen_iter, critic_iters=module.critic_iters)
        result["compile"] = module.compile_mode  # how the updates ran here (train.compile resolved); None: never stepped
        rows = kept + module.history
        if rows:
            try:
                result["final"], result["correlation"] = final_values(rows, module.estimate_key)
            except Exception as e:  # a failed trial's partial metrics must not hide its real error
                result["final_error"] = f"{type(e).__name__}: {e}"
    result["wall_s"] = round(time.perf_counter() - t0, 3)
    result["eval_s"] = round(evaluator_cb.seconds, 3) if evaluator_cb else 0.0
    info = dict(getattr(evaluator_cb.evaluator, "info", {})) if evaluator_cb else {}
    if evaluator_cb and evaluator_cb.notes:  # the evaluator's own notes, then this trial's
        info["notes"] = list(info.get("notes", [])) + evaluator_cb.notes
    result["eval_info"] = info
    if evaluator_cb and evaluator_cb.crosscheck:
        result["crosscheck"] = evaluator_cb.crosscheck
    if evaluator_cb and evaluator_cb.repeat:  # the final metrics once more, on an independent noise set
        result["noise"] = {"repeat": evaluator_cb.repeat,
                           "abs_diff": {k: abs(v - evaluator_cb.last[k]) for k, v in evaluator_cb.repeat.items()
                                        if k in evaluator_cb.last and v is not None and evaluator_cb.last[k] is not None}}
    result["config"] = cfg.resolved()
    write_result(trial_dir, result)
    return result
