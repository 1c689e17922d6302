"""The metric registry: what each eval/* and train/* key means, which way is better, how it is labelled,
and which quality metric decides (precedence). Every reader (trial, report, paper) asks here.

Quality precedence: Inception FID is the standard where it was computed; the domain-feature FID is the
CPU default; exact W1 is the toys' quality. The report decides on Inception only where *every* completed
trial of a data set has it (study/report/cells.primary_metric).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from study.registry import Registry


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_better: bool = False
    quality_rank: Optional[int] = None   # set for metrics that can decide a verdict on quality: lower rank first


METRICS: Registry[Metric] = Registry("metric")
for m in (
        Metric("eval/fid@inception", "FID (inception features)", quality_rank=0),
        Metric("eval/fid@domain", "FID (domain features)", quality_rank=1),
        Metric("eval/w1", "W1 to real samples (exact OT)", quality_rank=2),
        Metric("eval/kid@domain", "KID (domain features)"),
        Metric("eval/kid@inception", "KID (inception features)"),
        Metric("eval/modes", "modes covered", higher_better=True),
        Metric("eval/modes_hq", "modes covered by confident samples (domain CNN)", higher_better=True),
        Metric("eval/modes_knn", "modes covered by confident samples (pixel kNN)", higher_better=True),
        Metric("eval/mode_kl", "reverse KL over modes (nats)"),
        Metric("eval/hq", "high-quality samples (%)", higher_better=True),
        Metric("eval/hq_knn", "confident samples, pixel kNN", higher_better=True),
        Metric("eval/class_acc", "generated-class accuracy", higher_better=True),
        Metric("eval/class_fid@domain", "per-class FID (domain features)"),
        Metric("train/w_estimate", "W estimate (-critic loss)"),
        Metric("train/js_estimate", "JS estimate (log 2 - D loss / 2)"),
        Metric("train/clip_fraction", "critic weights at the clipping bound"),
        Metric("train/gp", "gradient penalty"),
        Metric("train/grad_norm", "critic gradient norm at interpolates")):
    METRICS.register(m.key, m)

QUALITY = [m.key for _, m in sorted(((m.quality_rank, m) for _, m in METRICS.items() if m.quality_rank is not None),
                                    key=lambda x: x[0])]


def quality_metric(keys: Iterable[str]) -> Optional[str]:
    """The deciding quality metric among `keys` (those a trial or a table has), by precedence."""
    have = set(keys)
    return next((k for k in QUALITY if k in have), None)


def label(key: str, n: float = float("nan")) -> str:
    if not isinstance(key, str):  # a cell with no quality metric (e.g. its trials' configs are unreadable)
        return "–"
    ns = f", N={int(n)}" if n == n else ""
    if key in METRICS and key.startswith("eval/fid@"):
        return METRICS.get(key).label[:-1] + f"{ns})"
    return METRICS.get(key).label if key in METRICS else key


def higher_better(key: str) -> bool:
    return key in METRICS and METRICS.get(key).higher_better
