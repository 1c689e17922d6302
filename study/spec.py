"""Sweep specs: load, validate (one-line errors naming file and key), apply --set, expand to trials.

    name: arch
    base: {data: {name: mnist5k}, train: {gen_iters: 2000}}   # every trial starts here
    grid: {loss: [gan, wgan], seed: [0, 1]}                    # cartesian product
    zip:  {wgan.lr: [5e-5, 1e-4], wgan.clip: [0.01, 0.02]}     # axes that vary together
"""
from __future__ import annotations

import copy
import gc
import itertools
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from study.config import EXECUTION_KEYS, BackbonePair, ConfigError, TrialConfig, explain

SPEC_KEYS = ("base", "description", "grid", "name", "until_decided", "zip")
# until_decided: the spec runs adaptively by default (study/adaptive.py); its keys are the CLI's defaults
UNTIL_DECIDED = {"max_seeds": int, "budgets": list, "extensions": int, "max_hours": (int, float)}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 100  # the name becomes runs/<name> and reports/<name>: well under a file name's 255 bytes
# More trials than any machine or cluster here could run (10^6 tiny trials at ~1 s each: 11 days on 1,000 cores),
# yet expanded in about two minutes (~0.1 ms a trial, measured); a bigger grid is a typo or a misuse: refused
# before expansion.
MAX_TRIALS = 1_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML silently keeps the last of two equal keys; a sweep must not lose an axis that way."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError("", "", f"duplicate key '{key}' at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 5e-5 as the string '5e-5' (it wants a dot: 5.0e-5). Floats are strictly typed, so
# read exponent forms as the numbers everybody means (as YAML 1.2 does); a quoted "5e-5" stays a string.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as e:
        raise ConfigError(where, "", e.message) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(where, "", f"invalid YAML{at}: {getattr(e, 'problem', None) or e}") from None


@dataclass
class Trial:
    config: TrialConfig
    varied: dict[str, Any]  # axis key -> value, as written in the spec

    @cached_property
    def id(self) -> str:  # a hash of the resolved config: computed once per trial
        return self.config.trial_id()


def apply_set(doc: dict, assignments: list[str]) -> dict:
    """--set dotted.key=yaml_value edits the spec document before expansion."""
    doc = copy.deepcopy(doc)
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", item, "expected dotted.key=value (e.g. base.train.gen_iters=50)")
        value = parse_yaml(raw, f"--set {key}")
        top, *rest = key.split(".")
        if top not in SPEC_KEYS:
            raise ConfigError("--set", key, f"unknown key '{top}' (allowed: {', '.join(SPEC_KEYS)})")
        if top in ("grid", "zip"):  # axis names are dotted themselves: grid.wgan.clip is axis 'wgan.clip'
            rest = [".".join(rest)] if rest else []
        node = doc
        for part in [top, *rest][:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError("--set", key, f"'{part}' is not a mapping")
            node = node.setdefault(part, {})
        node[([top, *rest])[-1]] = value
    return doc


def nest_dotted(base: dict, where: str) -> dict:
    """`base: {train.gen_iters: 5}` means `base: {train: {gen_iters: 5}}`, as axes are dotted keys too.
    A setting given both ways (or a dotted key under a non-mapping) is an error, not a silent choice."""
    out: dict = {}
    for key, value in base.items():
        node, parts = out, str(key).split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(where, f"base.{key}", f"'{'.'.join(parts[:i + 1])}' is not a mapping")
        last = parts[-1]
        if isinstance(value, dict):
            value = nest_dotted(value, where)
            if isinstance(node.get(last), dict):  # train: {...} and train.gen_iters: both add to train
                dup = set(node[last]) & set(value)
                if dup:
                    raise ConfigError(where, f"base.{'.'.join(parts)}.{sorted(dup)[0]}", "given twice")
                node[last].update(value)
                continue
        if last in node:
            raise ConfigError(where, f"base.{key}", "given twice (once dotted, once nested)")
        node[last] = value
    return out


def check_count(grid: dict[str, list], zipped: dict[str, list], where: str) -> None:
    """The number of trials, from the axes' lengths alone: above MAX_TRIALS, one line naming it and the axes."""
    sizes = [f"{k} ({len(v)})" for k, v in grid.items()]
    if zipped:
        sizes.append(f"zip {', '.join(zipped)} ({len(next(iter(zipped.values())))})")
    count = math.prod(len(v) for v in grid.values()) * (len(next(iter(zipped.values()))) if zipped else 1)
    if count > MAX_TRIALS:
        raise ConfigError(where, "grid", f"{count:,} trials ({' x '.join(sizes)}) is more than the limit of "
                                         f"{MAX_TRIALS:,}; split the sweep or shorten an axis")


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while trials are built: each trial is a few pydantic objects, none in
    a cycle, and the collector's passes over them were half the time of expanding a 10^5-trial grid (measured)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def with_values(base: dict, varied: dict[str, Any]) -> dict:
    """`base` with dotted keys set; only the mappings on their paths are copied (the values are never changed
    in place: validation reads them), so building a trial costs microseconds, not a deep copy."""
    d = dict(base)
    for key, value in varied.items():
        *path, last = key.split(".")
        node = d
        for part in path:
            node[part] = dict(node[part]) if isinstance(node.get(part), dict) else {}
            node = node[part]
        node[last] = value
    return d


def check_axis(key: str) -> None:
    """An axis must name a field of TrialConfig (dotted into its sections)."""
    for k in EXECUTION_KEYS:
        if key == k or key.startswith(k + "."):
            raise ValueError(f"'{k}' says how trials run, not what they compute (it is not part of a trial's id), "
                             f"so it cannot be an axis; set it in base, or per run with --set base.{key}=...")
    model: Any = TrialConfig
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            raise ValueError(f"unknown key '{part}' (allowed: {', '.join(sorted(fields or []))})")
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) and ann is not BackbonePair else None


