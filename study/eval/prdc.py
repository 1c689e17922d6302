"""Density and coverage (Naeem, Oh, Uh, Choi, Yoo 2020, "Reliable Fidelity and Diversity Metrics for Generative
Models", ICML; the metric StudioGAN reports), on any features: a coverage that needs no classifier, reported beside
the domain CNN's mode coverage.

With B(r_i, NND_k(r_i)) the ball around real sample r_i out to its k-th nearest real neighbour (Euclidean):
  density  = 1/(kM) sum_j sum_i 1[f_j in B(r_i, NND_k(r_i))]   (M generated samples f_j; about 1 for real data)
  coverage = 1/N    sum_i 1[exists j: f_j in B(r_i, NND_k(r_i))] (N real samples: the share whose ball is reached)
"in the ball" is a strict <, as in the authors' code (clovaai/generative-evaluation-prdc). k = 5, the paper's.
"""
from __future__ import annotations

import torch

NEAREST_K = 5     # Naeem et al. 2020's k (their Sec. 4 and the prdc package's examples)
BLOCK = 4096      # generated samples per distance block: N x BLOCK floats at once, whatever M is


def real_radii(real: torch.Tensor, k: int = NEAREST_K) -> torch.Tensor:
    """Distance of every real sample to its k-th nearest other real sample (itself excluded)."""
    r = real.double()
    d = torch.cdist(r, r)
    return d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the sample itself, at 0


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = NEAREST_K) -> tuple[float, float]:
    """(density, coverage) of `fake` (M x D features) against `real` (N x D), Naeem et al. 2020."""
    if len(real) <= k or len(fake) == 0:
        return float("nan"), float("nan")
    radii = real_radii(real, k)
    r, inside_count, reached = real.double(), 0.0, torch.zeros(len(real), dtype=torch.bool)
    for block in fake.double().split(BLOCK):
        inside = torch.cdist(r, block) < radii[:, None]   # N x B: generated j inside real i's ball
        inside_count += float(inside.sum())
        reached |= inside.any(dim=1)
    return inside_count / (k * len(fake)), float(reached.double().mean())
