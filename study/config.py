"""Typed trial configuration: every default of the study lives here, or is applied here.

A trial is fully described by a `TrialConfig`. Configs are validated at load (unknown keys,
wrong types and unknown names are errors) and the resolved config is written beside every
result, so any number in any table can be traced back to what produced it.

The defaults below are the paper's image setup (DCGAN, nz 100); each algorithm's section defaults to its
paper's settings. Where the data decides a setting, `data_defaults` fills it in at validation, before these
defaults, for every key a trial leaves unset: the data set's registration (study/data.py; 2-D points: backbone
mlp, model.nz 2) and an algorithm's published value for that kind of data (its registration's `by_data`:
WGAN-GP's λ = 0.1 on points). A value the user sets always wins, even one equal to the generic default.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from lightning_modules import ALGORITHMS, Algorithm
from lightning_modules.backbones import Sizes
from study.registry import UnknownName


from study.errors import UserError  # noqa: E402  (re-exported: every CLI catches it from here)


class ConfigError(UserError):
    """A user error in a config or spec: `str()` is the one line shown to the user."""

    def __init__(self, where: str, key: str, message: str):
        self.where, self.key, self.message = where, key, message
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def _known_name(registry: Any, name: str) -> str:
    try:
        registry.get(name)
    except UnknownName as e:  # a ValueError, so pydantic reports it with its key
        raise ValueError(str(e)) from None
    return name


# Strict types (no conversions, finite floats): shared with each algorithm's own settings.
from lightning_modules.settings import Bool, Float, Int  # noqa: E402
from lightning_modules.settings import Strict as _Strict  # noqa: E402

MAX_BATCH = 16384       # far above any GAN batch; 1e9 would ask for gigabytes before the first step


class DataConfig(_Strict):
    name: str = "mnist5k"
    image_size: Literal[16, 32, 64] = 32          # images only; toys are 2-D points
    root: Optional[str] = None                    # torchvision data sets and image_folder
    download: Bool = False                        # torchvision data sets only, never implicit
    holdout: Int = Field(1000, ge=0)              # held-out real examples for metrics (mnist5k: 100 per class)
    synthetic_size: Int = Field(65536, gt=0)      # size of generated training sets (toys, stacked MNIST)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from study.data import DATASETS
        return _known_name(DATASETS, v)


class ModelConfig(_Strict):
    nz: Int = Field(100, gt=0)                    # noise dimension (points data: 2, see data_defaults)
    width: Int = Field(64, gt=0)                  # DCGAN ngf = ndf
    mlp_width: Int = Field(512, gt=0)             # the paper's MLP: 4 x 512
    extra_layers: Int = Field(0, ge=0)            # DCGAN extra 3x3 conv layers (reference code's --n_extra_layers)


class BackbonePair(_Strict):
    generator: str
    critic: str

    @field_validator("generator", "critic")
    @classmethod
    def _known(cls, v: str) -> str:
        from lightning_modules.backbones import BACKBONES
        return _known_name(BACKBONES, v)

    @property
    def label(self) -> str:
        return self.generator if self.generator == self.critic else f"{self.generator}/{self.critic}"


class TrainConfig(_Strict):
    gen_iters: Int = Field(2000, gt=0)            # generator iterations: the step axis of everything
    batch_size: Int = Field(64, gt=0, le=MAX_BATCH)
    checkpoint_every: Int = Field(250, gt=0)      # generator iterations between checkpoints
    keep_checkpoints: Int = Field(2, gt=0)        # >1 so a corrupt last checkpoint can fall back
    # how the updates run (lightning_modules/updates.py): off = eager; on = torch.compile on CPU, CUDA graphs on
    # a GPU; auto = what was measured faster on that device. Results agree within float noise: not in the id
    compile: Literal["auto", "on", "off"] = "auto"

    @field_validator("compile", mode="before")
    @classmethod
    def _yaml_on_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare on / off as a boolean: `compile: on` means "on", not a wrong type
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class EvalConfig(_Strict):
    every: Int = Field(500, ge=0)                 # 0: only at the end
    num_samples: Int = Field(2000, ge=2)          # N for FID/KID: fixed across a sweep (FID is biased in N);
                                                  # FID fits a covariance, so at least 2
    extractors: list[str] = ["domain"]            # "domain" (CPU default) and/or "inception"
    inception_weights: Optional[str] = None       # torch-fidelity feature_extractor_weights_path
    grid_size: Int = Field(64, gt=0)              # fixed-noise samples in each grid
    final_num_samples: Optional[Int] = Field(None, ge=2)  # the LAST evaluation's mode counts use this many samples
                                                  # (stacked MNIST: 26,000, PacGAN's protocol); None: num_samples.
                                                  # FID and the other metrics stay at num_samples (FID is biased in N)
    w1_points: Int = Field(1000, gt=0)            # exact optimal transport on toys, per draw
    w1_draws: Int = Field(3, gt=0)

    @field_validator("extractors")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in ("domain", "inception")]
        if bad:
            raise ValueError(f"unknown extractor '{bad[0]}' (known: domain, inception)")
        return v


class LogConfig(_Strict):
    tensorboard: Bool = False                     # also write TensorBoard events to <trial>/tb (study/tensorboard.py)


class _TrialBase(_Strict):
    loss: str = "wgan"                            # an algorithm of lightning_modules.ALGORITHMS
    backbone: BackbonePair = Field("dcgan", validate_default=True)  # a name means both G and D; points: mlp
    seed: Int = Field(0, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    # AC-GAN / AC-WGAN (Odena et al. 2017): G(z * embed(y)), a class head beside the critic's output,
    # and class_weight x cross-entropy of that head added to both players' losses.
    conditional: Bool = False
    class_weight: Float = Field(1.0, ge=0)
    log: LogConfig = LogConfig()                  # what a trial logs besides metrics.csv; never changes a result
    # + one section per registered algorithm (its settings, defaults = its paper's), added below

    @model_validator(mode="before")
    @classmethod
    def _data_decides(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        for key, value in data_defaults(raw).items():
            raw = _with(raw, key, value)
        return raw

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        return _known_name(ALGORITHMS, v)

    @field_validator("backbone", mode="before")
    @classmethod
    def _pair(cls, v: Any) -> Any:
        return {"generator": v, "critic": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _compatible(self) -> "_TrialBase":
        from lightning_modules.backbones import BACKBONES
        from study.data import DATASETS
        kind = DATASETS.get(self.data.name).kind
        for role in ("generator", "critic"):
            name = getattr(self.backbone, role)
            if kind not in BACKBONES.get(name).kinds:
                raise ValueError(f"backbone '{name}' needs {' or '.join(BACKBONES.get(name).kinds)} data, "
                                 f"but data '{self.data.name}' is {kind}")
        if self.conditional and not DATASETS.get(self.data.name).classes:
            allowed = ", ".join(n for n in DATASETS.names() if DATASETS.get(n).classes)
            raise ValueError(f"conditional: true needs class labels, and data '{self.data.name}' has none "
                             f"(labelled data: {allowed})")
        return self

    @property
    def spec(self) -> Algorithm:
        return ALGORITHMS.get(self.loss)

    @property
    def algo(self) -> Any:
        """The active algorithm's settings (the config section named after it)."""
        return getattr(self, self.loss)

    def sizes(self) -> Sizes:
        """What the backbones are built from: the model sizes and the algorithm's critic normalisation."""
        return Sizes(**self.model.model_dump(), critic_norm=self.spec.critic_norm(self.algo))

    def resolved(self) -> dict:
        """The config as written beside results: defaults filled, the inactive loss sections dropped."""
        d = self.model_dump(mode="json")
        for name in ALGORITHMS.names():
            if name != self.loss:
                d.pop(name)
        return d

    def trial_id(self) -> str:
        """Stable, readable id: the same resolved config always maps to the same directory."""
        d = self.resolved()
        if not self.conditional:  # ids of unconditional trials predate these keys: keep them stable
            d.pop("conditional"), d.pop("class_weight")
        if d["eval"].get("final_num_samples") is None:  # unset: the id of every trial from before the key
            d["eval"].pop("final_num_samples", None)
        for key, value in LEGACY.get(self.loss, {}).items():  # runs from before a key existed keep their ids
            if d[self.loss].get(key) == value:
                d[self.loss].pop(key)
        for key in EXECUTION_KEYS:  # how a trial runs, never what it computes: changing one resumes the same trial
            section, _, name = key.partition(".")
            d[section].pop(name) if name else d.pop(section)
        digest = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        bb = self.backbone.label.replace("/", "-")
        return f"{'ac' if self.conditional else ''}{self.loss}_{bb}_{self.data.name}_s{self.seed}_{digest}"


