"""Generators and critics shared by both algorithms: plain nn.Modules, built by name.

Interface: G(z) with z of shape (N, nz) -> samples of the data's shape; D(x) -> (N,) raw scores
(logits for the GAN, critic values for the WGAN: no sigmoid here). A critic's `main` ends in its
output layer (`head`); `features(x)` is everything before it, where a conditional model puts its class
head. (One `main` Sequential keeps the state-dict keys of checkpoints written before the class head.)
Architectures follow the WGAN reference code (martinarjovsky/WassersteinGAN, models/dcgan.py, mlp.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lightning_modules.registry import Registry

Shape = tuple[int, ...]
LEAK = 0.2  # LeakyReLU slope of the DCGAN critic


@dataclass(frozen=True)
class Sizes:
    """Plain sizes a backbone is built from (the harness fills them from its model config)."""
    nz: int = 100              # noise dimension
    width: int = 64            # DCGAN ngf = ndf
    mlp_width: int = 512       # the paper's MLP: 4 x 512
    extra_layers: int = 0      # DCGAN extra 3x3 conv layers
    critic_norm: str = "batch"  # where the DCGAN critic has batch norm: "batch", "layer" (per-sample: a
                                # gradient penalty needs it) or "none"


@dataclass(frozen=True)
class Backbone:
    generator: Callable[[Sizes, Shape], nn.Module]
    critic: Callable[[Sizes, Shape], nn.Module]
    kinds: tuple[str, ...]  # data kinds it accepts: "image", "points"


BACKBONES: Registry[Backbone] = Registry("backbone")


def _check_size(shape: Shape) -> int:
    size = shape[-1]
    if size % 16 or size < 16:
        raise ValueError(f"DCGAN needs an image size that is a multiple of 16, got {size}")
    return size


class DCGANGenerator(nn.Module):
    """ConvTranspose stack from 4x4 to the image size; filters halve as resolution doubles
    (`constant=True`: the same `width` filters in every layer, the paper's Fig. 6)."""

    def __init__(self, cfg: Sizes, shape: Shape, bn: bool = True, constant: bool = False):
        super().__init__()
        nc, size = shape[0], _check_size(shape)
        self.nz = cfg.nz
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        # filters at the 4x4 layer: width * size / 8, so the last hidden layer has `width`
        c = cfg.width if constant else cfg.width * size // 8
        layers: list[nn.Module] = [nn.ConvTranspose2d(cfg.nz, c, 4, 1, 0, bias=False), norm(c), nn.ReLU(True)]
        res = 4
        while res < size // 2:
            out = c if constant else c // 2
            layers += [nn.ConvTranspose2d(c, out, 4, 2, 1, bias=False), norm(out), nn.ReLU(True)]
            c, res = out, res * 2
        for _ in range(cfg.extra_layers):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), norm(c), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(c, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(len(z), self.nz, 1, 1))


def _critic_norm(kind: str) -> Callable[[int], nn.Module]:
    """Layer norm of a conv feature map over (C, H, W) with per-channel affine is GroupNorm with one group."""
    return {"batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c),
            "none": lambda c: nn.Identity()}[kind]


