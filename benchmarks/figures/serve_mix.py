"""The requests `serve_load` sends: valid JSON tensors and image uploads of a dist's held-out test
split, and bad requests of every kind the server must refuse, each with the status it must answer.

Bad requests are built byte by byte here (a 200-megapixel PNG of ~25 KB, an animated GIF, ...):
what `mobilepack serve` documents, not what its code happens to do, sets the expected status.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.figures.common import quiet

OVERSIZED_BYTES = 9 * 2**20  # over the server's 8 MiB body limit, under waitress's own cap


@dataclass(frozen=True)
class Request:
    kind: str  # "json", "upload", or the name of a bad request
    path: str  # with the query string
    body: bytes
    content_type: str
    status: int  # what the server must answer
    want: int | None = None  # the prediction a valid request must get


def test_split(dist: Path):
    """The dist's held-out test images and its Preprocessing, from the run it was converted from."""
    from convert.manifest import load_manifest
    from train.data import split_part
    from train.preprocessing import Preprocessing

    manifest = load_manifest(dist)
    split_file = manifest.source.get("split_file")
    if not split_file or manifest.preprocessing is None:
        sys.exit(f"{dist}: no run dir behind this dist (no split file or preprocessing in manifest.json); "
                 "give a dist converted from a run dir, e.g. the one `make demo` writes")
    dataset, test = split_part(dist / split_file, "test", quiet)
    return [dataset.images[i] for i in test], Preprocessing.from_dict(manifest.preprocessing)


def expected(content: bytes, inputs: np.ndarray) -> list[int]:
    """What the served artifact answers, from the bytes the server reports serving."""
    from benchmarks.runners import LiteRTRunner

    runner = LiteRTRunner(None, num_threads=1, content=content)
    return [int(np.argmax(runner.predict([x[None]])[0][0])) for x in inputs]


def valid(images, prep, wants: list[int]) -> tuple[list[Request], list[Request]]:
    """One JSON and one upload request per test image."""
    inputs = [prep.apply(im) for im in images]
    as_json = [Request("json", "/predict", json.dumps({"input": x.tolist()}).encode(), "application/json", 200, w)
               for x, w in zip(inputs, wants)]
    uploads = [Request("upload", "/predict", *multipart(png(im)), 200, w) for im, w in zip(images, wants)]
    return as_json, uploads


def bad(shape: tuple[int, ...]) -> list[Request]:
    """One request of each kind the server must refuse, with its documented status."""
    ok = np.zeros(shape).tolist()
    js = "application/json"
    cases = [
        ("bad-json", b"{not json", js, 400),
        ("wrong-shape", json.dumps({"input": np.zeros((2, 2)).tolist()}).encode(), js, 400),
        ("wrong-dtype", json.dumps({"input": np.full(shape, "x").tolist()}).encode(), js, 400),
        ("out-of-range", json.dumps({"input": np.full(shape, 1e6).tolist()}).encode(), js, 400),
        ("wrong-content-type", json.dumps({"input": ok}).encode(), "text/plain", 415),
        ("not-an-image", *multipart(b"GIF89a not really"), 400),
        ("truncated-png", *multipart(png(np.full((40, 40, 3), 90, np.uint8))[:60]), 400),
        ("animated-gif", *multipart(animated_gif()), 400),
        ("aspect-1x5000", *multipart(blank_png(1, 5000)), 400),
        ("bomb-png-200mp", *multipart(blank_png(20000, 10000)), 413),
        ("over-max-pixels", *multipart(blank_png(4096, 4096)), 413),
        ("oversized-body", *multipart(b"\0" * OVERSIZED_BYTES), 413),
    ]
    out = [Request(kind, "/predict", body, ctype, status) for kind, body, ctype, status in cases]
    out.append(Request("unknown-artifact", "/predict?artifact=nope", json.dumps({"input": ok}).encode(), js, 404))
    return out


def schedule(as_json: list[Request], uploads: list[Request], bads: list[Request], k: int) -> Request:
    """The k-th request of the interleaved mix: of every 20, 10 JSON, 4 uploads and 6 bad ones."""
    slot, turn = k % 20, k // 20
    if slot < 10:
        return as_json[(turn * 10 + slot) % len(as_json)]
    if slot < 14:
        return uploads[(turn * 4 + slot - 10) % len(uploads)]
    return bads[(turn * 6 + slot - 14) % len(bads)]


def multipart(data: bytes, field: str = "image") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"x.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), (80 * k, 0, 0)) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any size, compressed row by row: 20000x10000 is ~25 KB, never in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
