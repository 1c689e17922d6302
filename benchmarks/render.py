"""RESULTS.md from benchmarks/results.json: one section per benchmark, each with its figures, its
verdict against the issue's target where it has one, and the command that reproduces it."""
from __future__ import annotations

def _fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def _table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _meta(r: dict) -> str:
    run = r.get("_run", {})
    git = r.get("machine", {}).get("git")
    if run.get("merged_from"):  # measured elsewhere (a lent GPU machine), merged with --merge
        m = r.get("machine", {})
        return (f"_Measured on {m.get('cuda') or m.get('cpu', '?')} ({m.get('cores', '?')} cores, torch {m.get('torch', '?')}), "
                f"load average {m.get('load_avg_1m', '?')} at the start, {r.get('seconds', '?')} s; merged "
                f"{run.get('when', '?')}. Reproduce there: `{r.get('command', '')}`_")
    return (f"_Measured {run.get('when', '?')}" + (f" on {git}" if git else "") + f", load average {run.get('load_avg_1m_before', '?')} before / "
            f"{run.get('load_avg_1m_after', '?')} after, {run.get('wall_s', '?')} s. Reproduce: "
            f"`{run.get('command', r.get('command', ''))}`_")


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def render_step(r: dict) -> str:
    rows = []
    for x in r["results"]:
        target = r["target_ratio"] if x["case"] in ("mlp_mnist5k", "dcgan32") else None
        rows.append([x["case"], x["loss"], x["iters"], x["plain_ms"], x["lightning_ms"], x["overhead_ms"], x["ratio"],
                     x["ratio_cpu"], x.get("lean_ratio"), "yes" if x["same_losses"] else "NO",
                     _verdict(x["ratio"] <= target) if target else "report"])
    return "\n".join([
        f"Time per generator iteration, Lightning module (trainer.fit as run_trial) vs the plain loop, "
        f"{r['threads']} torch thread(s) both, steady state (WGAN warm-up {'on' if r['wgan_warmup'] else 'off'}: "
        f"every timed iteration has n_critic = 5); per run the median iteration, then the median over "
        f"{r['results'][0]['repeats']} interleaved runs of the paired ratio (Lightning run / adjacent plain run). `cpu ratio`: the same from process CPU time (less sensitive to other load). "
        f"`lean`: the module with the changes of benchmarks/variants.py (raw optimizers, loss.backward, "
        f"requires_grad_ toggling, foreach clamp; the last one would speed up the plain loop too, so a lean ratio "
        f"below 1 is possible). `same losses`: both paths (and lean) give bit-identical losses after the window.", "",
        _table(["case", "loss", "iters", "plain ms", "Lightning ms", "overhead ms", "ratio", "cpu ratio",
                "lean ratio", "same losses", "target <= 1.05"], rows), "", *_step_extra(r), _meta(r)])


def _step_extra(r: dict) -> list[str]:
    out = []
    loop = r.get("lightning_loop_overhead")
    if loop:
        out += [f"Lightning's loop alone (a training step that does nothing; fit loop, hooks, callbacks, CSV row): "
                f"{loop['us_per_iter']} us per generator iteration ({loop['cpu_us_per_iter']} us CPU).", ""]
    pc = r.get("per_call")
    if pc:
        out += ["Per call, inside a running trainer (tiny critic, so the math is small; minimum over alternating "
                "rounds): Lightning's indirection against its plain equivalent, in microseconds. A generator "
                "iteration has n_critic + 1 optimizer steps and backward passes and two toggle/untoggle pairs.", "",
                _table(["call", "Lightning us", "plain us", "extra us"],
                       [[k, v["lightning_us"], v["plain_us"], v["extra_us"]] for k, v in pc.items()]), ""]
    abl = [(x["case"], x["loss"], x["ablation"]) for x in r["results"] if x.get("ablation")]
    for case, loss, a in abl:
        out += [f"One change at a time ({case} {loss}), time per generator iteration relative to the unchanged module:", "",
                _table(["change", "ms", "vs module (wall)", "vs module (CPU)"],
                       [[k, v["ms"], v["vs_lightning"], v["vs_lightning_cpu"]] for k, v in a.items()]), ""]
    return out


