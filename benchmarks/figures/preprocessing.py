"""The pixel contract across languages: golden cases and the largest Kotlin-vs-Python difference.

    python -m benchmarks.figures.preprocessing

Regenerates the golden vectors (golden/preprocessing, `python -m mobilepack.golden`) into a temporary
folder and checks they equal the committed ones, compiles the Android app's pure-Kotlin ImageContract
with Debian's kotlinc and runs it on the JVM (ImageIO decoding) over every case, and prints the number of
cases by kind, the largest Kotlin-vs-Python difference in LSB, and how many values differ. Then, on all
1,797 digits images, how many pixels the contract's resize changes against Pillow's BILINEAR resize that
training used before (0 means every trained digits model and accuracy figure is unchanged), and how far
Pillow 13's own resize is from the contract on the golden cases. Swift is not compiled: no Swift
toolchain installs on this Debian machine.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import figure_parser, work_dir

KINDS = (("EXIF orientation", r"orient\d"), ("damaged EXIF", r"^exif-"), ("alpha", r"rgba|alpha"),
         ("grayscale", r"gray"), ("16-bit", r"16"), ("palette", r"palette"), ("enlarged", r"-up$"),
         ("shrunk", r"-down$|shrink|one-pixel"), ("bicubic", r"bicubic|taller"), ("nearest", r"nearest"))


def golden_figures(work: Path) -> list[str]:
    from mobilepack.golden import ROOT, compile_kotlin_checks, run_contract_check, write_golden

    count = write_golden(work / "golden")
    names = [ln.split()[0] for ln in (work / "golden/cases.txt").read_text().splitlines()]
    committed = (ROOT / "golden/preprocessing/cases.txt").read_text() == (work / "golden/cases.txt").read_text()
    kinds = ", ".join(f"{k} {sum(bool(re.search(p, n)) for n in names)}" for k, p in KINDS)
    t0 = time.perf_counter()
    build = compile_kotlin_checks(work / "checks.jar")
    if build.returncode != 0:
        raise SystemExit(f"kotlinc failed: {build.stderr[-400:]}")
    t1 = time.perf_counter()
    check = run_contract_check(work / "checks.jar", "golden", work / "golden")
    t2 = time.perf_counter()
    summary = [ln for ln in check.stdout.splitlines() if ln.startswith("golden:")]
    return [f"golden cases: {count} (committed cases.txt {'matches' if committed else 'DIFFERS from'} a fresh run)",
            f"  by kind: {kinds}",
            f"Kotlin (JVM, ImageIO decode) vs Python: {summary[0] if summary else check.stdout[-300:]}",
            f"  kotlinc {t1 - t0:.0f} s, JVM run {t2 - t1:.1f} s, exit code {check.returncode}",
            "Swift vs Python: not run here (no Swift toolchain on Debian: its 'swift' package is OpenStack Swift)"]


def pillow_figures(work: Path) -> list[str]:
    from PIL import Image

    from mobilepack.golden import ROOT
    from train.data import load_digits_dataset
    from train.imagecontract import resample, upright_rgb

    images = load_digits_dataset().images
    lines = []
    for size in (16, 32):
        diff = sum(int((resample(im, (size, size)) != np.asarray(Image.fromarray(im).resize((size, size),
                   Image.BILINEAR))).sum()) for im in images)
        lines.append(f"digits {len(images)} images 8x8 -> {size}x{size}: contract vs Pillow BILINEAR, "
                     f"{diff} differing values")
    worst, cases, differing = 0, 0, 0
    for line in (ROOT / "golden/preprocessing/cases.txt").read_text().splitlines():
        name, w, h, method = line.split()
        rgb = upright_rgb(ROOT / f"golden/preprocessing/{name}.png")
        pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[method]
        ours = resample(rgb, (int(h), int(w)), method).astype(int)
        d = np.abs(ours - np.asarray(Image.fromarray(rgb).resize((int(w), int(h)), pil)).astype(int))
        worst, cases, differing = max(worst, int(d.max())), cases + 1, differing + int((d.max() > 0))
    lines.append(f"Pillow {Image.__version__} resize vs contract on the {cases} golden cases: {differing} case(s) differ, "
                 f"max {worst} LSB (Pillow may run the vertical pass first when both axes shrink)")
    return lines


def main() -> None:
    ap = figure_parser("preprocessing", __doc__)
    ap.add_argument("--work", type=Path, help="keep the golden files and the jar here (default: a temporary folder)")
    args = ap.parse_args()
    with work_dir(args.work) as work:
        for line in golden_figures(work) + pillow_figures(work):
            print(line, flush=True)


if __name__ == "__main__":
    main()
