"""Where a result came from: the harness's git commit (and whether its tree had changes), and the host's devices.

Written into every result.json as `provenance`; the report's setup lists it. Each value is null when it cannot
be known (e.g. the harness is installed from a wheel, not run from a git checkout, or git is not installed).
"""
from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path
from typing import Optional

HARNESS_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding study/ and lightning_modules/


def _git(root: Path, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs on a network file system
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# Published folders may differ from the commit that makes them (a publication replaces its own folder): they are
# the harness's output, not its code, so neither a trial's "dirty" nor study.publish's check counts them.
OUTPUT_DIRS = ("results",)


def git_state(root: Path = HARNESS_ROOT) -> dict:
    """{'commit': sha or None, 'dirty': bool or None}. Only when `root` is itself the top of a checkout: an
    installed copy inside some other repository (a venv in a project) must not report that one's commit.
    Dirty means tracked files differ from the commit; untracked files (runs/, notes) and OUTPUT_DIRS do not count."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return {"commit": None, "dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){d}" for d in OUTPUT_DIRS))
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> Optional[str]:
    """'AMD EPYC 7B13' from /proc/cpuinfo (Linux); platform.processor() elsewhere; None when neither says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_name(device: str) -> Optional[str]:
    """The name of the CUDA device a trial ran on (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch
    return torch.cuda.get_device_name(torch.device(device))


def provenance(device: str, root: Path = HARNESS_ROOT) -> dict:
    """What result.json records under `provenance`."""
    return {"harness": {"root": str(root), **git_state(root)},
            "host": {"hostname": socket.gethostname(), "cpu": cpu_model(), "gpu": gpu_name(device)}}
