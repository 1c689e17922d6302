"""Reproduce the figures of Arjovsky, Chintala, Bottou (2017), "Wasserstein GAN", from runs of this harness.

    python -m study.paper [--figure N ...] [--scale quick|full] [--out reports/paper]

Modules: plan (scale -> sweep -> overrides, figure -> sweeps and builder), analytic (Figs. 1-2), curves
(Figs. 3, 4, 8), samples (Figs. 5-7), optim (§4.2), figures_md (FIGURES.md), common (reading run directories,
style). Builders are pure functions of run directories: build_figN(run_dirs, out_dir) -> (png, csv).
"""