def render_data(r: dict) -> str:
    rows = [[x["case"], x["batch"], x["sampler_samples_per_s"], x["dataloader_samples_per_s"], x["sampler_vs_dataloader"],
             x["step_samples_per_s"], x["sampler_vs_step"], x["share_of_step"]] for x in r["results"]]
    return "\n".join([
        "Real samples per second: RealSampler.next() alone (indexing in-memory tensors on the device), a "
        "torch DataLoader over the same tensor (num_workers=0) for comparison, and what the WGAN step consumes "
        "(5 critic batches per generator iteration). `share of step`: fraction of a step spent drawing batches.", "",
        _table(["case", "batch", "RealSampler samples/s", "DataLoader samples/s", "sampler / loader",
                "step samples/s", "sampler / step", "share of step"], rows), "", _meta(r)])


def render_flops(r: dict) -> str:
    rows = [[x["case"], x["loss"], x["batch"], x["gflop_per_gen_iter"], x["s_per_gen_iter"], x["gflop_per_s"],
             x["fraction_of_gemm"], x["critic_alone_gflop_per_s"], x["critic_alone_fraction_of_gemm"]]
            for x in r["results"]]
    prof = []
    for x in r["results"]:
        if x.get("op_profile"):
            top = ", ".join(f"{o['op']} {o['share']:.0%}" for o in x["op_profile"][:6])
            prof.append(f"- {x['case']} {x['loss']}: {top}")
    return "\n".join([
        f"Model FLOPs of one steady-state generator iteration (FlopCounterMode: every critic and generator "
        f"update, forward and backward) / its time through the harness, against a {r['gemm']['n']}^2 fp32 GEMM "
        f"with the same {r['threads']} thread(s) in the same run: **{r['gemm']['gflop_per_s']} GFLOP/s** "
        f"(all GEMM measurements: {r['gemm']['all']}).", "",
        _table(["case", "loss", "batch", "GFLOP / gen iter", "s / gen iter", "GFLOP/s", "fraction of GEMM",
                "critic alone GFLOP/s", "critic alone fraction"], rows), "",
        "Self CPU time by operator over one iteration (torch.profiler):", "", *prof, "", _meta(r)])


def render_fanout(r: dict) -> str:
    rows = []
    for key, runs in r["sweeps"].items():
        for s in runs:
            rows.append([key, s["trials"], s["statuses"], s["wall_s"], s["trials_per_hour"], s["sum_trial_wall_s"],
                         s["sum_eval_s"], s["load_avg_1m"]])
    parts = ["Quick sweep with (`" + " ".join(f"--set {x}" for x in r["sets"]) + "`), default workers "
             f"({r['cores']} cores: {r['cores']} workers x 1 thread) against `--workers 1` (1 worker x "
             f"{r['cores']} threads); both share one warmed evaluation cache.", "",
             _table(["workers", "trials", "statuses", "sweep wall s", "trials / hour", "sum trial wall s",
                     "sum eval s", "load after"], rows), "",
             f"**Speedup (trials per hour, default / --workers 1): {r['speedup']}** (target >= {r['target_speedup']}: "
             f"{_verdict(r['speedup'] >= r['target_speedup'])})."]
    tp = r.get("threads_per_trial")
    if tp:
        parts += ["", f"One trial's step with 1 torch thread (a default worker) and with all {r['cores']} cores (the "
                  "one worker of `--workers 1`), plain loop, interleaved:", "",
                  _table(["case", "ms / gen iter, 1 thread", f"ms / gen iter, {r['cores']} threads", "speedup from threads"],
                         [[x["case"], x["ms_1_thread"], x.get(f"ms_{r['cores']}_threads"), x["speedup_from_threads"]]
                          for x in tp])]
    comp = r.get("components")
    if comp:
        parts += ["", "Start-up of a worker, measured in a fresh interpreter (what a worker pays once): " +
                  ", ".join(f"{k} {_fmt(v)}" for k, v in comp.items() if not k.endswith("error")) + "."]
    probe = r.get("startup_probe")
    if probe:
        ready = ", ".join(f"{x['inside_worker_s']} s inside / {x['since_spawn_s']} s since spawn" for x in probe["ready"])
        parts += ["", f"Paid once per worker: {probe['trials']} identical tiny trials (ring8 GAN, {probe.get('gen_iters', '?')} "
                  f"generator iterations, small final evaluation) on {probe['workers']} workers (study.executors.run_local) "
                  f"gave **{probe['ready_events']} 'ready' events**, one per worker (start-up: {ready}); "
                  f"trial wall s in each worker's order: {[w['trial_wall_s_in_order'] for w in probe['per_worker']]}: "
                  f"first trial on a worker {probe['first_trial_s']} s, later ones {probe['later_trial_s']} s, of which "
                  f"{probe.get('later_trial_fixed_s')} s is not evaluation (the per-trial fixed cost: config, "
                  f"modules, Trainer, logger, result files)."]
    return "\n".join(parts + ["", _meta(r)])


