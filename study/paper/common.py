"""What every paper figure shares: reading run directories, picking trials, plotting style, output.

Figure builders are pure functions of run directories: they read trial directories as written by a
sweep (docs/run-layout.md: config.yaml, metrics.csv, samples/grid_*.png, result.json) and write one
PNG and the CSV behind it. Nothing here trains or evaluates.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")  # headless: figures are built on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from study.io import atomic_path  # noqa: E402
from study.metrics import QUALITY, label, quality_metric  # noqa: E402
from study.rundir import (CONFIG, ID_MISMATCH, SPEC, get_dotted, grids, read_metrics, read_yaml,  # noqa: E402
                          trusted_result)

DPI = 110
MEDIAN_WINDOW = 101  # the paper (and the reference code's README) median-filter loss curves over 101 iterations
COLORS = {"gan": sns.color_palette("colorblind")[1], "wgan": sns.color_palette("colorblind")[0],
          "wgan_gp": sns.color_palette("colorblind")[2], "wgan_sn": sns.color_palette("colorblind")[4]}
PathLike = Union[str, Path]


class PaperError(ValueError):
    """Missing or unusable runs for a figure: the CLI prints str() (one line) and exits 2."""


@dataclass
class TrialRun:
    """One trial directory, read once."""
    path: Path
    config: dict
    metrics: Optional[pd.DataFrame]
    result: dict = field(default_factory=dict)
    grids: list[tuple[int, Path]] = field(default_factory=list)  # (generator iteration, png), in step order

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.result.get("status") or "incomplete"

    def get(self, dotted: str, default: Any = None) -> Any:
        value = get_dotted(self.config, dotted)
        return default if value is None else value

    @property
    def loss(self) -> str:
        return str(self.config.get("loss", "?"))

    @property
    def backbone(self) -> str:
        """`dcgan`, or `generator/critic` when they differ (as BackbonePair.label)."""
        bb = self.config.get("backbone")
        if isinstance(bb, dict):
            g, c = bb.get("generator"), bb.get("critic")
            return str(g) if g == c else f"{g}/{c}"
        return str(bb)

    @property
    def data(self) -> str:
        return str(self.get("data.name", "?"))

    def column(self, key: str) -> Optional[pd.DataFrame]:
        """`step` and `key` rows where `key` is present, or None when the trial never logged it."""
        m = self.metrics
        if m is None or key not in m.columns or "step" not in m.columns:
            return None
        s = m[["step", key]].dropna().drop_duplicates("step", keep="last")  # a resumed run may repeat a step
        return s.sort_values("step") if len(s) else None


def _grid_step(p: Path) -> int:
    m = re.search(r"grid_(\d+)", p.name)
    return int(m[1]) if m else -1


def read_trial(d: Path) -> Optional[TrialRun]:
    """A trial directory (one with a readable config.yaml), or None for anything else (study.rundir reads it)."""
    cfg, _ = read_yaml(d / CONFIG)
    if not isinstance(cfg, dict):  # a damaged file is no trial
        return None
    result, problem, _ = trusted_result(d)  # a config edited after the run: no trial of its id
    if problem and ID_MISMATCH in problem:
        return None
    metrics, _ = read_metrics(d)
    steps = sorted(((_grid_step(p), p) for p in grids(d)), key=lambda t: t[0])
    return TrialRun(d, cfg, metrics, result or {}, steps)


def current_ids(sweep_dir: Path) -> Optional[set[str]]:
    """Trial ids of the spec a sweep directory last ran (its sweep.yaml), or None when that cannot be told.
    A directory keeps the trials of earlier specs (e.g. before a plan changed); figures must not mix them in."""
    if not (sweep_dir / SPEC).exists():
        return None
    try:
        from study.spec import load_spec
        return {t.id for t in load_spec(sweep_dir / SPEC)[1]}
    except Exception:  # a hand-made or older sweep.yaml: use every trial directory
        return None


def load_trials(run_dirs: Union[PathLike, Iterable[PathLike]]) -> list[TrialRun]:
    """Trials from sweep directories (the trial subdirectories of the spec in sweep.yaml) and/or trial
    directories, each trial once."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    out: dict[str, TrialRun] = {}
    for rd in map(Path, run_dirs):
        if (rd / CONFIG).exists():
            cands = [rd]
        else:
            ids = current_ids(rd)
            cands = sorted(p for p in rd.glob("*") if p.is_dir() and (ids is None or p.name in ids))
        for t in map(read_trial, cands):
            if t is not None:
                out.setdefault(t.id, t)
    return list(out.values())


def usual_lr(trials: Sequence[TrialRun], loss: str) -> Optional[float]:
    """The learning rate most of `loss`'s trials use (ties: the smaller): the setting a figure shows by default."""
    lrs = [float(t.get(f"{loss}.lr")) for t in trials if t.loss == loss and t.get(f"{loss}.lr") is not None]
    return min(set(lrs), key=lambda v: (-lrs.count(v), v)) if lrs else None


def median_filtered(values: np.ndarray, window: int = MEDIAN_WINDOW) -> np.ndarray:
    from study.eval.stats import median_filter
    values = np.asarray(values, dtype=float)
    return np.asarray(median_filter(values, window), dtype=float) if len(values) else values


def quality_key(t: TrialRun) -> Optional[str]:
    """The trial's sample-quality column, by the metric registry's precedence (lower is better for all)."""
    return quality_metric(k for k in QUALITY if t.column(k) is not None)


QUALITY_LABEL = {k: label(k) for k in QUALITY}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    from scipy.stats import spearmanr
    return float(spearmanr(x[ok], y[ok]).statistic)


def style():
    """seaborn's whitegrid look, scoped so a caller's rcParams stay as they were."""
    return plt.rc_context({**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.8)})


def save_png(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return path


def save_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def show_image(ax, path: Optional[Path], title: str = "", fontsize: float = 7) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    img = None
    if path is not None:
        try:
            from PIL import Image
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
        except Exception:  # an unreadable PNG is an empty panel, not a crash
            img = None
    if img is None:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, fontsize=fontsize)
    else:
        ax.imshow(img, interpolation="nearest")  # pixels as generated
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize)


def stages(grids: list[tuple[int, Path]], n: int) -> list[tuple[int, Path]]:
    """n grids evenly spaced over training, the first and the last included."""
    if len(grids) <= n:
        return list(grids)
    idx = np.unique(np.round(np.linspace(0, len(grids) - 1, n)).astype(int))
    return [grids[i] for i in idx]


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"
