"""Shared pieces of the benchmarks: machine facts, configs, the plain-PyTorch reference loop, the
Lightning path as run_trial builds it, and side-by-side timing helpers."""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import torch

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- machine
def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def cpu_model() -> str:
    from study.provenance import cpu_model as model
    return model() or platform.machine()

def git_state() -> str:
    """Commit and whether the harness (anything outside benchmarks/) had uncommitted changes."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!benchmarks"], cwd=REPO,
                               capture_output=True, text=True).stdout.split("\n")
        n = sum(1 for line in dirty if line.strip())
        return head + (f" + {n} uncommitted change(s)" if n else "")
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    import pytorch_lightning as pl
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "git": git_state(),
            "torch": torch.__version__, "pytorch_lightning": pl.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "mkldnn": torch.backends.mkldnn.is_available(), "load_avg_1m": load_average()}
    return info


def emit(obj: dict) -> None:
    """The one JSON object a benchmark prints (on the last line of stdout)."""
    print(json.dumps(obj, default=_json_default), flush=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def command() -> str:
    return "python -m " + sys.modules["__main__"].__spec__.name + " " + " ".join(sys.argv[1:]) \
        if getattr(sys.modules["__main__"], "__spec__", None) else " ".join(sys.argv)


def quiet_lightning() -> None:
    import logging
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------- statistics
def median(xs) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median": median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


def rnd(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if isinstance(x, (int, float)) and math.isfinite(x) else x


# ----------------------------------------------------------------------------- configs
# Named cases. `paper` scale: the defaults of study/config.py (DCGAN width 64, nz 100, MLP 4 x 512, batch 64);
# `quick` scale: sweeps/quick.yaml's settings.
CASES: dict[str, dict] = {
    "mlp_mnist5k": {"backbone": "mlp", "data": {"name": "mnist5k", "image_size": 32}},
    "dcgan32": {"backbone": "dcgan", "data": {"name": "mnist5k", "image_size": 32}},
    "dcgan64": {"backbone": "dcgan", "data": {"name": "mnist5k", "image_size": 64}},
    "ring8": {"backbone": "mlp", "data": {"name": "ring8"}, "model": {"nz": 2, "mlp_width": 128},
              "train": {"batch_size": 256}},
    "quick_dcgan16": {"backbone": "dcgan", "data": {"name": "mnist5k", "image_size": 16},
                      "model": {"nz": 32, "width": 16, "mlp_width": 128}, "train": {"batch_size": 32}},
}


def deep_update(d: dict, over: dict) -> dict:
    out = dict(d)
    for k, v in over.items():
        out[k] = deep_update(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def make_cfg(case: str, loss: str, gen_iters: int, warmup: bool = False, seed: int = 0, **over):
    """A TrialConfig for a timing run: no evaluation during training and no checkpoint inside the run,
    so what is timed is the training step (the final evaluation at gen_iters is outside the window)."""
    from study.config import load_trial_config
    d = deep_update(CASES[case], {"loss": loss, "seed": seed,
                                  "train": {"gen_iters": gen_iters, "checkpoint_every": 10 ** 9},
                                  "eval": {"every": 0}, "wgan": {"warmup": warmup, "clip_order": "after"}})
    return load_trial_config(deep_update(d, over), where=f"benchmark case {case}")


_DATA: dict[str, Any] = {}


def dataset(cfg):
    from study.data import load_dataset
    key = cfg.data.model_dump_json()
    if key not in _DATA:
        _DATA[key] = load_dataset(cfg.data)
    return _DATA[key]


def trial_process_setup() -> None:
    """What run_trial does to its process before training (e.g. study.trial.skip_nvml_cuda_check: with
    Lightning imported, every torch.cuda.is_available() in optimizer.step() would reload NVML). Applied
    process-wide, so the plain loop and the Lightning path run under the same settings."""
    import study.trial as trial
    for name in ("quiet_lightning", "skip_nvml_cuda_check"):
        fn = getattr(trial, name, None)
        if fn is not None:
            fn()


def fresh_module(cfg, device: str = "cpu"):
    """The trial's LightningModule, exactly as run_trial builds it (same seeds, same sampler)."""
    from study.data import RealSampler
    from study.trial import build_module
    trial_process_setup()
    data = dataset(cfg)
    return build_module(cfg, RealSampler(data, cfg.train.batch_size, cfg.seed, device), data.shape).to(device)