_UNSET = object()


def _given(raw: Any, key: str) -> Any:
    """What `raw` (settings as given, before validation) sets at the dotted `key`, or _UNSET."""
    node = raw
    for part in key.split("."):
        if isinstance(node, BaseModel):  # a section passed as a model: only the fields it was given
            node = node.model_dump(exclude_unset=True)
        if not isinstance(node, dict) or part not in node:
            return _UNSET
        node = node[part]
    return node


def _with(raw: dict, key: str, value: Any) -> dict:
    """A copy of `raw` with the dotted `key` set (sections copied, never changed in place); a section of the
    wrong type is left for validation to report."""
    head, _, rest = key.partition(".")
    if not rest:
        return {**raw, head: value}
    sub = raw.get(head, {})
    sub = sub.model_dump(exclude_unset=True) if isinstance(sub, BaseModel) else sub
    return {**raw, head: _with(sub, rest, value)} if isinstance(sub, dict) else raw


def data_defaults(raw: Any) -> dict[str, Any]:
    """{dotted key: value}: what the data decides among the settings `raw` (a trial's settings as given) leaves
    unset. First the data set's registration (2-D points: backbone mlp, model.nz 2), then each algorithm's
    published value for that kind of data (WGAN-GP: λ = 0.1 on points). A key the user set, even to the
    generic default, is never in it; nothing is while the data name is unknown (validation reports that).
    The one place these defaults are applied (TrialConfig's validation) and read back (the report's setup)."""
    from study.data import DATASETS
    name = _given(raw, "data.name")
    name = DataConfig.model_fields["name"].default if name is _UNSET else name
    if not isinstance(name, str) or name not in DATASETS:
        return {}
    info = DATASETS.get(name)
    decided = dict(info.defaults)
    for loss, algo in ALGORITHMS.items():
        decided.update({f"{loss}.{k}": v for k, v in algo.by_data.get(info.kind, {}).items()})
    return {k: v for k, v in decided.items() if _given(raw, k) is _UNSET}


