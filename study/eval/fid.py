"""FID and KID through torch-fidelity (the reference implementation), from feature arrays.

- The Fréchet and kernel math are torch-fidelity's own functions (`fid_features_to_statistics`,
  `fid_statistics_to_metric`, `kid_features_to_metric`), never rewritten here.
- The domain classifier is registered in torch-fidelity's feature-extractor registry, so
  `torch_fidelity.calculate_metrics(..., feature_extractor=<name>)` gives the same numbers.
- Real-data features and statistics are cached on disk per (data set, split, extractor, N),
  with N stored beside them: FID is biased in N, so numbers with different N are not compared.
- Inception-v3 (`inception-v3-compat`) is used only when its weights can be had without a long
  failing download: a given path, torch hub's cache, or a machine that can reach github.com. The
  weights file's sha256 is recorded and is part of the real statistics' cache key.
- Inception Score and precision/recall are torch-fidelity's (`isc_features_to_metric`,
  `prc_features_to_metric`) too.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch
import torch.nn as nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric, KEY_METRIC_FID
from torch_fidelity.metric_isc import isc_features_to_metric, KEY_METRIC_ISC_MEAN
from torch_fidelity.metric_kid import kid_features_to_metric, KEY_METRIC_KID_MEAN
from torch_fidelity.metric_prc import prc_features_to_metric, KEY_METRIC_PRECISION, KEY_METRIC_RECALL
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

# 10 subsets of up to 1,000: ~0.1 s each on 2 CPU cores (torch-fidelity's default 100 would cost ~10 s a call);
# one when the subset size equals both N (see kid()).
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 10, 1000, 2020
# Precision/recall (Kynkaanniemi et al. 2019): k-th nearest neighbour balls, k = 3 as torch-fidelity and the
# paper; distances in blocks of this many rows, so memory stays rows x N however large N is.
PRC_NEIGHBOURHOOD, PRC_BLOCK = 3, 1000
# The standard FID weights: torch-fidelity's weights-inception-2015-12-05-6726825d.pth, the TF 2015-12-05
# Inception converted for PyTorch (pytorch-fid's pt_inception-2015-12-05); the name carries its sha256's start.
STANDARD_INCEPTION = "pt_inception-2015-12-05"
STANDARD_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

try:  # ships with scikit-learn (via mlxtend); optional
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _one_blas_thread():
    """numpy's OpenBLAS ignores torch.set_num_threads. With parallel workers on 2 cores its threads
    oversubscribe: a 192 x 192 eigvals took 1.24 s with 2 threads vs 0.018 s with one (measured)."""
    return threadpool_limits(1, user_api="blas") if threadpool_limits is not None else nullcontext()


# ----------------------------------------------------------------------------- metric math (torch-fidelity's)
def fid_stats(features: torch.Tensor) -> dict:
    """{'mu', 'sigma'} of N x D features, by torch-fidelity."""
    with _one_blas_thread():
        return fid_features_to_statistics(features.detach().cpu().float())


def fid(stats_1: dict, stats_2: dict) -> float:
    with _one_blas_thread():
        return float(fid_statistics_to_metric(stats_1, stats_2, verbose=False)[KEY_METRIC_FID])


def kid(features_1: torch.Tensor, features_2: torch.Tensor, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> float:
    """Mean unbiased MMD^2 (cubic polynomial kernel) over random subsets, by torch-fidelity.
    The subset size is capped at the smaller N so that unequal N_real / N_gen still work."""
    size = min(subset_size, len(features_1), len(features_2))
    if size == len(features_1) == len(features_2):
        # every "subset" is then the whole of both sets in another order, and the unbiased MMD^2 does
        # not depend on order: the 10 subsets would compute one number 10 times (90% of a final eval)
        subsets = 1
    # float64: KID is a small difference of large kernel means (~1e-3 for a good generator), where
    # float32 sums carry ~1e-6 of rounding that depends on the summation order
    with _one_blas_thread():
        out = kid_features_to_metric(features_1.detach().cpu().double(), features_2.detach().cpu().double(),
                                     kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN])


def inception_score(logits: torch.Tensor) -> float:
    """Inception Score exp(E KL(p(y|x) || p(y))) of N x K logits, mean over torch-fidelity's 10 splits.
    N x C x K logits (stacked MNIST: one digit per channel) are read as one joint class of K^C, the
    channels independent: log p(a, b, c) = log p(a) + log p(b) + log p(c)."""
    lp = logits.detach().cpu().double().log_softmax(-1)
    if lp.dim() == 3:
        joint = lp[:, 0]
        for c in range(1, lp.shape[1]):  # (a, b) -> a * K + b, the order of the mode labels
            joint = (joint[:, :, None] + lp[:, c, None, :]).reshape(len(lp), -1)
        lp = joint
    return float(isc_features_to_metric(lp)[KEY_METRIC_ISC_MEAN])  # softmax(log p) = p


def precision_recall(generated: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """(precision, recall) of features: the share of generated samples inside the real samples' k-NN balls,
    and of real samples inside the generated ones' (torch-fidelity; on the device of `generated`)."""
    out = prc_features_to_metric(generated.float(), real.to(generated.device).float(), save_cpu_ram=True,
                                 prc_neighborhood=PRC_NEIGHBOURHOOD, prc_batch_size=PRC_BLOCK, verbose=False)
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])


