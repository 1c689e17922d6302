"""Sample pictures: toy scatters are drawn where the points are, image grids tile as asked."""
import numpy as np
import torch
from PIL import Image

from study.samples import SCATTER_LIMIT, SCATTER_PX, save_grid


def _pixel(x: float, y: float) -> tuple[int, int]:
    """(row, column) of data point (x, y) on the scatter canvas."""
    scale = SCATTER_PX / (2 * SCATTER_LIMIT)
    return int((SCATTER_LIMIT - y) * scale), int((x + SCATTER_LIMIT) * scale)


def test_toy_scatter_puts_points_and_mode_crosses_where_they_are(tmp_path):
    pts = torch.tensor([[1.0, 1.0]] * 50 + [[-1.5, 0.5]])
    modes = torch.tensor([[0.0, -2.0]])
    save_grid(pts, tmp_path / "s.png", modes, title="t")
    img = np.asarray(Image.open(tmp_path / "s.png").convert("RGB")).astype(int)
    assert img.shape == (SCATTER_PX, SCATTER_PX, 3)
    r, c = _pixel(1.0, 1.0)
    assert img[r, c, 2] > img[r, c, 0] + 100  # 50 stacked points: saturated blue
    r1, c1 = _pixel(-1.5, 0.5)
    one = img[r1, c1]
    assert one[2] > one[0] and one.sum() > img[r, c].sum()  # one point: lighter than fifty
    r2, c2 = _pixel(0.0, -2.0)
    assert img[r2, c2, 0] > 150 and img[r2, c2, 1] < 100  # the red cross at the mode centre
    r3, c3 = _pixel(-1.0, -1.0)
    assert (img[r3, c3] == 255).all()  # nothing there: white


def test_image_grid_rows(tmp_path):
    x = torch.rand(20, 1, 8, 8) * 2 - 1
    save_grid(x, tmp_path / "g.png", nrow=10)
    assert Image.open(tmp_path / "g.png").size == (10 * 8 + 11 * 2, 2 * 8 + 3 * 2)
    save_grid(x, tmp_path / "d.png")  # default: 8 per row -> 3 rows
    assert Image.open(tmp_path / "d.png").size == (8 * 8 + 9 * 2, 3 * 8 + 4 * 2)
