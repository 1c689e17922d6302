"""--executor ray on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head and two
worker nodes, each its own raylet and worker processes): a node is lost mid-sweep, its trial runs again on the
other node from its last checkpoint, and every result equals the same sweep run by the local executor."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from study.ray_executor import MARKER, plan_ray, shared_storage_problem
from study.sweep import main

SPEC = """name: t
base:
  data: {name: ring8, holdout: 200, synthetic_size: 4096}
  model: {nz: 2, mlp_width: 32}
  train: {gen_iters: 300, batch_size: 32, checkpoint_every: 25}
  eval: {every: 100, num_samples: 256, w1_points: 128, w1_draws: 1, grid_size: 16}
  wgan: {warmup: false}
grid:
  loss: [gan, wgan]
  backbone: [mlp]
  seed: [0, 1]
"""


def results(out):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))}


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            pass
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_plan_ray():
    assert plan_ray({"CPU": 2.0}, 2, None) == plan_ray({"CPU": 2.0}, None, None)
    assert plan_ray({"CPU": 64.0}, None, None).actors == 64 and plan_ray({"CPU": 64.0}, 8, None).cpus == 8
    # GPUs: trials per GPU as on one machine (cores per GPU // 2, at most 8), each a share of its GPU
    p = plan_ray({"CPU": 32.0, "GPU": 4.0}, None, None)
    assert (p.actors, p.cpus, p.gpus) == (16, 2, 0.25)
    assert plan_ray({"CPU": 32.0, "GPU": 4.0}, 6, None).gpus == 0.5 and plan_ray({"CPU": 8.0, "GPU": 1.0}, None, 1).gpus == 1


def test_shared_storage_check(tmp_path):
    marker = tmp_path / MARKER
    marker.write_text("token")
    assert shared_storage_problem(str(marker), "token") is None
    assert "not visible from Ray node" in shared_storage_problem(str(marker), "another sweep's token")
    assert "storage every node sees" in shared_storage_problem(str(tmp_path / "elsewhere" / MARKER), "token")


@pytest.mark.slow
def test_losing_a_node_mid_sweep(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    spec = tmp_path / "t.yaml"
    spec.write_text(SPEC)
    out_ray, out_local = tmp_path / "ray", tmp_path / "local"
    # a trial that fails by itself (a file where its sample folder goes) is recorded as failed, not retried
    from study.spec import load_spec
    own = next(t.id for t in load_spec(spec, [])[1] if t.id.startswith("gan_") and "_s1_" in t.id)
    for out in (out_ray, out_local):
        (out / own).mkdir(parents=True)
        (out / own / "samples").write_text("not a folder")
    # fast health checks: the lost node is noticed in about a second instead of ~30 s
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,  # the head runs no trial: losing a worker node loses trials
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    removed: dict = {}

    def lose_a_node_mid_trial():
        """Once both actors are past a checkpoint of their first trial, remove the second worker node."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            busy = [d for d in out_ray.glob("*_s*") if any(d.glob("checkpoints/iter_*.ckpt"))
                    and not (d / "result.json").exists()]
            if len(busy) == 2:
                # a lost machine takes all its processes at once: the node's raylet and its worker processes
                # (left alone, a worker outlives its raylet by up to a second and could still write)
                workers = _descendants(nodes[1].all_processes["raylet"][0].process.pid)
                cluster.remove_node(nodes[1], allow_graceful=False)
                for pid in workers:
                    _kill(pid)
                removed["at"] = {d.name: sorted(p.name for p in d.glob("checkpoints/*")) for d in busy}
                return
            time.sleep(0.05)

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        watcher = threading.Thread(target=lose_a_node_mid_trial, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        rc = main([str(spec), "--out", str(out_ray), "--executor", "ray", "--workers", "2"])
        watcher.join(timeout=1)
        wall = time.monotonic() - t0
    finally:
        ray.shutdown()
        cluster.shutdown()
    err = capsys.readouterr().err
    print(f"ray sweep: exit {rc} in {wall:.0f} s; node removed while these ran: {removed.get('at')}\n{err}")
    assert removed, "the two first trials never ran at the same time past a checkpoint"
    assert rc == 1 and "3 completed, 1 failed" in err  # exit 1: some trial failed
    assert "worker lost (ActorDiedError" in err and "it runs again, from its last checkpoint (attempt 2 of 3)" in err
    assert own not in err.split("worker lost")[0].splitlines()[-1]  # requeued: another trial
    ray_res = results(out_ray)
    assert len(ray_res) == 4 and ray_res.pop(own)["status"] == "failed"
    assert {r["status"] for r in ray_res.values()} == {"completed"}
    resumed = {t: r["resumed_from"] for t, r in ray_res.items() if r["resumed_from"]}
    assert len(resumed) == 1 and set(resumed) <= set(removed["at"])  # the lost node's trial, from a checkpoint
    assert not (out_ray / MARKER).exists()

    assert main([str(spec), "--out", str(out_local), "--workers", "2"]) == 1
    local = results(out_local)
    assert local.pop(own)["status"] == "failed" and set(local) == set(ray_res)
    for tid, r in ray_res.items():
        for key in ("gen_iters", "critic_iters", "final", "correlation", "noise"):
            assert r[key] == local[tid][key], (tid, key)
    print(f"completed trials identical to the local sweep: {sorted(ray_res)}; resumed: {resumed}")
