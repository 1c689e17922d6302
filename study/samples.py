"""Sample pictures: image grids for image data, scatter plots over the modes for 2-D toys."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from study.io import atomic_path

GRID_COLUMNS = 8


def save_grid(x: torch.Tensor, path: Path, modes: Optional[torch.Tensor] = None, title: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.dim() == 4:
        from torchvision.utils import save_image
        with atomic_path(path) as tmp:
            save_image(x.float().cpu(), tmp, format="png", nrow=GRID_COLUMNS, normalize=True, value_range=(-1, 1))
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = x.float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, label="generated")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], s=30, c="red", marker="x", label="mode centres")
    ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal", title=title)
    ax.title.set_fontsize(8)
    ax.legend(loc="upper right", fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
