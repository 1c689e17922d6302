"""Atomic file writes: temporary file in the same folder + os.replace, so a kill at any moment
leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from study.errors import UserError


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared like every other file
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would change it for every thread meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1], 8) for ln in f if ln.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def ensure_dir(path: Path | str, what: str, todo: str = "choose another directory") -> Path:
    """Create directory `path` and check that a file can be written there; one-line UserError otherwise,
    naming it as `what` (e.g. '--out') and saying `todo`. Parents created here are removed again when it
    fails, so a refused directory leaves nothing behind (no empty ./runs)."""
    path = Path(path)
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            raise UserError(f"{what} {path}: {'' if p == path else f'{p} '}is a file, not a directory; "
                            f"{todo}")
    created, probe = [], path / f".write-test-{os.getpid()}"
    try:
        for p in [*reversed(path.parents), path]:
            if not p.is_dir():
                p.mkdir()
                created.append(p)
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        for p in reversed(created):
            try:
                p.rmdir()
            except OSError:
                pass
        at = f" ({e.filename})" if e.filename and Path(e.filename) not in (path, probe) else ""
        raise UserError(f"{what} {path}: not writable{at} ({e.strerror}); {todo}") from None
    return path


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _finite(obj: Any) -> Any:
    """NaN/inf -> null: strict JSON, readable by any tool (Python's json would write bare NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def write_yaml(path: Path | str, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())
