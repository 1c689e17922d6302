"""The set-up every worker process does before its first trial, the same for the local executor's workers
(study/executors.py) and the Ray actors (study/ray_executor.py): one function, so the two cannot drift."""
from __future__ import annotations

import os
from typing import Optional

# numpy/scipy BLAS and OpenMP read these when they load: set before either is imported (a spawned local
# worker), and capped through threadpoolctl for those already loaded (a Ray worker imports numpy itself)
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def setup_worker(threads: int, device: Optional[str] = None) -> Optional[str]:
    """Limit torch, BLAS and OpenMP to `threads` threads, keep tqdm from leaking a semaphore, and for a local
    `cuda:N` make GPU N the only one this process sees. Returns the device as the process then names it
    (`cuda:N` -> `cuda:0`; anything else unchanged). Call it before torch is imported."""
    for var in BLAS_THREAD_VARS:
        os.environ[var] = str(threads)
    if device and device.startswith("cuda:"):  # before torch is imported: the worker sees exactly its GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":")[1]
        device = "cuda:0"
    import threading

    import torch
    import tqdm
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)  # stays in force for the process (not used as a context manager)
    except ImportError:  # pragma: no cover  (ships with scikit-learn, via mlxtend)
        pass
    # tqdm (inside torch-fidelity) otherwise makes a multiprocessing semaphore, which a killed worker
    # leaks: Python's resource tracker then warns about it after every interrupted sweep
    tqdm.tqdm.set_lock(threading.RLock())
    return device


def worker_threads() -> dict:
    """The threads this process may use, as a trial records them (result.json `threads`): torch's, the BLAS
    pools' largest (None without threadpoolctl) and the variables of BLAS_THREAD_VARS."""
    import torch
    try:
        from threadpoolctl import threadpool_info
        blas = max((p["num_threads"] for p in threadpool_info()), default=None)
    except ImportError:  # pragma: no cover
        blas = None
    return {"torch": torch.get_num_threads(), "blas": blas, **{v: os.environ.get(v) for v in BLAS_THREAD_VARS}}
