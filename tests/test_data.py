import pytest
import torch

from study.config import DataConfig
from study.data import DataError, RealSampler, load_dataset, toy_modes


@pytest.mark.parametrize("size", [16, 32, 64])
def test_mnist5k_shapes_range_and_balance(size):
    d = load_dataset(DataConfig(name="mnist5k", image_size=size))
    assert d.train_x.shape == (4000, 1, size, size) and d.test_x.shape == (1000, 1, size, size)
    assert d.train_x.min().item() == pytest.approx(-1.0) and d.train_x.max().item() == pytest.approx(1.0, abs=0.02)
    assert d.train_y.bincount().tolist() == [400] * 10 and d.test_y.bincount().tolist() == [100] * 10


def test_stacked_mnist5k_has_1000_modes():
    d = load_dataset(DataConfig(name="stacked_mnist5k", synthetic_size=20000, holdout=1000))
    assert d.train_x.shape == (20000, 3, 32, 32) and d.num_classes == 1000
    assert d.train_y.unique().numel() > 990 and d.train_y.max() < 1000


@pytest.mark.parametrize("name,k,radius", [("ring8", 8, 2 / 1.414), ("grid25", 25, 4 * 2 ** 0.5 / 2.828)])
def test_toys_are_the_standard_mixtures(name, k, radius):
    d = load_dataset(DataConfig(name=name, synthetic_size=50000))
    centres, std = toy_modes(name)
    assert len(centres) == k and centres.norm(dim=1).max().item() == pytest.approx(radius, rel=1e-4)
    dist = torch.cdist(d.train_x, centres).min(1).values
    assert (dist < 3 * std).float().mean().item() > 0.98  # 2-D Gaussian mass within 3 std: 98.9%
    assert d.train_y.bincount().min().item() > 50000 / k * 0.9


def test_split_does_not_depend_on_the_trial():
    a, b = load_dataset(DataConfig(name="ring8")), load_dataset(DataConfig(name="ring8"))
    assert torch.equal(a.test_x, b.test_x)


def test_sampler_is_reproducible_and_resumable():
    d = load_dataset(DataConfig(name="ring8", synthetic_size=1000))
    s = RealSampler(d, 4, seed=3)
    s.next()
    state = s.state_dict()
    x1 = s.next()
    s.load_state_dict(state)
    assert torch.equal(s.next(), x1)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path)):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)))
    with pytest.raises(DataError, match="no images found"):
        load_dataset(DataConfig(name="image_folder", root=str(tmp_path)))
