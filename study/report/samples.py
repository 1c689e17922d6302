"""Sample grids side by side (GAN | WGAN) per group, and an animated GIF per cell of the
fixed-noise grids over training (the trainer writes samples/grid_<step>.png at each evaluation)."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from study.report.figures import hue_order, slug

MIN_WIDTH = 200    # tiles and GIF frames: room for a readable caption; small grids are upscaled
MAX_SEEDS = 3      # rows per sheet: enough to see seed-to-seed variation, small enough to read
MAX_FRAMES = 30    # per GIF: evenly spaced, the last grid always included
FRAME_MS = 400
LINE = 16          # caption line height (px) at the 13 px font


def grid_step(path: Path) -> int:
    m = re.search(r"grid_(\d+)", path.name)
    return int(m[1]) if m else -1


def _image(path: Path):
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception:  # an unreadable PNG becomes an empty panel, not a crash
        return None


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _scaled(size: tuple[int, int]) -> tuple[int, int]:
    k = max(1, -(-MIN_WIDTH // size[0]))  # integer upscale keeps the generated pixels sharp
    return size[0] * k, size[1] * k


def _tile(img, lines: list[str], size: tuple[int, int], n_lines: int):
    """The image under a white caption band of n_lines lines (Pillow, not matplotlib: sample
    sheets and GIF frames are pictures, and drawing them with Pillow is fast)."""
    band = 6 + LINE * n_lines
    tile = Image.new("RGB", (size[0], size[1] + band), "white")
    if img is not None:
        tile.paste(img.resize(size, Image.NEAREST) if img.size != size else img, (0, band))
    draw, font = ImageDraw.Draw(tile), _font()
    for i, line in enumerate(lines):
        draw.text((4, 3 + LINE * i), line, fill="black", font=font)
    return tile


def _sheet_seeds(g) -> list:
    """The seeds a group's sheet shows: those most of its cells have, lowest first, at most MAX_SEEDS."""
    return sorted(sorted(g["seed"].dropna().unique(), key=lambda s: (-(g["seed"] == s).sum(), s))[:MAX_SEEDS])


def sheet_trials(run) -> list[str]:
    """The trials whose last grid a sample sheet shows (a published folder keeps only these grids)."""
    t = run.trials[run.trials["trial_id"].map(lambda tid: bool(run.grids.get(tid)))]
    return [tid for _, g in t.groupby("group", sort=False) for tid in g.loc[g["seed"].isin(_sheet_seeds(g)), "trial_id"]]


def sample_sheets(run, out: Path) -> list[tuple[Path, str]]:
    """One sheet per group: columns = losses (GAN first), rows = seeds, each the trial's last grid."""
    sheets = []
    t = run.trials[run.trials["trial_id"].map(lambda tid: bool(run.grids.get(tid)))]
    for group, g in t.groupby("group", sort=False):
        hues = hue_order(g["hue"])
        seeds = _sheet_seeds(g)
        last = {(r["seed"], r["hue"]): r for _, r in g.iterrows()}
        first = _image(run.grids[g.iloc[0]["trial_id"]][-1])
        size = _scaled(first.size if first is not None else (MIN_WIDTH, MIN_WIDTH))
        width = max(20, size[0] // 7)
        captions = {}
        for seed in seeds:
            for hue in hues:
                r = last.get((seed, hue))
                status = "" if r is None or r["status"] == "completed" else f" · {r['status']}"
                where = "no samples" if r is None else f"iteration {grid_step(run.grids[r['trial_id']][-1])}"
                captions[(seed, hue)] = textwrap.wrap(f"{hue} · seed {seed}{status}", width) + [where]
        n_lines = max(len(c) for c in captions.values())
        tiles = [[_tile(_image(run.grids[last[(s, h)]["trial_id"]][-1]) if (s, h) in last else None,
                        captions[(s, h)], size, n_lines) for h in hues] for s in seeds]
        gap, head = 10, 30
        tw, th = tiles[0][0].size
        sheet = Image.new("RGB", (len(hues) * (tw + gap) - gap, head + len(seeds) * (th + gap) - gap), "white")
        ImageDraw.Draw(sheet).text((4, 6), f"Samples (fixed noise, last evaluation): {group}", fill="black",
                                   font=_font(16))
        for i, row in enumerate(tiles):
            for j, tile in enumerate(row):
                sheet.paste(tile, (j * (tw + gap), head + i * (th + gap)))
        path = out / f"samples_{slug(group)}.png"
        sheet.save(path, optimize=True)
        sheets.append((path, f"Last fixed-noise samples, {group}: columns = loss, rows = seeds."))
    return sheets


def animation(paths: list[Path], caption: str, seed, dest: Path) -> Path | None:
    """GIF of the grids in step order, each frame captioned with its generator iteration."""
    if len(paths) > MAX_FRAMES:
        idx = sorted({round(i * (len(paths) - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)})
        paths = [paths[i] for i in idx]
    images = [(p, img) for p in paths if (img := _image(p)) is not None]
    if not images:
        return None
    size = _scaled(images[0][1].size)
    head = textwrap.wrap(caption, max(20, size[0] // 7))
    frames = [_tile(img, head + [f"seed {seed} · generator iteration {grid_step(p)}"], size, len(head) + 1)
              # one fast palette per frame: Pillow's default GIF quantizer is ~30x slower
              .quantize(colors=255, method=2) for p, img in images]  # 2: Image.Quantize.FASTOCTREE
    durations = [FRAME_MS] * (len(frames) - 1) + [FRAME_MS * 5]  # linger on the final samples
    frames[0].save(dest, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return dest


def animations(run, out: Path) -> list[tuple[Path, str]]:
    """One GIF per cell, from its lowest-seed trial that has grids."""
    gifs = []
    for cell, t in run.trials.groupby("cell", sort=False):
        with_grids = t[t["trial_id"].map(lambda tid: len(run.grids.get(tid, [])) > 0)].sort_values("seed")
        if with_grids.empty:
            continue
        r = with_grids.iloc[0]
        dest = animation(run.grids[r["trial_id"]], cell, r["seed"], out / f"anim_{slug(cell)}.gif")
        if dest:
            gifs.append((dest, f"{cell}, seed {r['seed']} ({r['trial_id']}): fixed-noise samples over training."))
    return gifs
