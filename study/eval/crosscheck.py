"""FID and KID a second time, by torchmetrics: an independent implementation fed the same extractor and images.

torch-fidelity (study/eval/fid.py) gives every reported number. At the final evaluation torchmetrics'
`FrechetInceptionDistance` and `KernelInceptionDistance` are handed the same domain extractor as their
custom `feature` module and the same uint8 images; they run it themselves and keep their own statistics (a
one-pass covariance in float64, eigenvalues of sigma_1 sigma_2 instead of scipy's sqrtm; their own kernel
sums). Both values go to result.json's `crosscheck`, and the report shows how far apart they are.

Agreement to expect (measured, tests/test_eval_metrics.py): FID within a relative 1e-5 (torch-fidelity
averages float32 features and takes scipy's matrix square root; differences of ~1e-7 seen), KID within 1e-9
(the same unbiased MMD^2 on the same sets in float64; only summation order differs). KID is compared on the
first m = min(N_real, N_gen) samples of each, as one subset: torchmetrics draws subsets with its own RNG, so
the 10 random subsets of `eval/kid@domain` could not be matched (with equal N they are the same number).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from study.eval import fid as F

# Relative differences the two implementations stay within (measured and explained above; the report flags more).
RTOL = {"fid": 1e-5, "kid": 1e-9}


class TorchmetricsFeatures(nn.Module):
    """torchmetrics' custom-feature interface around a torch-fidelity extractor: uint8 N x C x H x W in,
    N x D float64 features out, on the CPU where torchmetrics keeps its state. `num_features` spares
    torchmetrics its probe with a random 299 x 299 image, which the domain net cannot read."""

    def __init__(self, extractor: nn.Module, key: str, num_features: int):
        super().__init__()
        self.extractor, self.key, self.num_features = extractor, key, num_features

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.extractor.convert_features_tuple_to_dict(self.extractor(x))[self.key]
        return out.reshape(len(x), -1).double().cpu()


def torchmetrics_fid_kid(feats: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                         batch: int = 1000) -> tuple[float, float, int]:
    """(FID of all inputs, KID of the first m of each as one subset, m) by torchmetrics; `feats` maps a batch
    of inputs to N x D features and has `num_features` = D."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    m = min(len(real), len(fake))
    fid = FrechetInceptionDistance(feature=feats)
    with warnings.catch_warnings():  # "KID keeps every feature in memory": 2 x m x D floats, intended
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=feats, subsets=1, subset_size=m)
    for inputs, is_real in ((real, True), (fake, False)):
        for i in range(0, len(inputs), batch):
            fid.update(inputs[i:i + batch], real=is_real)
            if i < m:
                kid.update(inputs[i:min(i + batch, m)], real=is_real)
    with torch.random.fork_rng(devices=[]):  # KID's subset draw must not move the caller's RNG
        kid_value = float(kid.compute()[0])
    return float(fid.compute()), kid_value, m


def crosscheck(extractor: nn.Module, key: str, label: str, real_u8: torch.Tensor, real_stats: dict,
               fake_u8: torch.Tensor, fake_features: torch.Tensor) -> dict:
    """{'fid@<label>': {...}, 'kid@<label>': {...}}: each with torch_fidelity, torchmetrics and rel_diff.
    torch-fidelity's FID is computed exactly as the evaluator's (cached real statistics, the same features)."""
    feats = TorchmetricsFeatures(extractor, key, int(real_stats["features"].shape[1]))
    tm_fid, tm_kid, m = torchmetrics_fid_kid(feats, real_u8, fake_u8)
    tf_fid = F.fid(real_stats, F.fid_stats(fake_features))
    tf_kid = F.kid(real_stats["features"][:m], fake_features[:m], subsets=1, subset_size=m)
    return {f"fid@{label}": _pair(tf_fid, tm_fid, len(real_u8), len(fake_u8)),
            f"kid@{label}": _pair(tf_kid, tm_kid, m, m)}


def _pair(tf: float, tm: float, n_real: int, n_gen: int) -> dict:
    scale = max(abs(tf), abs(tm))
    return {"torch_fidelity": tf, "torchmetrics": tm, "rel_diff": abs(tf - tm) / scale if scale else 0.0,
            "n_real": n_real, "n_gen": n_gen}
