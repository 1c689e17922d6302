"""What an evaluation costs, known before training: its memory from the config (samples x image bytes x
extractors), refused by the sweep when it cannot fit; its time from one timed batch, announced by the trial
when an evaluation is long or takes longer than the training between two evaluations."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable, Optional

from study.config import TrialConfig
from study.errors import UserError

FLOAT_BYTES = 4
# float copies of the N samples alive at once at the final evaluation: the samples, the repeat set scored
# for the metrics' noise (study/callbacks.py), and the flattened copy written to samples.npz
SAMPLE_COPIES = 3
# floats per sample and image channel read by each extractor: the domain net's features and 10 logits
# (study/eval/classifier.py FEATURE_DIM), Inception's 2048 features and 1008 logits (whatever the channels)
DOMAIN_FLOATS_PER_CHANNEL = 64 + 10
INCEPTION_FLOATS = 2048 + 1008
PROBE_SAMPLES = 500           # one batch of module.sample: timed (generated and featurised) before training
LONG_EVAL_S = 60.0            # an evaluation expected to take longer is announced before it starts
TRAIN_PROBE_ITERS = 10        # generator iterations timed (after the first) to compare with an evaluation


def eval_bytes(cfg: TrialConfig) -> int:
    """Memory one evaluation holds at once (the final one, the largest: eval.final_num_samples where set), from
    the config alone."""
    from study.data import DATASETS, channels
    n = max(cfg.eval.num_samples, cfg.eval.final_num_samples or 0)
    if DATASETS.get(cfg.data.name).kind == "points":
        return n * 2 * FLOAT_BYTES * SAMPLE_COPIES
    c, side = channels(cfg.data), cfg.data.image_size
    pixels = c * side * side
    feats = c * DOMAIN_FLOATS_PER_CHANNEL + (INCEPTION_FLOATS if "inception" in cfg.eval.extractors else 0)
    return n * (pixels * FLOAT_BYTES * SAMPLE_COPIES + pixels + feats * FLOAT_BYTES)  # + the uint8 images


def available_memory() -> int:
    """Bytes this machine can give now (Linux MemAvailable), else its physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_eval_memory(configs: Iterable[TrialConfig], where: str, available: Optional[int] = None) -> None:
    """UserError (one line naming the estimate) when an evaluation of some trial cannot fit in memory."""
    worst = max(configs, key=eval_bytes, default=None)
    if worst is None:
        return
    need, have = eval_bytes(worst), available_memory() if available is None else available
    if need > have:
        from study.data import DATASETS
        side, extractors = worst.data.image_size, ", ".join(sorted({"domain", *worst.eval.extractors}))
        kind = ("2-D points" if DATASETS.get(worst.data.name).kind == "points" else
                f"{worst.data.name} {side}x{side} images, extractors: {extractors}")
        key, n = (("eval.final_num_samples", worst.eval.final_num_samples)
                  if (worst.eval.final_num_samples or 0) > worst.eval.num_samples else
                  ("eval.num_samples", worst.eval.num_samples))
        raise UserError(f"{where}: {key}: {n:,} samples ({kind}) need about "
                        f"{gb(need)} per evaluation, more than the {gb(have)} of memory available; "
                        f"lower {key}")


def gb(n: int) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def probe_seconds(module: Any, evaluator: Any, n: int) -> float:
    """Seconds an evaluation of n samples will take, from one timed batch: generating it and running every
    feature extractor on it (both linear in n; the metrics on the features are small beside them)."""
    k = min(n, PROBE_SAMPLES)
    t0 = time.perf_counter()
    x = module.sample(k)
    extract = getattr(evaluator, "extract_all", None)
    if extract is not None:
        extract(x)
    return (time.perf_counter() - t0) * n / k