# ----------------------------------------------------------------------------- images and extractors
def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Data-space images in [-1, 1] -> uint8, torch-fidelity's input convention (and what saving
    generated images to files would do). Real images (uint8 / 127.5 - 1) round-trip exactly."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class DomainExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor around a DomainNet. Input: uint8 N x C x H x W; a C-channel
    image is read one channel at a time when the net takes fewer channels (stacked MNIST: the MNIST
    classifier on R, G and B), features concatenated (N x C*D), logits stacked (N x C x K)."""

    shared_net: nn.Module  # set on the subclass that register_domain_extractor creates

    def __init__(self, name: str, features_list: list[str], **kwargs):
        super().__init__(name, features_list)
        self.net = type(self).shared_net

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert x.dtype == torch.uint8 and x.dim() == 4, "expects uint8 N x C x H x W"
        x = x.to(next(self.net.parameters()).device).float() / 127.5 - 1.0
        n, c = x.shape[:2]
        per = self.net.body[0].in_channels
        if c != per:  # per-channel: fold channels into the batch
            x = x.reshape(n * c // per, per, *x.shape[2:])
        feats, logits = self.net.features_and_logits(x)
        out = {"features": feats.reshape(n, -1), "logits": logits.reshape(n, c // per, -1)}
        return tuple(out[k] for k in self.features_list)


def register_domain_extractor(name: str, net: nn.Module) -> str:
    """Register `net` under `name` in torch-fidelity's registry (idempotent per name: names carry
    the cache key, so one name is one set of weights)."""
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, type(name, (DomainExtractor,), {"shared_net": net}))
    else:
        FEATURE_EXTRACTORS_REGISTRY[name].shared_net = net  # same weights, maybe another device
    return name


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch: int = 500,
            transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict[str, torch.Tensor]:
    """Run a torch-fidelity extractor over uint8 images in batches; {feature name: N x ... on CPU}."""
    device = next(extractor.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(images), batch):
        xb = images[i:i + batch].to(device)
        out = extractor(transform(xb) if transform else xb)
        for k, v in extractor.convert_features_tuple_to_dict(out).items():
            parts.setdefault(k, []).append(v.cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------- real statistics cache
def images_digest(images: torch.Tensor) -> str:
    """Content hash of the real images: the cache key can never outlive a change of data."""
    return hashlib.sha1(images.cpu().contiguous().numpy().tobytes()).hexdigest()[:12]


def real_stats(cache_dir: Path, data_name: str, split: str, extractor_name: str, images: torch.Tensor,
               compute: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """{'features', 'mu', 'sigma', 'n'} of the real `images` (uint8), computed once and cached in
    <cache_dir>/real_stats as npz, keyed by data set, split, extractor, N and content."""
    n = len(images)
    path = Path(cache_dir) / "real_stats" / f"{data_name}_{split}_{extractor_name}_n{n}_{images_digest(images)}.npz"
    if path.exists():
        z = np.load(path)
        if int(z["n"]) == n:
            return {"features": torch.from_numpy(z["features"]), "mu": z["mu"], "sigma": z["sigma"], "n": n}
    feats = compute(images).float()
    st = fid_stats(feats)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, features=feats.numpy(), mu=st["mu"], sigma=st["sigma"], n=n)
    os.replace(tmp, path)
    return {"features": feats, "mu": st["mu"], "sigma": st["sigma"], "n": n}


def require_same_n(eval_infos: Iterable[dict]) -> None:
    """Refuse to compare FID/KID computed with different sample counts (FID is biased in N):
    raises ValueError unless every eval_info has the same num_samples and real N per extractor."""
    seen: dict[str, object] = {}
    for info in eval_infos:
        for key, value in [("num_samples", info.get("num_samples"))] + sorted((info.get("n_real") or {}).items()):
            if key in seen and seen[key] != value:
                raise ValueError(f"FID/KID not comparable: {key} differs ({seen[key]} vs {value}); "
                                 "use one eval.num_samples across everything compared")
            seen[key] = value


# ----------------------------------------------------------------------------- Inception weights
def hub_inception_file() -> Path:
    """Where torch-fidelity's download lands (torch.hub.load_state_dict_from_url's cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)


def _online(host: str = "github.com", timeout: float = 3.0) -> bool:
    """Quick reachability probe, in a thread so a hanging DNS lookup cannot stall us either."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inception_weights_info(path: Optional[str]) -> dict:
    """{'file', 'sha256', 'standard'} of the weights torch-fidelity loaded (a given path, else hub's cache)."""
    file = Path(path).expanduser() if path else hub_inception_file()
    sha = sha256_file(file)
    return {"file": str(file), "sha256": sha, "standard": sha == STANDARD_INCEPTION_SHA256}


def find_inception_weights(path: Optional[str]) -> tuple[bool, Optional[str], str]:
    """(usable, feature_extractor_weights_path for torch-fidelity, note). A given path must exist;
    otherwise torch hub's cache is used, or torch-fidelity downloads when online. Never fakes."""
    if path:
        p = Path(path).expanduser()
        if p.is_file():
            return True, str(p), ""
        return False, None, f"inception skipped: weights not found at {p} (eval.inception_weights)"
    if hub_inception_file().is_file():
        return True, None, ""
    if _online():
        return True, None, f"inception weights: downloaded by torch-fidelity to {hub_inception_file()} on first use"
    return False, None, (f"inception skipped: weights not found at {hub_inception_file()} and no internet to "
                         f"download them; set eval.inception_weights: PATH ({URL_INCEPTION_V3})")
