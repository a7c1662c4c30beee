"""What the `serve` tests share: a real waitress server on loopback, and images built byte by byte."""

from __future__ import annotations

import contextlib
import io
import json
import selectors
import struct
import threading
import time
import urllib.request
import zlib

import numpy as np
from PIL import Image


@contextlib.contextmanager
def live_server(app, threads: int = 4):
    """The app under waitress on a free loopback port, as `mobilepack serve` runs it."""
    from waitress import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}"
        wait_healthy(url)
        yield url
    finally:
        stop(server, thread)


READY_WAIT_S = 180  # for a server to answer: a `mobilepack serve` process starts Python and LiteRT on a busy machine


def wait_healthy(url: str, proc=None, deadline_s: float = READY_WAIT_S) -> None:
    """Until GET /healthz answers 200 with status ok (the server listens and its app answers); fails, with why,
    if `proc` (the server's process) exits first or the deadline passes."""
    deadline, last = time.monotonic() + deadline_s, None
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, f"the server exited ({proc.returncode}) before answering"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=30) as r:
                if r.status == 200 and json.loads(r.read())["status"] == "ok":
                    return
                last = f"HTTP {r.status}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url}/healthz did not answer 200 within {deadline_s} s; last: {last}")


def first_line(proc, deadline_s: float = READY_WAIT_S) -> str:
    """The first line `proc` prints on stdout (a text pipe), waiting at most `deadline_s`: readline alone
    would wait forever for a server that never prints."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=deadline_s):
            raise AssertionError(f"no line on stdout within {deadline_s} s (exit code {proc.poll()})")
    return proc.stdout.readline()


def stop(server, thread) -> None:
    """Close the sockets from inside the server's loop: closed from here, its select() fails with EBADF."""
    from waitress import wasyncore

    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(timeout=10)
    server.task_dispatcher.shutdown()
    assert not thread.is_alive(), "waitress did not stop"


def png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any size, written row by row: a 20000x10000 one is ~25 KB and never in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    packer, idat = zlib.compressobj(9), []
    for _ in range(height):
        idat.append(packer.compress(row))
    idat.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def frames(fmt: str, n: int = 2, **save) -> bytes:
    """An n-frame image (animated GIF or PNG, multi-page TIFF) of 16x16 frames."""
    images = [Image.new("RGB", (16, 16), (40 * k, 0, 0)) for k in range(n)]
    buf = io.BytesIO()
    images[0].save(buf, format=fmt, save_all=True, append_images=images[1:], **save)
    return buf.getvalue()
