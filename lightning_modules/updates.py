"""How the two inner updates of a generator iteration are run: eagerly, compiled, or graph-captured.

AdversarialModule writes each update (critic: forward, loss, backward, optimizer step, constraint;
generator: the same) as a function of tensors only: every random draw (real batch, noise, labels, the
penalty's interpolation weights) is made *before* the call, on the device, in the order the eager step
always drew them, and the function returns a dict of tensors. Nothing inside reads a Python value that
changes between calls, so one capture can be replayed for every later call. `train.compile` picks how:

- `eager`: call the function (Lightning's optimizer wrapper and manual_backward, as always);
- `inductor`: the same function over torch.compile'd networks (forward and backward compiled; optimizer
  steps eager). The penalty's double backward runs on the eager critic (AOTAutograd has none);
- `cuda_graph`: the whole update (including the optimizer step, with capturable optimizers, and the
  clamp) captured once into a torch.cuda.CUDAGraph after a few eager warm-up calls, then replayed from
  static input buffers: a warm-up WGAN iteration's 100 critic updates replay one graph 100 times.

`auto` resolves per device type from AUTO, which holds measured decisions only (benchmarks/RESULTS.md).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

Tensors = dict[str, torch.Tensor]

ON = {"cpu": "inductor", "cuda": "cuda_graph"}  # what `on` means per device type
# What `auto` means per device type, and why. Only measured decisions belong here.
AUTO = {
    # benchmarks/compile_step.py (RESULTS.md section 7): on a 2-core CPU torch.compile was slower per iteration in
    # every case (ring8 and the MLP, GAN and WGAN: 0.81-0.95x), and compiling costs seconds per new shape
    "cpu": "eager",
    # the captured path has not yet run on a GPU here (benchmarks/gpu_capture.py measures it and checks its
    # losses against eager); until it has, a GPU trial runs what is known to work
    "cuda": "eager",
}
GRAPH_WARMUP_CALLS = 3   # eager calls before capture: lazy optimizer state, cuBLAS/cuDNN workspaces (PyTorch docs)
INDUCTOR_BACKEND = "inductor"  # torch.compile backend of the `inductor` mode (tests use a cheaper one)


def resolve(requested: str, device_type: str) -> str:
    """`auto` / `on` / `off` (train.compile) on a device type -> `eager`, `inductor` or `cuda_graph`."""
    if requested == "off":
        return "eager"
    table = ON if requested == "on" else AUTO
    return table.get(device_type, "eager")


def flat(inputs: tuple) -> list[torch.Tensor]:
    """The tensors among an update's inputs (None for absent labels; tuples of draws), in order."""
    out: list[torch.Tensor] = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, (tuple, list)):
            out += flat(tuple(x))
    return out


def set_capturable(opt: torch.optim.Optimizer, on: bool) -> None:
    """A capturable optimizer keeps its step counters on the device, so a replay advances them; a plain one keeps
    them on the host. A restored state follows the flag it was saved with (a trial may resume in another mode, or
    on another device): set the flag and move the counters, as the optimizer's load_state_dict would."""
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = on
        for p in group["params"]:
            state = opt.state.get(p, {})
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                where = p.device if on else torch.device("cpu")
                if step.device != where:
                    state["step"] = step.to(device=where, dtype=torch.float32)


class CaptureError(RuntimeError):
    """A CUDA graph could not be captured: the harness's problem, never the checkpoint's it resumed from."""


class Graph:
    """One update captured into a CUDA graph and replayed (PyTorch's "whole-network capture"). The outputs of
    a call are the graph's static outputs: the next call overwrites them, so read them before calling again.

    Calls 1..GRAPH_WARMUP_CALLS run eagerly on a side stream (they are real updates); the next call copies
    its inputs into static buffers, captures (capture runs nothing) and replays, so every call is exactly
    one update."""

    def __init__(self, fn: Callable[..., Tensors], warmup: int = GRAPH_WARMUP_CALLS):
        self.fn, self.warmup, self.calls = fn, warmup, 0
        self.graph: Optional[Any] = None
        self.static_in: list[torch.Tensor] = []
        self.static_out: Tensors = {}

    def __call__(self, *inputs: Any) -> Tensors:
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            return self._warmup(inputs)
        if self.graph is None:
            clones = {id(x): x.clone() for x in flat(inputs)}  # the graph's own input buffers
            self.static_in = [clones[id(x)] for x in flat(inputs)]
            self.graph = self._capture(tuple(_swap(x, clones) for x in inputs))
        else:
            for static, x in zip(self.static_in, flat(inputs)):
                static.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.static_out

    def _warmup(self, inputs: tuple) -> Tensors:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self, static_args: tuple) -> Any:
        """Record one call on the static arguments (nothing runs); sets the static outputs."""
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.static_out = self.fn(*static_args)
        except Exception as e:  # e.g. an operation that syncs with the host; train.compile: off avoids capture
            raise CaptureError(f"CUDA graph capture failed ({type(e).__name__}: {e}); "
                               "train.compile: off runs the updates eagerly") from e
        return graph


def _swap(x: Any, clones: dict[int, torch.Tensor]) -> Any:
    """An input with its tensors replaced by their static buffers."""
    if isinstance(x, torch.Tensor):
        return clones[id(x)]
    return type(x)(_swap(v, clones) for v in x) if isinstance(x, (tuple, list)) else x


def runner(mode: str, fn: Callable[..., Tensors]) -> Callable[..., Tensors]:
    """The caller for one update in `mode` (`inductor` compiles the networks, not the call: see module doc)."""
    return Graph(fn) if mode == "cuda_graph" else fn


def compiled(net: torch.nn.Module) -> Callable:
    """A compiled forward of `net` sharing its parameters (not registered as a submodule: checkpoints and
    state dicts keep their keys)."""
    return torch.compile(net, backend=INDUCTOR_BACKEND, dynamic=False)