def render_eval(r: dict) -> str:
    rows = [[t["trial"], t["status"], t["gen_iters"], t["wall_s"], t["eval_s"], t["eval_share"]] for t in r["trials"]]
    parts = [f"Source: {r['source']}" + (f" (`{r['sweep'].get('command', '')}`)" if r.get("sweep") else "") + ".", "",
             _table(["trial", "status", "gen iters", "wall s", "eval s", "eval share"], rows), "",
             f"**Eval share: max {r['max_share']}, median {r['median_share']}, all trials together "
             f"{r['total_share']}** (target <= {r['target_share']}: "
             f"{_verdict(r['max_share'] is not None and r['max_share'] <= r['target_share'])})."]
    if r.get("eval_point_parts"):
        parts += ["", "One evaluation point, in parts (seconds; a fresh, untrained generator, whose collapsed samples "
                  "are the slow case of exact W1):", "",
                  _table(["case", "samples", "sample s", "metrics s", "final point metrics s", "grid s",
                          "first point s", "evaluator build s"],
                         [[p["case"], p["num_samples"], p.get("sample_s"), p.get("metrics_s"),
                           p.get("final_point_metrics_s"), p.get("grid_s"), p.get("first_point_s"),
                           p.get("evaluator_build_s")] for p in r["eval_point_parts"]])]
    if r.get("candidates"):
        parts += ["", "Proposed cheaper metrics, timed on each trial's final samples against the current code "
                  "(`rel diff`: relative difference of the values); projected share = eval share with the saving "
                  "removed at every evaluation point where the metric runs:", "",
                  _table(["trial", "metric", "current s", "proposed", "proposed s", "rel diff", "points",
                          "eval share", "projected share"],
                         [[c["trial"], c.get("metric"), c.get("current_s"), c.get("proposed"), c.get("proposed_s"),
                           c.get("rel_diff"), c.get("eval_points"), c.get("eval_share"), c.get("projected_eval_share")]
                          for c in r["candidates"]])]
    return "\n".join(parts + ["", _meta(r)])


def render_profile(r: dict) -> str:
    if "by_category" not in r:
        return f"Not available: {r.get('error')}\n\n{_meta(r)}"
    rows = [[c["category"], c["share"]] for c in r["by_category"]]
    top = [[f["frame"].replace("|", "/"), f["share"]] for f in r["top_self_outside_model_math"][:10]]
    return "\n".join([
        f"py-spy over every process of `{r.get('sweep', {}).get('command', '?')}` "
        f"({r['samples']} samples, on-CPU only). Share of all samples:", "",
        _table(["category", "share"], rows), "",
        f"**Largest hotspot that is not model math: {r['largest_non_model_category']['category']} "
        f"({r['largest_non_model_category']['share']:.1%})**. Innermost frames outside model math:", "",
        _table(["frame (self time)", "share"], top), "", _meta(r)])