class DCGANCritic(nn.Module):
    """Strided convs down to 4x4 with LeakyReLU(0.2), BN after every conv but the first (or what
    `critic_norm` puts in its place), and a final 4x4 conv to one number (no sigmoid)."""

    def __init__(self, cfg: Sizes, shape: Shape, bn: bool = True):
        super().__init__()
        nc, size = shape[0], _check_size(shape)
        norm = _critic_norm(cfg.critic_norm if bn else "none")
        c = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(nc, c, 4, 2, 1, bias=False), nn.LeakyReLU(LEAK, True)]
        for _ in range(cfg.extra_layers):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), norm(c), nn.LeakyReLU(LEAK, True)]
        res = size // 2
        while res > 4:
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), norm(2 * c), nn.LeakyReLU(LEAK, True)]
            c, res = 2 * c, res // 2
        self.feature_channels = c
        self.main = nn.Sequential(*layers, self.make_head(1))

    def make_head(self, outputs: int) -> nn.Module:
        """The final 4x4 conv, to `outputs` numbers per image (1: the critic; K: class logits)."""
        return nn.Conv2d(self.feature_channels, outputs, 4, 1, 0, bias=False)

    @property
    def head(self) -> nn.Module:
        return self.main[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.main[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(len(x))


def _mlp_body(n_in: int, hidden: int) -> list[nn.Module]:
    """The paper's MLP (4 Linear layers with ReLU between) up to its last Linear."""
    return [nn.Linear(n_in, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden), nn.ReLU(True)]


def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(*_mlp_body(n_in, hidden), nn.Linear(hidden, n_out))


class MLPGenerator(nn.Module):
    """Linear output, as the reference code's MLP_G (no tanh)."""

    def __init__(self, cfg: Sizes, shape: Shape):
        super().__init__()
        self.shape = shape
        self.main = _mlp(cfg.nz, math.prod(shape), cfg.mlp_width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z).view(len(z), *self.shape)


class MLPCritic(nn.Module):
    def __init__(self, cfg: Sizes, shape: Shape):
        super().__init__()
        self.hidden = cfg.mlp_width
        self.main = nn.Sequential(*_mlp_body(math.prod(shape), cfg.mlp_width), self.make_head(1))

    def make_head(self, outputs: int) -> nn.Module:
        return nn.Linear(self.hidden, outputs)

    @property
    def head(self) -> nn.Module:
        return self.main[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.main[:-1](x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.flatten(1)).view(len(x))


class ConditionalGenerator(nn.Module):
    """AC-GAN generator: G(z * embed(y)), the class embedded in nz dimensions and multiplied into
    the noise (Odena et al.'s reference code), then any backbone generator."""

    def __init__(self, backbone: nn.Module, num_classes: int, nz: int):
        super().__init__()
        self.backbone, self.embed = backbone, nn.Embedding(num_classes, nz)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.backbone(z * self.embed(y))


class ConditionalCritic(nn.Module):
    """AC-GAN critic: the backbone's features feed its own head (the adversarial output, unchanged)
    and a class head of the same form with one logit per class. Returns (scores (N,), logits (N, K))."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone, self.class_head = backbone, backbone.make_head(num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone.features(x)
        return self.backbone.head(h).view(len(x)), self.class_head(h).flatten(1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02), BN scale N(1, 0.02), BN shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


BACKBONES.register("dcgan", Backbone(lambda c, s: DCGANGenerator(c, s), lambda c, s: DCGANCritic(c, s), ("image",)))
BACKBONES.register("dcgan_nobn", Backbone(lambda c, s: DCGANGenerator(c, s, bn=False),
                                          lambda c, s: DCGANCritic(c, s, bn=False), ("image",)))
# Fig. 6 pairs the constant-filter, BN-free generator with a standard DCGAN critic.
BACKBONES.register("dcgan_const", Backbone(lambda c, s: DCGANGenerator(c, s, bn=False, constant=True),
                                           lambda c, s: DCGANCritic(c, s), ("image",)))
BACKBONES.register("mlp", Backbone(MLPGenerator, MLPCritic, ("image", "points")))


def build(name: str, role: str, cfg: Sizes, shape: Shape) -> nn.Module:
    """Build the `role` ("generator" | "critic") network of backbone `name` for data of `shape`."""
    backbone = BACKBONES.get(name)
    net = getattr(backbone, role)(cfg, shape)
    dcgan_init(net)
    return net


def make_conditional(generator: nn.Module, critic: nn.Module, num_classes: int, nz: int) -> tuple[nn.Module, nn.Module]:
    """The AC-GAN pair around built backbones. Call it after building both: the backbones then hold
    exactly the unconditional pair's weights under the same seed. The class head is initialised as
    its backbone's head (a conv head N(0, 0.02), a Linear one torch's default); the embedding N(0, 1)."""
    g, d = ConditionalGenerator(generator, num_classes, nz), ConditionalCritic(critic, num_classes)
    dcgan_init(d.class_head)
    return g, d