def _validate(doc: dict, where: str, varied: dict) -> TrialConfig:
    try:
        return TrialConfig.model_validate(doc)
    except ValidationError as err:
        key, msg = explain(err)
        combo = ", ".join(f"{k}={varied_value(v)}" for k, v in varied.items())
        raise ConfigError(where, f"trial ({combo})", f"{key + ': ' if key else ''}{msg}") from None


def check_until_decided(block: Any, where: str) -> None:
    """`until_decided: {max_seeds: 10, budgets: [3000, 6000], max_hours: 2}` (any subset; {} for the defaults;
    the legacy `extensions: k` declares the budgets T, 2T, ... 2^k T)."""
    if block is None:
        return
    if not isinstance(block, dict):
        raise ConfigError(where, "until_decided", f"must be a mapping with keys {', '.join(UNTIL_DECIDED)} (or {{}})")
    for key, value in block.items():
        kind = UNTIL_DECIDED.get(key)
        if kind is None:
            raise ConfigError(where, f"until_decided.{key}", f"unknown key (allowed: {', '.join(UNTIL_DECIDED)})")
        if key == "budgets":
            ok = (isinstance(value, list) and value and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                                                           for b in value) and value == sorted(set(value)))
            if not ok:
                raise ConfigError(where, "until_decided.budgets", "must be a list of increasing generator-iteration "
                                  f"counts ≥ 1, the first equal to base.train.gen_iters (got {value!r})")
            continue
        low = 0 if key == "extensions" else 1
        if isinstance(value, bool) or not isinstance(value, kind) or value < low:
            raise ConfigError(where, f"until_decided.{key}", f"must be a number ≥ {low} (got {value!r})")
    if "budgets" in block and "extensions" in block:
        raise ConfigError(where, "until_decided", "give budgets or extensions, not both (extensions: k means the "
                                                  "budgets T, 2T, ... 2^k T)")


