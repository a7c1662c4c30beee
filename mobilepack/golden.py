"""Golden vectors for the pixel contract (train/imagecontract.py), read by the apps' own tests.

    python -m mobilepack.golden golden/preprocessing

writes, for each case, NAME.png (a source image, not at model size) and NAME.expected.png (8-bit
RGB at the model's size, what Python's contract produces), and cases.txt with one line per case:
`NAME WIDTH HEIGHT RESIZE`. android_demo's JVM test and ios_demo's XCTest decode NAME.png with
their own code and must reproduce NAME.expected.png. The source PNGs are written by the small
encoder below rather than Pillow, so every color type, bit depth and the eXIf chunk are exactly
what the case says (Pillow cannot write 16-bit RGB or choose the EXIF byte order).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from train.fsutil import staged_directory
from train.imagecontract import prepare

ROOT = Path(__file__).resolve().parents[1]
KOTLIN_MAIN = ROOT / "android_demo/app/src/main/java/dev/mobilepack/demo"
KOTLIN_TEST = ROOT / "android_demo/app/src/test/java/dev/mobilepack/demo"
# The Android app's pure-Kotlin files (no Android imports) and the JVM checks that drive them.
KOTLIN_SOURCES = [KOTLIN_MAIN / f for f in ("ImageProcessing.kt", "ImageContract.kt", "SelfCheck.kt")] + [
    KOTLIN_TEST / f for f in ("GoldenCheck.kt", "ContractCheck.kt")]
# PNG color types: gray, RGB, palette, gray+alpha, RGBA
_COLOR_TYPE = {1: 0, 3: 2, "P": 3, 2: 4, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def exif_orientation(orientation: int, little_endian: bool) -> bytes:
    """A TIFF structure holding one IFD entry: Orientation (0x0112, SHORT, 1 value)."""
    e = "<" if little_endian else ">"
    head = (b"II" if little_endian else b"MM") + struct.pack(e + "HI", 42, 8)
    return head + struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None, exif: bytes | None = None) -> bytes:
    """HxWxC uint8/uint16 samples (C = 1, 2, 3, 4), or HxW palette indices with an Nx4 RGBA palette."""
    depth = 16 if pixels.dtype == np.uint16 else 8
    if palette is not None:
        kind, channels = _COLOR_TYPE["P"], 1
    else:
        channels = pixels.shape[2]
        kind = _COLOR_TYPE[channels]
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, w * channels).astype(">u2" if depth == 16 else np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)  # filter type 0 on every row
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, kind, 0, 0, 0))
    if palette is not None:
        out += _chunk(b"PLTE", palette[:, :3].astype(np.uint8).tobytes())
        out += _chunk(b"tRNS", palette[:, 3].astype(np.uint8).tobytes())
    if exif is not None:
        out += _chunk(b"eXIf", exif)
    return out + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth gradients, texture, noise and a hard edge."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([200 * x + 30, 180 * y + 40 * np.sin(9 * x), 120 + 100 * np.cos(7 * (x + y))], axis=2)
    img[: h // 2, w // 3:] = 255 - img[: h // 2, w // 3:]  # an edge that aliases if the resize does not filter
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _alpha(h: int, w: int) -> np.ndarray:
    a = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    a[:, :2] = 0  # fully transparent: the color under it must not leak through
    a[-1] = 255
    return a.round().astype(np.uint8)


def _sources() -> list[tuple[str, np.ndarray, dict, tuple[int, int], str]]:
    """(name, samples, encode kwargs, model size (h, w), resize) per case."""
    cases = []
    for o in range(1, 9):  # each EXIF orientation, shrunk and enlarged, both byte orders
        ex = exif_orientation(o, little_endian=o % 2 == 1)
        cases.append((f"orient{o}-down", photo(17, 23, o), {"exif": ex}, (9, 12), "bilinear"))
        cases.append((f"orient{o}-up", photo(6, 5, 10 + o), {"exif": ex}, (13, 11), "bilinear"))
    rgb = photo(19, 14, 30)
    rgba = np.dstack([rgb, _alpha(19, 14)])
    gray = rgb[..., :1]
    wide = lambda a: (a.astype(np.uint16) * 257 + np.arange(a.size, dtype=np.uint16).reshape(a.shape) % 251)
    table = np.concatenate([photo(4, 4, 31).reshape(16, 3), (np.arange(16) * 17)[:, None]], axis=1)
    indices = np.random.default_rng(32).integers(0, 16, (19, 14)).astype(np.uint8)
    for size, tag in (((8, 6), "down"), ((30, 25), "up")):
        cases += [(f"rgba-{tag}", rgba, {}, size, "bilinear"),
                  (f"gray8-{tag}", gray, {}, size, "bilinear"),
                  (f"gray-alpha-{tag}", np.dstack([gray, rgba[..., 3:]]), {}, size, "bilinear"),
                  (f"gray16-{tag}", wide(gray), {}, size, "bilinear"),
                  (f"rgb16-{tag}", wide(rgb), {}, size, "bilinear"),
                  (f"rgba16-{tag}", wide(rgba), {}, size, "bilinear"),
                  (f"palette-alpha-{tag}", indices, {"palette": table}, size, "bilinear"),
                  (f"bicubic-{tag}", rgb, {}, size, "bicubic"),
                  (f"nearest-{tag}", rgb, {}, size, "nearest")]
    cases += [("rgba-orient6", rgba, {"exif": exif_orientation(6, True)}, (10, 16), "bilinear"),
              ("wider-shorter", rgb, {}, (7, 31), "bilinear"),
              ("narrower-taller", rgb, {}, (40, 5), "bicubic"),
              ("same-size", rgb, {}, (19, 14), "bilinear"),
              ("big-shrink", photo(131, 97, 33), {}, (5, 7), "bilinear"),
              ("to-one-pixel", rgb, {}, (1, 1), "bilinear"),
              ("exif-not-tiff", rgb, {"exif": b"hello, not a TIFF header"}, (8, 6), "bilinear"),
              ("exif-truncated", rgb, {"exif": exif_orientation(6, True)[:12]}, (8, 6), "bilinear"),
              ("exif-orientation9", rgb, {"exif": exif_orientation(9, False)}, (8, 6), "bilinear"),
              ("gray16-orient8", wide(gray), {"exif": exif_orientation(8, False)}, (12, 9), "bilinear")]
    return cases


def write_golden(out: Path) -> int:
    """Write every case into `out` (replaced whole); returns the number of cases."""
    from PIL import Image

    out = Path(out)
    lines = []
    with staged_directory(out, "make the golden folder writable") as stage:
        for name, samples, kwargs, (h, w), method in _sources():
            data = encode_png(samples, **kwargs)
            (stage / f"{name}.png").write_bytes(data)
            Image.fromarray(prepare(data, (h, w), method)).save(stage / f"{name}.expected.png")
            lines.append(f"{name} {w} {h} {method}")
        (stage / "cases.txt").write_text("\n".join(lines) + "\n")
    return len(lines)


def compile_kotlin_checks(jar: Path) -> subprocess.CompletedProcess:
    """Debian's kotlinc (1.3) builds the app's pure-Kotlin code and its JVM checks into `jar`."""
    if shutil.which("kotlinc") is None:
        raise FileNotFoundError("kotlinc not found: apt-get install kotlin (`make test` installs it)")
    return subprocess.run(["kotlinc", *map(str, KOTLIN_SOURCES), "-include-runtime", "-d", str(jar)],
                          capture_output=True, text=True, timeout=600)


def run_contract_check(jar: Path, *args) -> subprocess.CompletedProcess:
    """ContractCheck.kt on the JVM: `golden DIR` or `samples DIR WIDTH HEIGHT RESIZE`."""
    return subprocess.run(["java", "-cp", str(jar), "dev.mobilepack.demo.ContractCheckKt", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


if __name__ == "__main__":
    print(f"{write_golden(Path(sys.argv[1]))} golden case(s) -> {sys.argv[1]}")
