"""Mode coverage: toy mixtures (VEEGAN / PacGAN metrics) and labelled images (by a classifier).

Definitions followed:
- Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational
  Learning", Sec. 5.1: a generated point is *high quality* when it lies within three standard
  deviations of its nearest mode centre; report the number of modes captured and the fraction
  of high-quality samples.
- Lin et al. 2018, "PacGAN: The power of two samples in GANs", Sec. 4.1 / Table 1 (same metrics,
  plus the reverse KL between the generated distribution over modes and the true, uniform one)
  and Table 2 (stacked MNIST: a pre-trained MNIST classifier labels each of the 3 channels, a
  mode is one of the 1,000 label triples, "modes" counts the triples that occur, KL is the KL of
  the generated histogram to uniform). In the authors' released code (fjxmlzn/PacGAN,
  pacgan/extensions.py) each high-quality sample is assigned to its nearest mode and a mode is
  captured when at least one high-quality sample is assigned to it: `min_count=1` below.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
from scipy.spatial.distance import cdist

ArrayLike = Union[np.ndarray, torch.Tensor]


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def kl_to_reference(counts: np.ndarray, reference: Optional[np.ndarray] = None) -> float:
    """KL(p || q) with p = counts / sum (the generated histogram) and q = `reference` (uniform by
    default): the "reverse KL" of PacGAN, finite when modes are missing. NaN for an empty histogram."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return math.nan
    p = counts / total
    q = np.full(len(p), 1.0 / len(p)) if reference is None else np.asarray(reference, dtype=float) / np.sum(reference)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def toy_mode_stats(samples: ArrayLike, centres: ArrayLike, std: float, min_count: int = 1,
                   num_std: float = 3.0) -> dict:
    """VEEGAN / PacGAN mode statistics of 2-D samples of a Gaussian mixture with isotropic `std`.

    Returns `modes` (modes with >= min_count high-quality samples: PacGAN's count), `modes_hq` (modes holding
    MIN_SHARE of their uniform share of the high-quality samples, as images count them), `hq` (fraction within
    num_std * std of their nearest centre; 1 - exp(-9/2) = 98.9% for exact samples in 2-D) and
    `mode_kl` (KL of the histogram of high-quality samples over modes to uniform; NaN if none is
    high quality). Non-finite samples count as low quality.
    """
    x, c = _np(samples).reshape(len(samples), -1), _np(centres)
    if len(x) == 0:
        return {"modes": 0, "hq": math.nan, "mode_kl": math.nan, "modes_hq": 0}
    with np.errstate(invalid="ignore"):
        dist = np.nan_to_num(cdist(x, c), nan=np.inf)
    nearest, d = dist.argmin(axis=1), dist.min(axis=1)
    hq = d < num_std * std
    counts = np.bincount(nearest[hq], minlength=len(c))
    return {"modes": int((counts >= min_count).sum()), "hq": float(hq.mean()), "mode_kl": kl_to_reference(counts),
            "modes_hq": confident_mode_stats(nearest, hq, len(c))["modes"]}


def label_mode_stats(pred_labels: ArrayLike, num_modes: int, reference: Optional[np.ndarray] = None) -> dict:
    """Modes covered (labels predicted at least once) and KL of the predicted-label histogram to the
    reference distribution (uniform by default): PacGAN Table 2's metrics for stacked MNIST, and
    "classes covered" for MNIST."""
    labels = _np(pred_labels).astype(np.int64).ravel()
    counts = np.bincount(labels, minlength=num_modes)[:num_modes]
    return {"modes": int((counts > 0).sum()), "mode_kl": kl_to_reference(counts, reference)}


def expected_modes_uniform(num_modes: int, n: int) -> float:
    """Modes a perfect (uniform) generator covers on average with n samples: K (1 - (1 - 1/K)^n).
    Stacked MNIST with n = 2,000 gives 864.9 of 1,000 (PacGAN used 26,000 samples)."""
    return float(num_modes * (1.0 - (1.0 - 1.0 / num_modes) ** n))


MIN_SHARE = 0.1  # a mode counts as covered with >= 10% of its uniform share of the confident samples


def confident_mode_stats(labels: ArrayLike, confident: ArrayLike, num_modes: int, min_share: float = MIN_SHARE) -> dict:
    """Modes covered by *confident* samples only, as the toys count modes over high-quality samples.

    Counting every sample's argmax lets a classifier's guesses on blurry images invent or hide
    classes; counting confident ones asks "which modes does the generator produce recognisably".
    A mode is covered when it holds at least `min_share` of its uniform share of the confident
    samples (and at least one), so a few stray misreadings of a collapsed generator do not count.
    Returns `modes` and `hq` (fraction of samples that are confident)."""
    lab, ok = _np(labels).astype(np.int64).ravel(), _np(confident).astype(bool).ravel()
    n_conf = int(ok.sum())
    if n_conf == 0:
        return {"modes": 0, "hq": 0.0}
    counts = np.bincount(lab[ok], minlength=num_modes)[:num_modes]
    need = max(1.0, min_share * n_conf / num_modes)
    return {"modes": int((counts >= need).sum()), "hq": n_conf / len(lab)}
