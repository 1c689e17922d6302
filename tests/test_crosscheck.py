"""torchmetrics and torch-fidelity, two implementations of FID and KID, on the same fixed features.

Tolerances (why: study/eval/crosscheck.py): FID relative 1e-5 (torch-fidelity averages float32 features and
takes scipy's sqrtm, torchmetrics sums in float64 and uses eigenvalues of sigma_1 sigma_2; ~1e-7 measured), KID
relative 1e-9 (the same unbiased MMD^2 of the same sets in float64, summed in another order; ~1e-15 measured).
"""
import pytest
import torch

from study.eval import fid as F
from study.eval.crosscheck import torchmetrics_fid_kid


class Identity(torch.nn.Module):
    """Features in, features out: torchmetrics then sees exactly the features torch-fidelity sees."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x.double()


@pytest.mark.parametrize("dim,n_real,n_gen", [(64, 1000, 2000), (128, 500, 500), (16, 300, 200)])
def test_torchmetrics_agrees_with_torch_fidelity_on_fixed_features(dim, n_real, n_gen):
    g = torch.Generator().manual_seed(dim)
    real = 3 * torch.randn(n_real, dim, generator=g).relu()  # ReLU-like features, as a classifier's
    fake = 3 * (1.1 * torch.randn(n_gen, dim, generator=g) + 0.2).relu()
    tm_fid, tm_kid, m = torchmetrics_fid_kid(Identity(dim), real, fake, batch=128)
    assert m == min(n_real, n_gen)
    tf_fid = F.fid(F.fid_stats(real), F.fid_stats(fake))
    tf_kid = F.kid(real[:m], fake[:m], subsets=1, subset_size=m)
    assert tf_fid > 1 and tm_fid == pytest.approx(tf_fid, rel=1e-5)
    assert tf_kid > 0.1 and tm_kid == pytest.approx(tf_kid, rel=1e-9)
    # with equal N the 10 random subsets of the reported KID are the whole sets: the same number again
    if n_real == n_gen:
        assert F.kid(real, fake) == pytest.approx(tm_kid, rel=1e-9)
