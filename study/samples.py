"""Sample pictures: image grids for image data, scatter plots over the modes for 2-D toys.

Toy scatters are rasterised with numpy and PIL rather than matplotlib: a trial saves one at every
evaluation point, and matplotlib's figure + savefig (~110 ms) was the largest part of evaluating a
tiny ring8 trial; this takes a few milliseconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from study.io import atomic_path

GRID_COLUMNS = 8
SCATTER_PX = 400          # square canvas
SCATTER_LIMIT = 2.5       # axes span [-2.5, 2.5]: both toys (ring8, grid25) lie within +-2.1
POINT_ALPHA = 0.4         # opacity of one point; overlapping points darken
BLUE, RED = np.array([31, 119, 180]), (214, 39, 40)


def save_grid(x: torch.Tensor, path: Path, modes: Optional[torch.Tensor] = None, title: str = "",
              nrow: Optional[int] = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.dim() == 4:
        from torchvision.utils import save_image
        with atomic_path(path) as tmp:
            save_image(x.float().cpu(), tmp, format="png", nrow=nrow or GRID_COLUMNS, normalize=True,
                       value_range=(-1, 1))
        return
    with atomic_path(path) as tmp:
        scatter_image(x, modes, title).save(tmp, format="png")


def scatter_image(x: torch.Tensor, modes: Optional[torch.Tensor] = None, title: str = ""):
    """2-D points as a PIL image: blue dots (opacity accumulates), red crosses at the mode centres,
    a title line and a legend line."""
    from PIL import Image, ImageDraw
    n, lim = SCATTER_PX, SCATTER_LIMIT
    pts = x.detach().float().cpu().numpy().reshape(len(x), -1)[:, :2]
    pts = pts[np.isfinite(pts).all(1)]
    ij = np.floor((pts * [1, -1] + lim) / (2 * lim) * n).astype(np.int64)  # y grows upwards
    ij = ij[((ij >= 0) & (ij < n - 1)).all(1)]
    counts = np.zeros((n, n))
    for di in (0, 1):  # 2 x 2 pixel dots
        for dj in (0, 1):
            np.add.at(counts, (ij[:, 1] + dj, ij[:, 0] + di), 1)
    alpha = (1 - (1 - POINT_ALPHA) ** counts)[..., None]
    rgb = (255 * (1 - alpha) + BLUE * alpha).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(img)
    if modes is not None:
        for mx, my in modes.float().cpu().numpy():
            cx, cy = (mx + lim) / (2 * lim) * n, (lim - my) / (2 * lim) * n
            draw.line([(cx - 5, cy - 5), (cx + 5, cy + 5)], fill=RED, width=2)
            draw.line([(cx - 5, cy + 5), (cx + 5, cy - 5)], fill=RED, width=2)
    draw.rectangle([0, 0, n - 1, n - 1], outline=(0, 0, 0))
    draw.text((6, 4), title, fill=(0, 0, 0))
    draw.text((6, n - 14), f"blue: generated ({len(pts)})   red x: mode centres   axes: [-{lim}, {lim}]^2",
              fill=(0, 0, 0))
    return img