def load_spec(path: Path, sets: list[str] = ()) -> tuple[dict, list[Trial]]:
    """Validated spec document (after --set) and its trials. Raises ConfigError for any user error."""
    where = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(where, "", f"cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(where, "", f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                                     "a spec is a YAML text file") from None
    doc = parse_yaml(text, where)
    if not isinstance(doc, dict):
        raise ConfigError(where, "", f"expected a mapping with keys {', '.join(SPEC_KEYS)}")
    if isinstance(doc.get("base"), dict):  # nested before --set, so --set base.train.gen_iters wins over a dotted key
        doc["base"] = nest_dotted(doc["base"], where)
    doc = apply_set(doc, list(sets))
    for key in doc:
        if key not in SPEC_KEYS:
            raise ConfigError(where, str(key), f"unknown key (allowed: {', '.join(SPEC_KEYS)})")
    name = doc.get("name", Path(path).stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(where, "name", f"must be a plain name of letters, digits, '_', '-', '.' (got {name!r})")
    if len(name) > MAX_NAME:
        raise ConfigError(where, "name", f"at most {MAX_NAME} characters (got {len(name)}): it names the "
                                         "output directory runs/<name>")
    doc["name"] = name
    check_until_decided(doc.get("until_decided"), where)
    base = doc.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(where, "base", "must be a mapping of trial settings")
    base = doc["base"] = nest_dotted(base, where)
    try:
        TrialConfig.model_validate(base)
    except ValidationError as err:
        key, msg = explain(err)
        if key:  # cross-field errors (loc ()) may be resolved by the axes: checked per trial below
            raise ConfigError(where, f"base.{key}", msg) from None

    axes: dict[str, dict[str, list]] = {}
    for block in ("grid", "zip"):
        b = doc.get(block) or {}
        if not isinstance(b, dict):
            raise ConfigError(where, block, "must be a mapping of dotted.key: [values]")
        for key, values in b.items():
            try:
                check_axis(str(key))
            except ValueError as e:
                raise ConfigError(where, f"{block}.{key}", str(e)) from None
            if not isinstance(values, list) or not values:
                raise ConfigError(where, f"{block}.{key}", f"must be a non-empty list of values (got {values!r})")
            other = "zip" if block == "grid" else "grid"
            if key in axes.get(other, {}):
                raise ConfigError(where, f"{block}.{key}", f"axis is also in {other}: give each axis once")
            axes.setdefault(block, {})[str(key)] = values
    if not axes:
        raise ConfigError(where, "grid", "empty: give at least one axis, e.g. grid: {seed: [0]}")
    zipped = axes.get("zip", {})
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(where, "zip", f"all zip axes need the same length (got {lengths})")
    grid = axes.get("grid", {})
    check_count(grid, zipped, where)  # counted before anything is built: a 10^7 grid is refused at once
    for block, b in axes.items():
        for key, values in b.items():
            for i, v in enumerate(values):  # validate each value alone, so the error points at it
                _value_check(with_values(base, {key: v}), where, f"{block}.{key}[{i}]")

    zip_rows = [dict(zip(zipped, vals)) for vals in zip(*zipped.values())] if zipped else [{}]
    # every section given (as {} when base has none): pydantic then deep-copies no default section per trial,
    # a third of the cost of expanding a large grid (the same config: a section's default is its {} validated)
    base = {k: {} for k, f in TrialConfig.model_fields.items() if isinstance(f.default, BaseModel)} | base
    trials, seen = [], set()
    with _no_gc():
        for combo in itertools.product(*grid.values()):
            for zrow in zip_rows:
                varied = dict(zip(grid, combo)) | zrow
                t = Trial(_validate(with_values(base, varied), where, varied), varied)
                if t.id not in seen:  # e.g. a wgan.* axis on gan trials resolves to the same trial
                    seen.add(t.id)
                    trials.append(t)
    return doc, trials


def _value_check(d: dict, where: str, key: str) -> None:
    """Errors located at the axis itself; errors of a combination are reported per trial later."""
    axis = key.split(".", 1)[1].rsplit("[", 1)[0]
    try:
        TrialConfig.model_validate(d)
    except ValidationError as err:
        loc = ".".join(str(p) for p in err.errors()[0]["loc"])
        if loc == axis or loc.startswith(axis + "."):
            raise ConfigError(where, key, explain(err)[1]) from None


def varied_value(value: Any) -> Any:
    """How a varied value appears in a table: backbone pairs as generator/critic."""
    if isinstance(value, dict) and set(value) == {"generator", "critic"}:
        return value["generator"] if value["generator"] == value["critic"] else f"{value['generator']}/{value['critic']}"
    return value