def render_gpu(r: dict) -> str:
    if r.get("status") != "measured":
        return "\n".join([
            "**GPU time per generator iteration (dcgan 64x64, batch 64): not measured yet.** "
            "**Trials-per-device choice: not measured yet.** "
            f"({r.get('reason', r.get('error', 'no CUDA device'))}.) The benchmark exists and runs where CUDA is "
            "available: it times the harness and the plain loop on dcgan64 (wgan and gan) and compares aggregate "
            "generator iterations per second with k = 1, 2, 4 concurrent trial processes on the GPU "
            "(`--trials-per-device k`).", "", _meta(r)])
    rows = [[x["case"], x["loss"], x["batch"], x["lightning_ms_per_gen_iter"], x["plain_ms_per_gen_iter"], x["ratio"]]
            for x in r["results"]]
    k_rows = [[k.get("case"), k["k"], k.get("s_per_iter_each"), k.get("iters_per_s_total"), k.get("gpu_util_mean_pct"),
               k.get("gpu_util_max_pct"), None if k.get("gpu_mem_max_mib") is None else int(k["gpu_mem_max_mib"]), k.get("error")]
              for k in r["trials_per_device"]]
    best = r["best_trials_per_device"]
    best = ", ".join(f"{c}: {k}" for c, k in best.items()) if isinstance(best, dict) else best
    return "\n".join([f"Device: {r['device']}, {r['threads']} CPU thread(s) per process.", "",
                      _table(["case", "loss", "batch", "Lightning ms / gen iter", "plain ms / gen iter", "ratio"], rows), "",
                      "k concurrent wgan trials on the one GPU (what `--trials-per-device k` runs); GPU utilisation "
                      "sampled by nvidia-smi every 100 ms while they ran:", "",
                      _table(["case", "trials per device", "s / iter each", "gen iters / s total", "GPU util mean %",
                              "GPU util max %", "GPU MiB max", "error"], k_rows), "",
                      f"**Trials per device that saturate the GPU (smallest k within 10% of the best total): {best}**. "
                      "Small trials are launch-bound (one process keeps the GPU busy a few % of the time), so "
                      "throughput grows with every process up to 8; paper-sized dcgan64 trials saturate at 2-4 and "
                      "lose nothing at 8. Hence the sweep's default, `--trials-per-device` = CPU cores per GPU // 2, "
                      "at most 8 (8 on this 16-core machine; `study/executors.py`).",
                      "", *(["The quick sweep end to end (16 trials, `python -m study.sweep sweeps/quick.yaml "
                             "--trials-per-device k`):", "",
                             _table(["trials per device", "wall s", "exit code"],
                                    [[q["trials_per_device"], q["wall_s"], q["rc"]] for q in r["quick_sweep"]]), ""]
                           if r.get("quick_sweep") else []), _meta(r)])


