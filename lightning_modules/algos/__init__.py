"""One file per algorithm; importing this package registers them all (lightning_modules.ALGORITHMS)."""
from lightning_modules.algos import gan, wgan, wgan_gp, wgan_sn  # noqa: F401
