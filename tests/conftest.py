import os

import pytest
import torch

# Tests run on CPU with one thread: stable timings on 2-core CI and no oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("WGAN_STUDY_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "test"))


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
