"""Backbones, losses, constraints and the one LightningModule of the study, configured per algorithm.
Model code: it imports nothing of the harness (`study/`)."""
from lightning_modules import algos  # noqa: F401  (registers every algorithm)
from lightning_modules.adversarial import AdversarialModule, Diverged
from lightning_modules.algorithms import ALGORITHMS, Algorithm

__all__ = ["ALGORITHMS", "Algorithm", "AdversarialModule", "Diverged"]