def render_compile(r: dict, meta: bool = True) -> str:
    rows = [[x["case"], x["loss"], x["batch"], x["mode"], x["eager_ms"], x["compiled_ms"], x["speedup"],
             x.get("one_off_first_s"), x["one_off_s"], x["loss_rel_diff"], "yes" if x["compiled_repeatable"] else "NO"]
            for x in r["results"]]
    faster = [x for x in r["results"] if x["speedup"] > 1]
    return "\n".join([
        f"Per trial through the harness (trainer.fit as run_trial), {r['threads']} torch thread(s), device {r['device']}: "
        "milliseconds per steady-state generator iteration with `train.compile: off` (eager) and `on`, median over "
        f"{r['results'][0]['repeats']} interleaved runs of {r['results'][0]['iters']} iterations after the first "
        f"{r['results'][0]['skip']}; `speedup` = eager / compiled (median of paired runs); `one-off s` = what the "
        "first iterations cost beyond steady ones (compiling or capturing): `first` in the row's first compiled run, "
        "in a process that started with an empty code cache (it keeps what earlier rows compiled: ring8's GAN and "
        "WGAN share their networks), `median` over runs (later trials of the same "
        "shapes reuse the compiled code); `loss diff` = largest relative difference of the "
        "losses after the window, compiled vs eager; `repeatable` = compiled runs agree bit for bit.", "",
        _table(["case", "loss", "batch", "mode", "eager ms", "compiled ms", "speedup", "one-off s first",
                "one-off s median", "loss diff", "repeatable"], rows), "",
        (f"**Compiled faster in {len(faster)} of {len(rows)} cases**" + (
            ": `auto` stays eager on this device (lightning_modules/updates.py, AUTO)." if not faster else
            ": see AUTO in lightning_modules/updates.py.")), *(["", _meta(r)] if meta else [])])


TARGETS = "ring8 WGAN >= 10x per trial over eager; 100,000 ring8 WGAN iterations <= 60 s; quick sweep <= 20 s; " \
          "mean GPU utilisation >= 60%; arch.yaml <= 20 min"


def render_capture(r: dict) -> str:
    if r.get("status") != "measured":
        return "\n".join([
            "**Not measured yet** (" + r.get("reason", r.get("status", "no CUDA device")) + "): every GPU figure of "
            "issue 13 is open: eager vs captured generator iterations per second (ring8, quick_dcgan16, dcgan32, "
            "dcgan64; GAN and WGAN), 100,000 ring8 WGAN iterations, the quick sweep's wall time and GPU utilisation, "
            "trials per device with captured steps, arch.yaml's wall time. Targets: " + TARGETS + ". "
            "One prepared run measures them all: `python -m benchmarks.gpu_capture --out $OUT/gpu_capture.json` on "
            "the GPU machine (about 9 minutes), then `python -m benchmarks.run --merge gpu_capture=FILE` here. Until "
            "then `train.compile: auto` runs GPU trials eagerly.", "", _meta(r)])
    parts = r["parts"]
    out = [f"Device: {r.get('device')}. Targets: {TARGETS}.", ""]
    t = parts.get("cuda_tests", {})
    out += [f"CUDA tests (captured vs eager losses, exact resume): {t.get('summary', t.get('error', t.get('skipped')))}", ""]
    st = parts.get("steps", {})
    if st.get("results"):
        out += [render_compile(st, meta=False), ""]
    lr = parts.get("long_ring8", {})
    if lr:
        out += [f"One ring8 WGAN trial (MLP width {lr.get('mlp_width')}, batch 256, warm-up on, {lr.get('mode')}): "
                f"{lr.get('gen_iters')} generator iterations in {rnd_s(lr.get('wall_s'))} s, steady "
                f"{rnd_s(lr.get('steady_gen_it_per_s'))} it/s; 100,000 iterations: {lr.get('wall_100k_s')} s "
                f"({lr.get('wall_100k_is')}). {lr.get('error', '')}", ""]
    qs = parts.get("quick_sweep", {})
    if qs and "on" in qs:
        out += [_table(["quick sweep", "wall s", "exit", "GPU util mean %", "GPU util max %", "modes"],
                       [[m, q.get("wall_s"), q.get("rc"), q.get("gpu_util_mean_pct"), q.get("gpu_util_max_pct"),
                         q.get("compile_modes")] for m, q in qs.items() if isinstance(q, dict)]), ""]
    pk = parts.get("packing", {})
    if pk.get("rows"):
        out += [_table(["k (captured quick_dcgan16 wgan)", "gen iters / s total", "GPU util mean %", "error"],
                       [[x["k"], x.get("iters_per_s_total"), x.get("gpu_util_mean_pct"), x.get("error")]
                        for x in pk["rows"]]), "", f"Smallest k within 10% of the best: {pk.get('best_trials_per_device')}", ""]
    ar = parts.get("arch", {})
    if ar:
        out += [f"arch.yaml cut to its first iterations ({ar.get('sets')}): {ar.get('wall_s')} s, exit {ar.get('rc')}; "
                f"projected full sweep {ar.get('projected_full_s')} s ({ar.get('projection', ar.get('last_line'))}).", ""]
    out += ["Targets (issue 13):", "", _table(["target", "measured", "verdict"], _capture_targets(parts)), ""]
    return "\n".join(out + [_meta(r)])


