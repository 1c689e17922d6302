import os

import pytest
import torch

# Tests run on CPU with one thread: stable timings on 2-core CI and no oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("WGAN_STUDY_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "test"))
# Sweeps in tests skip the cost estimate (timing every shape costs seconds per sweep: minutes over the suite);
# tests/test_estimate.py unsets it and tests the estimate itself.
os.environ.setdefault("WGAN_STUDY_NO_ESTIMATE", "1")


@pytest.fixture
def tiny():
    """A tiny trial config (dict) that fits in seconds: override what a test needs."""
    def make(**over):
        cfg = {"loss": "wgan", "backbone": "mlp", "data": {"name": "ring8", "holdout": 200, "synthetic_size": 2048},
               "model": {"nz": 2, "width": 8, "mlp_width": 32},
               "train": {"gen_iters": 20, "batch_size": 16, "checkpoint_every": 10},
               "eval": {"every": 10, "num_samples": 200, "w1_points": 100, "w1_draws": 1, "grid_size": 16},
               "wgan": {"warmup": False}}
        for key, value in over.items():
            node = cfg
            *path, last = key.split("__")
            for p in path:
                node = node.setdefault(p, {})
            node[last] = value
        return cfg
    return make


@pytest.fixture
def one_iteration():
    """A function cfg -> module whose training_step runs outside a Trainer (plain optimizers,
    loss.backward, no toggling): unit tests of one step's math."""
    from study.data import RealSampler
    from study.trial import WorkerContext, build_module

    def make(cfg):
        ctx = WorkerContext(evaluate=False)
        data = ctx.dataset(cfg)
        module = build_module(cfg, RealSampler(data, cfg.train.batch_size, cfg.seed), data.shape)
        d_opt, g_opt = module.configure_optimizers()
        module.optimizers = lambda use_pl_optimizer=True: (d_opt, g_opt)  # run the step outside a Trainer
        module.toggle_optimizer = module.untoggle_optimizer = lambda opt: None
        module.manual_backward = lambda loss: loss.backward()
        module._trainer = None
        return module
    return make


@pytest.fixture
def kill_at(monkeypatch):
    """kill_at(step): trials run after this stop with an error right after generator iteration `step` (as a kill
    would leave them: checkpoints and metrics up to there); returns the function that undoes it. (A
    KeyboardInterrupt would make Lightning ignore SIGINT afterwards.)"""
    from lightning_modules.adversarial import AdversarialModule
    real_end = AdversarialModule.on_train_batch_end

    def arm(step: int):
        def stop(self, *args):
            real_end(self, *args)
            if self.gen_iter == step:
                raise RuntimeError("killed")
        monkeypatch.setattr(AdversarialModule, "on_train_batch_end", stop)
        return lambda: monkeypatch.setattr(AdversarialModule, "on_train_batch_end", real_end)
    return arm
