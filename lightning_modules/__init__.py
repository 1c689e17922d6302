"""Backbones, losses and the two LightningModules of the study."""
from study.registry import Registry

from lightning_modules.adversarial import AdversarialModule, Diverged
from lightning_modules.gan import GAN
from lightning_modules.wgan import WGAN

ALGORITHMS: Registry[type[AdversarialModule]] = Registry("loss")
ALGORITHMS.register("gan", GAN)
ALGORITHMS.register("wgan", WGAN)
