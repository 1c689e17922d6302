"""Strict setting types shared by the harness's config and each algorithm's own settings.

Wrong types are errors, never conversions: `gen_iters: true` is not 1, `batch_size: "64"` is not 64, and a
float must be a finite number (`clip: .inf` would train a WGAN without clipping). An int is a number too.
Pydantic only: model code stays below the harness and imports nothing of it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

Int = StrictInt
Bool = StrictBool
Float = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Beta = Annotated[StrictFloat, Field(ge=0, lt=1, allow_inf_nan=False)]  # Adam's moment decays live in [0, 1)
CriticNorm = Literal["batch", "layer", "none"]  # what the DCGAN critic uses where the reference code has batch norm


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptimSettings(Strict):
    """Every algorithm's optimizer block; its subclass sets the defaults (= the paper's settings)."""
    optimizer: Literal["adam", "rmsprop"]
    lr: Float = Field(gt=0)
    betas: tuple[Beta, Beta] = (0.5, 0.999)     # Adam only (reference code's --adam uses beta1 = 0.5)