def _capture_targets(parts: dict) -> list[list]:
    """Each target of issue 13 against what this run measured ('-' where a part did not run)."""
    ring = next((x for x in parts.get("steps", {}).get("results", []) if x["case"] == "ring8" and x["loss"] == "wgan"), {})
    qs = parts.get("quick_sweep", {}).get("on", {})
    ar = parts.get("arch", {})
    rows = [("ring8 WGAN speedup per trial >= 10x", ring.get("speedup"), lambda v: v >= 10),
            ("100,000 ring8 WGAN iterations <= 60 s", parts.get("long_ring8", {}).get("wall_100k_s"), lambda v: v <= 60),
            ("quick sweep wall <= 20 s", qs.get("wall_s") if qs.get("rc") == 0 else None, lambda v: v <= 20),
            ("mean GPU utilisation in the quick sweep >= 60%", qs.get("gpu_util_mean_pct"), lambda v: v >= 60),
            ("arch.yaml <= 20 min (projected)", ar.get("projected_full_s"), lambda v: v <= 1200)]
    return [[name, v, "-" if v is None else _verdict(ok(v))] for name, v, ok in rows]


def rnd_s(x):
    return None if x is None else float(f"{x:.4g}")


SECTIONS = [
    ("step_overhead", "1. Training-step overhead (Lightning vs plain PyTorch)", render_step),
    ("eval_fraction", "2. Evaluation share of a quick-sweep trial", render_eval),
    ("fanout", "3. Sweep fan-out and start-up cost", render_fanout),
    ("fanout_long", "3b. Fan-out on the quick sweep as shipped (600 generator iterations, WGAN warm-up kept)",
     render_fanout),
    ("data_path", "4. Data path", render_data),
    ("gpu", "5. GPU", render_gpu),
    ("flops", "6. Distance to the physical limit (FLOP/s vs GEMM)", render_flops),
    ("flops_2threads", "6b. The same with 2 threads", render_flops),
    ("compile_cpu", "7. Compiled updates on CPU (train.compile)", render_compile),
    ("gpu_capture", "8. Graph-captured updates on a GPU (train.compile on CUDA)", render_capture),
    ("profile_sweep", "Profile of the quick sweep", render_profile),
]


def render(results: dict) -> str:
    machine = next((r["machine"] for r in results.values() if "machine" in r), {})
    head = ["# Benchmarks", "",
            "Generated by `python -m benchmarks.run` (do not edit by hand). Every figure below comes from one "
            "benchmark run; comparisons are side by side within that run (interleaved where repeated) and quoted as "
            "ratios, because absolute times on this shared machine drift with other users' load.", "",
            f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, CUDA: {machine.get('cuda') or 'none'}. "
            f"Versions: Python {machine.get('python', '?')}, torch {machine.get('torch', '?')}, "
            f"pytorch_lightning {machine.get('pytorch_lightning', '?')}.", ""]
    body = []
    for key, title, fn in SECTIONS:
        body += [f"## {title}", ""]
        r = results.get(key)
        if r is None:
            body += ["Not run yet.", ""]
        elif "error" in r and key != "profile_sweep":
            body += [f"Failed: `{r['error']}`", "", _meta(r), ""]
        else:
            try:
                body += [fn(r), ""]
            except (KeyError, TypeError, IndexError) as e:
                body += [f"(could not render: {type(e).__name__}: {e})", "", _meta(r), ""]
    return "\n".join(head + body)
