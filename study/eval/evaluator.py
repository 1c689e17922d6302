"""The Evaluator: built once per worker process and data/eval config, called at every evaluation
point with generated samples, returns the eval/* keys of docs/run-layout.md.

Sample counts. Generated: exactly eval.num_samples (N_gen) per call, more are cut, fewer refused.
Real: the whole held-out split (`data.test_x`, N_real = data.holdout, 1,000 for mnist5k), never
the training split the domain classifier learnt. FID fits one Gaussian per set, so N_real != N_gen
is well defined, but its bias depends on both: both are fixed per sweep and stored in `info`
(num_samples, n_real), and `fid.require_same_n` refuses to compare otherwise. KID is unbiased;
its subsets use min(1000, N_real, N_gen) samples of each.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch_fidelity.utils import create_feature_extractor

from study.config import DataConfig, EvalConfig
from study.data import SPLIT_SEED, Dataset, sample_toy
from study.eval import fid as F
from study.eval.classifier import ARCH_VERSION, base_of, get_classifier, training_data
from study.eval.knn import PixelKNN
from study.eval.prdc import density_coverage
from study.eval.modes import confident_mode_stats, expected_modes_uniform, label_mode_stats, toy_mode_stats
from study.eval.w1 import mean_exact_w1

W1_SEED = 0  # fixed subsets: two evaluations of the same samples give the same W1
CONFIDENT = 0.9  # classifier probability that makes a generated image "high quality" (eval/hq on images)
KNN_CONFIDENT = 0.8  # share of the kNN's 10 neighbours that must agree (its eval/hq_knn)
FINAL_ONLY = ("kid", "isc", "precision", "recall", "density", "coverage")  # eval/<metric>@<extractor>: last evaluation only
# mode counts of the larger final evaluation (eval.final_num_samples), beside the per-evaluation ones at num_samples
FINAL_MODE_KEYS = ["eval/modes_final", "eval/modes_hq_final", "eval/hq_final", "eval/mode_kl_final", "eval/n_final"]


def default_cache_dir() -> Path:
    """Where classifiers and real statistics are cached: $WGAN_STUDY_CACHE or ~/.cache/wgan-study."""
    return Path(os.environ.get("WGAN_STUDY_CACHE") or "~/.cache/wgan-study").expanduser()


def _to3(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # Inception reads RGB


class Evaluator:
    """Scores generated samples. Construction trains or loads the domain classifier, builds the
    extractors and the real statistics once; calls reuse them. Attributes: `info` (JSON-ready:
    num_samples, n_real per extractor, real_split, domain_classifier_acc, notes, inception_weights (file,
    sha256, standard) where Inception runs, and real_floor: the same metrics on N real samples), `keys` (the eval/* keys every call returns),
    `domain_extractor` (the torch-fidelity extractor of the domain classifier, or None)."""

    def __init__(self, data: Dataset, data_cfg: DataConfig, eval_cfg: EvalConfig,
                 device: torch.device | str, cache_dir: Path):
        self.data, self.cfg, self.device = data, eval_cfg, torch.device(device)
        self.cache_dir, self.n = Path(cache_dir), eval_cfg.num_samples
        # the last evaluation's mode counts may use more samples (eval.final_num_samples): stacked MNIST's 1,000
        # modes need ~26,000 (PacGAN) where FID's curve is fine at num_samples
        self.n_final = max(eval_cfg.final_num_samples or self.n, self.n)
        self.info: dict = {"num_samples": self.n, "final_num_samples": self.n_final, "real_split": None, "n_real": {}, "extractors": [],
                           "domain_classifier_acc": None, "notes": []}
        self.keys: list[str] = []
        self.extractors: dict[str, tuple] = {}  # label -> (extractor, feature key, transform, batch, real stats)
        self.classifier, self.domain_extractor = None, None
        self.knn: Optional[PixelKNN] = None  # the second, independent classifier for mode counts
        self.call_notes: list[str] = []  # notes about the last call's samples (see _call_note)
        self._class_stats: Optional[dict[int, dict]] = None  # real per-class FID statistics, built on first use
        if data.kind == "points":
            self._init_toy()
        else:
            self._init_images(data_cfg)
        self.info["real_floor"] = self._real_floor()

    # ------------------------------------------------------------------ setup
    def _note(self, text: str) -> None:
        """A fact about the evaluator itself (every trial it scores shares it)."""
        if text and text not in self.info["notes"]:
            self.info["notes"].append(text)

    def _call_note(self, text: str) -> None:
        """A fact about the samples of this call: the trial's callback collects it (the evaluator is shared by
        a worker's trials, so it must not stick to the evaluator)."""
        if text not in self.call_notes:
            self.call_notes.append(text)

    def _init_toy(self) -> None:
        d = self.data
        # Real points are fresh draws from the known mixture (no held-out-size limit).
        g = torch.Generator().manual_seed(SPLIT_SEED + 1)
        pool = self.cfg.w1_points * self.cfg.w1_draws
        self.real_pool = sample_toy(d.name, pool, g)[0] if d.modes is not None else d.test_x
        self.info["real_split"] = "fresh draws from the true mixture" if d.modes is not None else "test (held-out)"
        self.info["w1_points"], self.info["w1_draws"] = self.cfg.w1_points, self.cfg.w1_draws
        self.keys = ["eval/w1"] + (["eval/modes", "eval/hq", "eval/mode_kl", "eval/modes_hq"] if d.modes is not None else [])
        if d.modes is not None and self.n_final > self.n:
            self.keys += FINAL_MODE_KEYS

    def _real_floor(self) -> Optional[dict]:
        """Every metric on N *real* samples: the best a generator can score at this N (W1 and FID
        are not 0 between two finite samples of one distribution; stacked MNIST covers ~865 modes)."""
        d = self.data
        if "inception" in self.extractors and self.device.type != "cuda":
            self._note("no real floor: Inception on CPU would take minutes")
            return None
        if d.kind == "points" and d.modes is not None:
            x, source = sample_toy(d.name, self.n, torch.Generator().manual_seed(SPLIT_SEED + 2))[0], "true mixture"
        elif d.train_x is not None and len(d.train_x) >= self.n:
            x, source = d.train_x[self._floor_index()], "training split"
        else:
            self._note(f"no real floor: fewer than {self.n} real training samples in memory")
            return None
        self.info["real_floor_source"] = f"{self.n} samples of the {source}"
        floor = self(x)
        if self.n_final > self.n:  # the final counts' anchor: the same count on as many real samples
            if d.kind == "points":
                big = sample_toy(d.name, self.n_final, torch.Generator().manual_seed(SPLIT_SEED + 3))[0]
            elif len(d.train_x) >= self.n_final:
                big = d.train_x[torch.randperm(len(d.train_x), generator=torch.Generator().manual_seed(SPLIT_SEED + 3))[:self.n_final]]
            else:
                self._note(f"no real anchor for the final counts: fewer than {self.n_final} real training samples")
                return floor
            floor.update(self.final_modes(big))
        return floor

    def _floor_index(self) -> torch.Tensor:
        """The real floor's training images: a fixed draw, the same for every evaluator of the data."""
        return torch.randperm(len(self.data.train_x), generator=torch.Generator().manual_seed(SPLIT_SEED + 2))[:self.n]

    def _init_images(self, data_cfg: DataConfig) -> None:
        d, c = self.data, self.cfg
        real = F.to_uint8(d.test_x)
        self.info["real_split"] = "test (held-out)"
        cuda = self.device.type == "cuda"
        base = base_of(d.name)
        if base is not None:  # labelled: the classifier gives modes, and the domain features
            net, acc = get_classifier(data_cfg, self.cache_dir, self.device, data=d)
            self.classifier, self.info["domain_classifier_acc"] = net, acc
            base_data = training_data(data_cfg, d)
            self.knn = PixelKNN(base_data.train_x, base_data.train_y)
            self.info["knn_acc"] = self.knn.accuracy(base_data.test_x, base_data.test_y)
            if data_cfg.holdout > DataConfig().holdout and base[0] == "mnist5k":
                self._note("data.holdout > 1000: some held-out images are in the domain classifier's training split")
            name = f"wgan-study-domain-{base[0]}-{data_cfg.image_size}px-v{ARCH_VERSION}-s0"
            F.register_domain_extractor(name, net)  # also usable as torch_fidelity's feature_extractor=name
            ext = self.domain_extractor = create_feature_extractor(name, ["features", "logits"], cuda=cuda,
                                                                   verbose=False)
            self.keys += ["eval/modes", "eval/mode_kl", "eval/hq", "eval/modes_hq", "eval/modes_knn", "eval/hq_knn"]
            self.keys += FINAL_MODE_KEYS if self.n_final > self.n else []
            if d.num_classes == 1000:
                self._note(f"stacked modes: a uniform generator covers {expected_modes_uniform(1000, self.n):.1f} "
                           f"of 1000 on average with {self.n} samples (PacGAN used 26,000)")
            if "domain" in c.extractors:
                self._add("domain", ext, "features", None, 1000, real, d.name, name)
        elif "domain" in c.extractors:
            self._note(f"domain FID/KID skipped: no domain classifier for unlabelled data '{d.name}'")
        if "inception" in c.extractors:
            ok, path, note = F.find_inception_weights(c.inception_weights)
            self._note(note)
            if ok:
                ext = create_feature_extractor("inception-v3-compat", ["2048", "logits_unbiased"], cuda=cuda,
                                               verbose=False, feature_extractor_weights_path=path)
                weights = self.info["inception_weights"] = F.inception_weights_info(path)
                if not weights["standard"]:
                    msg = (f"inception weights {weights['file']} are not the standard {F.STANDARD_INCEPTION} file "
                           f"(sha256 {weights['sha256'][:16]}...): FID@inception is not comparable with published numbers")
                    warnings.warn(msg)
                    self._note(msg)
                # the weights' hash is part of the real statistics' key: other weights, other statistics
                self._add("inception", ext, "2048", _to3, 100, real, d.name,
                          f"inception-v3-compat-{weights['sha256'][:16]}")
                if not cuda:
                    self._note("inception on cpu: slow (about 5 images/s on 2 cores); a GPU metric")
                if min(self.n, len(real)) < 2048:
                    self._note("inception FID with N < 2048 features: covariance is rank-deficient")

    def _add(self, label: str, ext, key: str, transform, batch: int, real: torch.Tensor, data_name: str,
             ext_name: str) -> None:
        compute = lambda imgs: F.extract(ext, imgs, batch, transform)[key]  # noqa: E731
        stats = F.real_stats(self.cache_dir, data_name, "test", ext_name, real, compute)
        self.extractors[label] = (ext, key, transform, batch, stats)
        self.info["extractors"].append(label)
        self.info["n_real"][label] = stats["n"]
        self.keys += [f"eval/{m}@{label}" for m in ("fid", "kid", "isc", "precision", "recall", "density", "coverage")]

    # ------------------------------------------------------------------ evaluation
    def __call__(self, samples: torch.Tensor, final: bool = True, labels: Optional[torch.Tensor] = None) -> dict[str, float]:
        """eval/* metrics of `samples`. KID (N x N kernels, the costliest metric here)
        only when `final`: intermediate points need the curve, which FID gives. `labels`: the classes
        a conditional generator was asked for; adds eval/class_acc and per-class FID."""
        self.call_notes: list[str] = []
        if len(samples) < self.n:
            raise ValueError(f"Evaluator needs eval.num_samples = {self.n} samples, got {len(samples)} "
                             "(FID is biased in N: every evaluation uses the same N)")
        x = samples.detach()[:self.n]
        big = self.n_final > self.n and len(samples) >= self.n_final  # the larger final evaluation (and its repeat)
        if not bool(torch.isfinite(samples.detach()[:self.n_final if big else self.n]).all()):
            self._call_note("non-finite samples: metrics of those evaluations are NaN")
            return {k: math.nan for k in self.keys if big or k not in FINAL_MODE_KEYS}
        y = None if labels is None else labels.detach().cpu()[:self.n]
        out = self._toy(x) if self.data.kind == "points" else self._images(x, final, y)
        if big:
            out.update(self.final_modes(samples.detach()[:self.n_final]))
        return out

    def final_modes(self, x: torch.Tensor) -> dict[str, float]:
        """The mode counts (eval/modes, modes_hq, hq, mode_kl) of all `x`, under the *_final keys, with
        eval/n_final = len(x): one count decides (toys: geometry; images: the domain CNN, no kNN)."""
        if self.data.kind == "points":
            s = toy_mode_stats(x.float().cpu().reshape(len(x), -1), self.data.modes, self.data.mode_std)
            out = {"eval/modes": float(s["modes"]), "eval/hq": s["hq"], "eval/mode_kl": s["mode_kl"],
                   "eval/modes_hq": float(s["modes_hq"])}
        elif self.domain_extractor is not None:
            labels, confident = self._labels(F.extract(self.domain_extractor, F.to_uint8(x.cpu()), 1000)["logits"])
            s = label_mode_stats(labels, self.data.num_classes)
            out = {"eval/modes": float(s["modes"]), "eval/mode_kl": s["mode_kl"],
                   "eval/hq": float(confident.float().mean()),
                   "eval/modes_hq": float(confident_mode_stats(labels, confident, self.data.num_classes)["modes"])}
        else:
            return {}
        return {f"{k}_final": v for k, v in out.items()} | {"eval/n_final": float(len(x))}

    @staticmethod
    def _labels(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mode label, confident) per sample from the domain CNN's logits (N x channels x classes): stacked MNIST's
        channels (a, b, c) -> 100a + 10b + c; confident when every channel's digit has probability >= CONFIDENT."""
        digits = logits.argmax(-1)
        k = logits.shape[-1]
        labels = (digits * k ** torch.arange(digits.shape[1] - 1, -1, -1)).sum(1)
        confident = logits.float().softmax(-1).amax(-1).min(-1).values >= CONFIDENT
        return labels, confident

    def _toy(self, x: torch.Tensor) -> dict[str, float]:
        pts = x.float().cpu().reshape(len(x), -1)
        out = {"eval/w1": mean_exact_w1(pts, self.real_pool, self.cfg.w1_points, self.cfg.w1_draws, W1_SEED)}
        if self.data.modes is not None:
            s = toy_mode_stats(pts, self.data.modes, self.data.mode_std)
            out.update({"eval/modes": float(s["modes"]), "eval/hq": s["hq"], "eval/mode_kl": s["mode_kl"],
                        "eval/modes_hq": float(s["modes_hq"])})
        return out

    def _images(self, x: torch.Tensor, final: bool, asked: Optional[torch.Tensor] = None) -> dict[str, float]:
        u8 = F.to_uint8(x.cpu())
        out: dict[str, float] = {}
        # One pass of the domain net gives both its FID/KID features and the mode labels.
        feats: Optional[dict] = None if self.domain_extractor is None else F.extract(self.domain_extractor, u8, 1000)
        for label, (ext, key, transform, batch, real) in self.extractors.items():
            fd = feats if label == "domain" else F.extract(ext, u8, batch, transform)
            f = fd[key]
            out[f"eval/fid@{label}"] = F.fid(real, F.fid_stats(f))
            if final:  # FINAL_ONLY: KID, IS and precision/recall, the final numbers only (FID gives the curve)
                out[f"eval/kid@{label}"] = F.kid(real["features"], f)
                out[f"eval/isc@{label}"] = F.inception_score(fd["logits" if label == "domain" else "logits_unbiased"])
                out[f"eval/precision@{label}"], out[f"eval/recall@{label}"] = F.precision_recall(
                    f.to(self.device), real["features"])
                # Naeem et al. 2020 on the same features: a coverage that needs no classifier (beside the CNN's)
                out[f"eval/density@{label}"], out[f"eval/coverage@{label}"] = density_coverage(real["features"], f)
        if feats is not None:
            # images' analogue of the toys' high-quality fraction: every channel's digit is recognised
            # with >= CONFIDENT probability (an unlearned generator has few; a collapsed one can have many)
            labels, confident = self._labels(feats["logits"])
            s = label_mode_stats(labels, self.data.num_classes)
            out.update({"eval/modes": float(s["modes"]), "eval/mode_kl": s["mode_kl"],
                        "eval/hq": float(confident.float().mean())})
            out.update(self._confident_modes(u8, labels, confident))
            if asked is not None:
                out["eval/class_acc"] = float((labels == asked).float().mean())
                out.update(self._per_class_fid(feats["features"], asked))
        elif asked is not None:
            self._call_note(f"no class metrics: no domain classifier for '{self.data.name}'")
        return out

    def extract_all(self, samples: torch.Tensor) -> None:
        """Every feature extractor once over `samples`, no metric: what an evaluation's time grows with in N
        (study/eval/budget.py times it on one batch before training)."""
        if self.data.kind == "points":
            return
        u8 = F.to_uint8(samples.detach().cpu())
        if self.domain_extractor is not None:
            F.extract(self.domain_extractor, u8, 1000)
        for label, (ext, _, transform, batch, _) in self.extractors.items():
            if label != "domain":
                F.extract(ext, u8, batch, transform)

    def crosscheck(self, samples: torch.Tensor) -> dict:
        """FID and KID of the first eval.num_samples `samples` on the domain features once more, by torchmetrics
        (study/eval/crosscheck.py): {} when there is no domain FID."""
        if "domain" not in self.extractors or len(samples) < self.n or not bool(torch.isfinite(samples).all()):
            return {}
        from study.eval.crosscheck import crosscheck
        ext, key, _, batch, real = self.extractors["domain"]
        u8 = F.to_uint8(samples.detach()[:self.n].cpu())
        return crosscheck(ext, key, "domain", F.to_uint8(self.data.test_x), real, u8, F.extract(ext, u8, batch)[key])

    def _confident_modes(self, u8: torch.Tensor, labels: torch.Tensor, confident: torch.Tensor) -> dict[str, float]:
        """Modes covered by confident samples, read by the domain CNN (eval/modes_hq) and by the
        independent pixel kNN (eval/modes_knn, with its confident fraction eval/hq_knn): a collapse
        verdict needs both to agree (docs/verdicts.md)."""
        k = self.data.num_classes
        out = {"eval/modes_hq": float(confident_mode_stats(labels, confident, k)["modes"])}
        if self.knn is not None:
            x = u8.float() / 127.5 - 1.0
            # stacked MNIST: each channel is its own digit, as the domain CNN reads it
            digits, conf = (self.knn.predict_channels(x) if x.shape[1] > self.knn.channels else
                            tuple(v[:, None] for v in self.knn.predict(x)))
            base = self.knn.num_classes
            lab = (digits * base ** torch.arange(digits.shape[1] - 1, -1, -1)).sum(1)
            sure = conf.min(1).values >= KNN_CONFIDENT
            s = confident_mode_stats(lab, sure, k)
            out.update({"eval/modes_knn": float(s["modes"]), "eval/hq_knn": s["hq"]})
        return out

    def _per_class_fid(self, features: torch.Tensor, asked: torch.Tensor) -> dict[str, float]:
        """Conditional generators (beside eval/class_acc, how often the domain classifier recognises the
        class asked for): FID on the domain features per class against the held-out images of that
        class (eval/class_fid@domain/c<k>; their mean is eval/class_fid@domain). With N samples and K
        classes each uses N / K samples: biased upwards, comparable at equal N."""
        if self._class_stats is None:
            self._init_class_stats()
        per = {}
        for c, real_c in self._class_stats.items():
            mine = features[asked == c]
            if len(mine) > 1:  # FID needs a covariance
                per[f"eval/class_fid@domain/c{c}"] = F.fid(real_c, F.fid_stats(mine))
        return ({"eval/class_fid@domain": sum(per.values()) / len(per)} if per else {}) | per

    def _init_class_stats(self) -> None:
        """On the first conditional call (unconditional trials never pay for it): real per-class
        statistics, and the real floor's per-class FID (its training images with their true labels).
        The floor has no class accuracy: the classifier learnt those images; its held-out accuracy is
        info's domain_classifier_acc."""
        d = self.data
        if "domain" in self.extractors:  # the held-out features behind the cached FID statistics
            real = self.extractors["domain"][4]["features"]
        else:
            real = F.extract(self.domain_extractor, F.to_uint8(d.test_x), 1000)["features"]
        self._class_stats = {int(c): F.fid_stats(real[d.test_y == c])
                             for c in d.test_y.unique() if int((d.test_y == c).sum()) > 1}
        floor = self.info.get("real_floor")
        if floor and self.info.get("real_floor_source", "").endswith("training split"):
            idx = self._floor_index()
            feats = F.extract(self.domain_extractor, F.to_uint8(d.train_x[idx]), 1000)["features"]
            floor.update(self._per_class_fid(feats, d.train_y[idx]))
