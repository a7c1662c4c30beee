"""What the `serve` tests share: a real waitress server on loopback, and images built byte by byte."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
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
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop(server, thread)


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
