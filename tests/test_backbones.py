import pytest
import torch

from lightning_modules.backbones import BACKBONES, build
from lightning_modules.backbones import Sizes
from study.config import ConfigError, load_trial_config
from study.registry import UnknownName


@pytest.mark.parametrize("name", ["dcgan", "dcgan_nobn", "dcgan_const", "mlp"])
@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_backbone_size_and_channel_count(name, size, channels):
    cfg = Sizes(nz=10, width=4, mlp_width=16)
    g, d = build(name, "generator", cfg, (channels, size, size)), build(name, "critic", cfg, (channels, size, size))
    x = g(torch.randn(3, 10))
    assert x.shape == (3, channels, size, size)
    assert d(x).shape == (3,)


def test_generator_and_critic_mix_and_points():
    cfg = Sizes(nz=10, width=4, mlp_width=16)
    g, d = build("mlp", "generator", cfg, (1, 32, 32)), build("dcgan", "critic", cfg, (1, 32, 32))
    assert d(g(torch.randn(5, 10))).shape == (5,)
    g2, d2 = build("mlp", "generator", cfg, (2,)), build("mlp", "critic", cfg, (2,))
    assert g2(torch.randn(7, 10)).shape == (7, 2) and d2(g2(torch.randn(7, 10))).shape == (7,)


def test_dcgan_layouts_match_the_reference_code():
    cfg = Sizes()  # nz 100, width 64
    g = build("dcgan", "generator", cfg, (3, 64, 64))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [512, 256, 128, 64, 3]
    const = build("dcgan_const", "generator", cfg, (3, 64, 64))
    assert [m.out_channels for m in const.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [64] * 4 + [3]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in const.modules())
    d = build("dcgan", "critic", cfg, (3, 64, 64))
    bns = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.num_features for m in bns] == [128, 256, 512]  # every conv but the first and last
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build("dcgan_nobn", "critic", cfg, (3, 64, 64)).modules())
    mlp = build("mlp", "generator", cfg, (2,))
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == 4


def test_dcgan_init():
    torch.manual_seed(0)
    d = build("dcgan", "critic", Sizes(width=64), (3, 64, 64))
    w = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    s = torch.cat([m.weight for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(s.mean().item() - 1.0) < 0.01


def test_unknown_backbone_is_one_line_listing_the_known_ones():
    with pytest.raises(UnknownName) as e:
        BACKBONES.get("dcgann")
    assert str(e.value) == "unknown backbone 'dcgann' (known: dcgan, dcgan_const, dcgan_nobn, mlp)"
    with pytest.raises(ConfigError) as e:
        load_trial_config({"backbone": {"generator": "mlp", "critic": "dcgann"}}, "x.yaml")
    assert "\n" not in str(e.value) and "backbone.critic" in str(e.value) and "known: dcgan" in str(e.value)


def test_image_backbone_on_points_is_a_config_error():
    with pytest.raises(ConfigError, match="needs image data"):
        load_trial_config({"backbone": "dcgan", "data": {"name": "ring8"}})