# Keys that say how a trial runs, not what it computes (what it logs; eager or compiled updates, equal within
# float noise): outside the trial id, so a sweep cannot vary them (two values would be one trial).
EXECUTION_KEYS = ("log", "train.compile")


# Keys added after runs were written, with the value those runs had: their config.yaml lacks the key, and a
# reader must not mistake them for runs at today's default (the report would pool them with those).
LEGACY = {"wgan": {"clip_order": "after"}}


def with_legacy(cfg: dict) -> dict:
    """A resolved config as written by any version, with the keys it predates filled in as it ran."""
    out = dict(cfg)
    for section, keys in LEGACY.items():
        if out.get("loss") == section and isinstance(out.get(section), dict):
            out[section] = {**keys, **out[section]}
    return out


# The config's algorithm sections come from the registry: adding an algorithm adds its section here.
TrialConfig = create_model("TrialConfig", __base__=_TrialBase, __module__=__name__,
                           **{name: (spec.settings, spec.settings()) for name, spec in ALGORITHMS.items()})


def _loc_str(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "BackbonePair", "function-after[_pair(), union[str,BackbonePair]]"):
            continue  # pydantic's union-branch labels are noise to a user
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = TrialConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else BackbonePair
    return sorted(getattr(model, "model_fields", {}))


def explain(err: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(key, message) for the first error, in words a user can act on."""
    e = err.errors()[0]
    loc = tuple(e["loc"])
    key = _loc_str(loc)
    if e["type"] == "extra_forbidden":
        msg = f"unknown key (allowed: {', '.join(_allowed_keys(loc))})"
    else:
        msg = e["msg"].removeprefix("Value error, ")
        if ("input" in e and e["type"] != "missing" and not isinstance(e["input"], (dict, list))
                and repr(e["input"]) not in msg):
            msg += f" (got {e['input']!r})"
    return (f"{prefix}.{key}" if prefix and key else prefix or key), msg


def load_trial_config(d: dict, where: str = "config") -> TrialConfig:
    try:
        return TrialConfig.model_validate(d)
    except ValidationError as err:
        raise ConfigError(where, *explain(err)) from None
    except UnknownName as err:  # raised inside a validator that pydantic did not wrap
        raise ConfigError(where, "", str(err)) from None