# ----------------------------------------------------------------------------- the plain loop
class PlainLoop:
    """The same math as AdversarialModule.training_step in plain PyTorch, structured like the WGAN
    reference code (martinarjovsky/WassersteinGAN main.py): requires_grad toggled by hand, a loop of
    critic updates with clamping, one generator update, the losses read back once per generator
    iteration (the reference prints them every iteration). Built from a fresh module, so the weights,
    data stream and noise stream are those of the Lightning run with the same config."""

    def __init__(self, module):
        from lightning_modules.adversarial import make_optimizer
        self.m = module
        self.G, self.D, self.real, self.loss_fn = module.generator, module.critic, module.real, module.loss_fn
        self.cfg = module.cfg
        self.d_opt = make_optimizer(self.cfg.algo, self.D.parameters())
        self.g_opt = make_optimizer(self.cfg.algo, self.G.parameters())
        self.d_params, self.g_params = list(self.D.parameters()), list(self.G.parameters())
        self.wgan = self.cfg.loss == "wgan"
        self.clip_c = self.cfg.wgan.clip
        self.gen_iter = 0
        self.last: list[float] = []
        if self.wgan:
            self.clip()

    @torch.no_grad()
    def clip(self) -> None:
        for p in self.d_params:
            p.clamp_(-self.clip_c, self.clip_c)

    def noise(self, n: int) -> torch.Tensor:
        g = self.m.noise_gen
        return torch.randn(n, self.m.nz, generator=g, device=g.device)

    def iteration(self) -> None:
        G, D, loss_fn = self.G, self.D, self.loss_fn
        for p in self.d_params:
            p.requires_grad = True
        for p in self.g_params:
            p.requires_grad = False
        for _ in range(self.m.critic_steps(self.gen_iter)):
            real = self.real.next()
            with torch.no_grad():
                fake = G(self.noise(len(real)))
            d_real, d_fake = D(real), D(fake)
            terms = loss_fn(d_real, d_fake)
            self.d_opt.zero_grad(set_to_none=True)
            terms.d_loss.backward()
            self.d_opt.step()
            if self.wgan:
                self.clip()
        for p in self.d_params:
            p.requires_grad = False
        for p in self.g_params:
            p.requires_grad = True
        d_gen = D(G(self.noise(self.cfg.train.batch_size)))
        g_loss = loss_fn(d_real.detach(), d_gen).g_loss
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        for p in self.d_params:
            p.requires_grad = True
        self.gen_iter += 1
        self.last = torch.stack([terms.d_loss, g_loss, d_real.mean(), d_fake.mean()]).detach().cpu().tolist()


class Window:
    """Wall and CPU seconds of generator iterations skip+1 .. skip+n (iteration k ends when k are done)."""

    def __init__(self, skip: int, n: int):
        self.skip, self.n = skip, n
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.last: list[float] = []
        self._t: Optional[tuple[float, float]] = None

    def mark(self, done: int, sync: bool = False) -> None:
        if sync:
            torch.cuda.synchronize()
        now = (time.perf_counter(), time.process_time())
        if self._t is not None and self.skip < done <= self.skip + self.n:
            self.wall.append(now[0] - self._t[0])
            self.cpu.append(now[1] - self._t[1])
        self._t = now

    @property
    def complete(self) -> bool:
        return len(self.wall) == self.n

    def per_iter(self) -> dict[str, float]:
        """Seconds per iteration over the window, wall and process CPU: the mean, and the median (robust
        to the odd iteration another process's burst slowed down)."""
        return {"wall": sum(self.wall) / len(self.wall), "cpu": sum(self.cpu) / len(self.cpu),
                "wall_med": median(self.wall), "cpu_med": median(self.cpu)}


def time_plain(cfg, skip: int, n: int, device: str = "cpu") -> Window:
    """Time iterations skip+1..skip+n of the plain loop (fresh weights, same seeds as the trial)."""
    loop = PlainLoop(fresh_module(cfg, device))
    w = Window(skip, n)
    w.mark(0, device.startswith("cuda"))
    for i in range(1, skip + n + 1):
        loop.iteration()
        w.mark(i, device.startswith("cuda"))
        if i == skip + n:
            w.last = loop.last
    return w


# ----------------------------------------------------------------------------- the Lightning path
def window_callback(w: Window, sync: bool = False):
    """A Lightning callback marking `w` at every on_train_batch_end: the window spans consecutive batch
    ends, so Lightning's loop, hooks and logging between steps are inside it. Put it first in the
    callback list (before EvalCallback) so the row it reads is the step's own."""
    import pytorch_lightning as pl

    class _Timer(pl.Callback):
        def on_train_start(self, trainer, module):
            w.mark(module.gen_iter, sync)

        def on_train_batch_end(self, trainer, module, *args):
            w.mark(module.gen_iter, sync)
            if module.gen_iter == w.skip + w.n:
                r = module.row
                w.last = [r["train/d_loss"], r["train/g_loss"], r["train/d_real"], r["train/d_fake"]]
    return _Timer()


def lightning_fit(cfg, module, trial_dir: Path, extra_callbacks: list, device: str = "cpu") -> None:
    """trainer.fit with run_trial's own Trainer (study.trial.make_trainer), without an evaluator (with
    eval.every 0 the EvalCallback acts only at the last iteration and iteration 0)."""
    from study.trial import GenIterations, make_trainer
    trainer, _ = make_trainer(cfg, trial_dir, dataset(cfg), None, device, extra_callbacks)
    trainer.fit(module, train_dataloaders=GenIterations(cfg.train.gen_iters))


def time_lightning(cfg, skip: int, n: int, device: str = "cpu", module_factory: Optional[Callable] = None) -> Window:
    """Time generator iterations skip+1..skip+n through trainer.fit as run_trial sets it up.
    `cfg.train.gen_iters` must exceed skip + n, so the final evaluation falls outside the window."""
    assert cfg.train.gen_iters > skip + n, "gen_iters must exceed skip + n"
    module = (module_factory or fresh_module)(cfg, device)
    w = Window(skip, n)
    with tempfile.TemporaryDirectory(prefix="bench_trial_") as d:
        lightning_fit(cfg, module, Path(d), [window_callback(w, device.startswith("cuda"))], device)
    w.mode = module.compile_mode  # how its updates ran (train.compile resolved)
    return w


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run each fn `repeats` times, interleaved (A B, then B A, ...) so drifting load hits every side
    alike; returns each fn's results in order."""
    out: dict[str, list[Any]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            out[k].append(fns[k]())
    return out


def paired_ratios(num: list[float], den: list[float]) -> list[float]:
    return [a / b for a, b in zip(num, den)]
