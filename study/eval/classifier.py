"""The domain classifier: a small LeNet-like CNN, the feature extractor of the CPU FID/KID and the
labeller of the mode counts (MNIST classes, stacked-MNIST triples).

Trained once on the data's training split and cached on disk, keyed by data, image size, arch
version and seed. Measured on mnist5k (4,000 training images, Adam, batch 128, +-2 px shifts),
held-out accuracy on the 1,000 held-out images: 0.970 at 32 px (400 steps), 0.963 at 16 px
(800 steps), 0.971 at 64 px (400 steps, input pooled to 32 px). Training costs about 20 s of one
CPU core (13 s on an idle core; up to ~45 s wall when parallel jobs load the 2 cores). The
stacked-MNIST classifier is the MNIST one, applied to each channel.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from study.config import DataConfig

ARCH_VERSION = 1        # bump when the network or its training changes: old cache files are ignored
FEATURE_DIM = 64        # small enough for a full-rank covariance from 1,000 held-out images
BATCH, LR = 128, 3e-3


def train_steps(image_size: int) -> int:
    """400 Adam steps of 128 (~13 epochs of mnist5k); 16 px images are 4x cheaper and need more."""
    return 800 if image_size < 32 else 400
MAX_SHIFT = 2           # pixels of random translation during training (small data: helps ~1%)

class DomainNet(nn.Module):
    """Strided-conv LeNet: conv5x5/2 -> conv3x3/2 -> conv3x3/2 -> 4x4 pool -> fc (features) -> fc (logits).
    Strided convolutions instead of conv + max-pool: ~5x cheaper, so training stays well under a
    minute on 2 CPU cores. Adaptive pooling makes one architecture fit 16, 32 and 64 pixels."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, 2, 2), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Linear(4 * width * 16, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)
        # Set after training so that real features have unit RMS per dimension: KID's cubic kernel
        # (x.y / D + 1)^3 then sees O(1) inputs, as with Inception features, not values in the 1000s.
        self.register_buffer("feature_scale", torch.tensor(1.0))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] > 32:  # 64 px: every labelled set is natively <= 32 px, so pooling loses nothing
            x = F.avg_pool2d(x, x.shape[-1] // 32)  # and saves 4x compute
        h = F.relu(self.fc(self.body(x)))
        return h * self.feature_scale, self.head(h)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (post-ReLU, like Inception's pool3), scaled: the FID/KID space."""
        return self.features_and_logits(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def base_of(data_name: str) -> Optional[tuple[str, int]]:
    """(data set the classifier trains on, its channels), or None when no labels exist (image_folder): a fact
    of the data set's registration (study/data.py)."""
    from study.data import DATASETS
    return DATASETS.get(data_name).classifier if data_name in DATASETS else None


def cache_file(cache_dir: Path, data_name: str, image_size: int, seed: int = 0) -> Path:
    base, _ = base_of(data_name)
    return Path(cache_dir) / "classifiers" / f"domain-{base}-{image_size}px-v{ARCH_VERSION}-s{seed}.pt"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so that parallel workers of a sweep train the classifier once, not N times."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): worst case two workers train the same net
            pass
        yield


@contextmanager
def _one_thread() -> Iterator[None]:
    """Convolutions this small gain little from a second thread, and when parallel sweep workers
    share the cores, oversubscribed threads made training 3-5x slower (measured: 56 s with one
    thread vs 178 s with two, on 2 busy cores). The caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int = 10,
                     seed: int = 0, steps: Optional[int] = None) -> DomainNet:
    """Train a DomainNet on images in [-1, 1] (CPU, one thread). Uses its own RNGs: the caller's
    global torch RNG state is left untouched, so building an evaluator never changes a trial's
    random stream."""
    with torch.random.fork_rng(devices=[]), _one_thread():
        return _train(train_x, train_y, num_classes, seed, steps or train_steps(train_x.shape[-1]))


def _train(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, seed: int, steps: int) -> DomainNet:
    train_x, train_y = train_x.cpu(), train_y.cpu()
    torch.manual_seed(seed)  # inside train_classifier's fork_rng: the global stream is restored after
    net = DomainNet(train_x.shape[1], num_classes)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=LR / 3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(train_x), (BATCH,), generator=g)
        xb = train_x[idx]
        if MAX_SHIFT:
            dy, dx = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(net(xb), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval().requires_grad_(False)
    with torch.no_grad():
        h = torch.cat([net.features(train_x[i:i + 1000]) for i in range(0, len(train_x), 1000)])
        net.feature_scale.fill_(float(h.pow(2).mean().rsqrt()))
    return net


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / max(len(x), 1)


def training_data(data_cfg: DataConfig, data=None):
    """The labelled data the classifier learns from, always with the default split (the cache key
    has no holdout: a classifier trained on another split could have seen someone's held-out
    images). `data` is reused when it is exactly that set."""
    base, _ = base_of(data_cfg.name)
    cfg = DataConfig(name=base, image_size=data_cfg.image_size, root=data_cfg.root, download=data_cfg.download)
    if data is not None and data.name == base and data.train_x is not None and data_cfg.holdout == cfg.holdout:
        return data
    from study.data import load_dataset
    return load_dataset(cfg)


def get_classifier(data_cfg: DataConfig, cache_dir: Path, device: torch.device | str = "cpu",
                   seed: int = 0, data=None) -> tuple[DomainNet, float]:
    """(classifier in eval mode on `device`, held-out accuracy). Loads the cached state_dict when
    present, otherwise trains on the base data set's training split (mnist5k for stacked_mnist5k)
    and caches it. `data`: the already-loaded Dataset, reused when it is the base set."""
    found = base_of(data_cfg.name)
    if found is None:
        raise ValueError(f"no domain classifier for data '{data_cfg.name}' (unlabelled)")
    base, channels = found
    path = cache_file(cache_dir, data_cfg.name, data_cfg.image_size, seed)
    with _file_lock(path):
        if path.exists():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net = DomainNet(channels, state["num_classes"])
                net.load_state_dict(state["state_dict"])
                return net.eval().requires_grad_(False).to(device), float(state["heldout_accuracy"])
            except Exception:  # torn or foreign file: retrain and overwrite it
                pass
        d = training_data(data_cfg, data)
        t0 = time.perf_counter()
        net = train_classifier(d.train_x, d.train_y, d.num_classes, seed)
        acc = accuracy(net, d.test_x, d.test_y)
        state = {"state_dict": net.state_dict(), "num_classes": d.num_classes, "heldout_accuracy": acc,
                 "train_seconds": time.perf_counter() - t0, "data": base, "image_size": data_cfg.image_size,
                 "arch_version": ARCH_VERSION, "seed": seed, "heldout_size": len(d.test_x)}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return net.to(device), acc
