"""`mobilepack serve` refusing bad input: each HTTP case against a real waitress server gets a 4xx
with the JSON error object and leaves the server answering; each CLI case gets one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import requests

from cli_helpers import record_bad_input
from mobilepack.serve.server import MAX_UPLOAD_BYTES, create_app
from serve_helpers import blank_png, frames, live_server, png

SHAPE = (16, 16, 3)  # the tiny dist's input
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\n%%EOF\n"


@pytest.fixture(scope="module")
def server(tiny_dist):
    with live_server(create_app(tiny_dist)) as url:
        yield url


def _upload(data: bytes, field: str = "image", name: str = "x.png") -> dict:
    return {"files": {field: (name, data)}}


def _json(value) -> dict:
    return {"data": json.dumps(value), "headers": {"Content-Type": "application/json"}}


def _raw(data: bytes | str, content_type: str | None) -> dict:
    return {"data": data, "headers": {"Content-Type": content_type} if content_type else {}}


def _valid() -> list:
    return np.zeros(SHAPE).tolist()


IMAGES = [
    pytest.param(lambda: _upload(blank_png(20000, 10000)), 413, "decompression-bomb", id="bomb-png-200mp-in-kb"),
    pytest.param(lambda: _upload(blank_png(10000, 10000)), 413, "--max-pixels", id="between-pillow-limits-100mp"),
    pytest.param(lambda: _upload(blank_png(2049, 2048)), 413, "--max-pixels", id="one-column-over-max-pixels"),
    pytest.param(lambda: _upload(frames("GIF", duration=50)), 400, "animated", id="animated-gif"),
    pytest.param(lambda: _upload(frames("PNG")), 400, "animated", id="animated-png"),
    pytest.param(lambda: _upload(frames("TIFF")), 400, "several frames", id="multi-frame-tiff"),
    pytest.param(lambda: _upload(blank_png(1, 5000)), 400, "aspect ratio", id="aspect-1x5000"),
    pytest.param(lambda: _upload(png(np.full((40, 40, 3), 90))[:60]), 400, "damaged", id="truncated-png"),
    pytest.param(lambda: _upload(b"GIF89a not really"), 400, "not an image", id="not-an-image"),
    pytest.param(lambda: _upload(EPS, name="x.eps"), 400, "not an image", id="eps-never-run-through-ghostscript"),
    pytest.param(lambda: _upload(b""), 400, "empty", id="empty-upload"),
    pytest.param(lambda: _upload(png(np.zeros((16, 16, 3))), field="file"), 400, "named 'image'",
                 id="multipart-without-image-field"),
    pytest.param(lambda: _upload(b"\0" * (MAX_UPLOAD_BYTES + 1)), 413, "8 MiB limit", id="body-over-upload-limit"),
]

BODIES = [
    pytest.param(lambda: _raw("{not json", "application/json"), 400, "not valid JSON", id="bad-json"),
    pytest.param(lambda: _raw("[" * 100_000 + "]" * 100_000, "application/json"), 400, "not valid JSON",
                 id="json-nested-past-the-parser"),
    pytest.param(lambda: _raw(b"\xff\xfe\xfa", "application/json"), 400, "not valid JSON", id="json-not-utf8"),
    pytest.param(lambda: _json([1, 2]), 400, '"input"', id="json-not-an-object"),
    pytest.param(lambda: _json({"inputs": _valid()}), 400, '"input"', id="json-without-input"),
    pytest.param(lambda: _json({"input": [[1, 2], [3]]}), 400, "ragged", id="ragged"),
    pytest.param(lambda: _json({"input": np.zeros((8, 8, 3)).tolist()}), 400, "[16, 16, 3]", id="wrong-shape"),
    pytest.param(lambda: _json({"input": np.zeros((2, *SHAPE)).tolist()}), 400, "[16, 16, 3]", id="batch-of-two"),
    pytest.param(lambda: _json({"input": [[[[[0]]]]] * 16}), 400, "nested deeper", id="nested-deeper-than-input"),
    pytest.param(lambda: _json({"input": 7}), 400, "[16, 16, 3]", id="scalar-input"),
    pytest.param(lambda: _json({"input": [["a"] * 3] * 16}), 400, "numbers only", id="wrong-dtype-strings"),
    pytest.param(lambda: _json({"input": np.full(SHAPE, True).tolist()}), 400, "a boolean", id="wrong-dtype-booleans"),
    pytest.param(lambda: _json({"input": [[[None] * 3] * 16] * 16}), 400, "null", id="wrong-dtype-nulls"),
    pytest.param(lambda: _raw(json.dumps({"input": np.full(SHAPE, np.nan).tolist()}), "application/json"), 400,
                 "NaN", id="nan"),
    pytest.param(lambda: _raw('{"input": %s}' % json.dumps(_valid()).replace("0.0", "1" + "0" * 400, 1),
                              "application/json"), 400, "too large", id="integer-past-float64"),
    pytest.param(lambda: _json({"input": np.full(SHAPE, 300.0).tolist()}), 400, "[0, 255]", id="over-value-range"),
    pytest.param(lambda: _json({"input": np.full(SHAPE, -1.0).tolist()}), 400, "[0, 255]", id="under-value-range"),
    pytest.param(lambda: _raw(b"", "application/json"), 400, "empty", id="empty-json-body"),
    pytest.param(lambda: _raw(b"", None), 400, "empty", id="empty-body-no-content-type"),
    pytest.param(lambda: _raw(json.dumps({"input": _valid()}), "text/plain"), 415, "text/plain",
                 id="wrong-content-type"),
    pytest.param(lambda: _raw("input=1", "application/x-www-form-urlencoded"), 415, "multipart/form-data",
                 id="form-urlencoded"),
    # A part without a name in its Content-Disposition (schemathesis found it: the error message crashed on it)
    pytest.param(lambda: _raw(b"--XX\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XX--\r\n",
                              "multipart/form-data; boundary=XX"), 400, "(got: None)", id="multipart-part-without-name"),
]


@pytest.mark.bad_input("http")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, for 89-179 MP; ours refuses
@pytest.mark.parametrize("make, status, needle", IMAGES + BODIES)
def test_bad_predict_body_gets_4xx_json_and_the_server_answers_after(server, make, status, needle):
    response = requests.post(f"{server}/predict", timeout=60, **make())
    _assert_json_error(response, status, needle)


@pytest.mark.bad_input("http")
@pytest.mark.parametrize("method, path, status, needle", [
    pytest.param("POST", "/predict?artifact=model_mlprogram_fp32", 404, "unknown artifact", id="unknown-artifact"),
    pytest.param("GET", "/predict", 405, "not allowed", id="get-on-predict"),
    pytest.param("DELETE", "/healthz", 405, "not allowed", id="delete-on-healthz"),
    pytest.param("GET", "/nope", 404, "not found", id="unknown-path"),
])
def test_bad_route_gets_4xx_json(server, method, path, status, needle):
    response = requests.request(method, server + path, timeout=30, **_json({"input": _valid()}))
    _assert_json_error(response, status, needle)
    if status == 405:  # RFC 9110: a 405 lists the methods the resource takes
        assert response.headers["Allow"] and method not in response.headers["Allow"]


def _assert_json_error(response, status: int, needle: str) -> None:
    server = response.url.split("/", 3)[:3]
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json" and set(response.json()) == {"error"}
    message = response.json()["error"]
    assert needle in message and "\n" not in message and "Traceback" not in response.text, message
    assert requests.get("/".join(server) + "/healthz", timeout=10).json()["status"] == "ok"
    record_bad_input("http", f"{status} {message[:110]}")


def _serve(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    """`mobilepack serve` in its own process: a bind that wrongly succeeded would otherwise serve forever. The
    timeout only ends such a hang (a refusal takes ~3 s on a busy 2-core machine), so it can be generous."""
    return subprocess.run([sys.executable, "-m", "mobilepack", "serve", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "serving" not in result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    record_bad_input("cli", lines[0][:120])
    return lines[0]


@pytest.mark.bad_input("cli")
def test_busy_port_names_the_port_and_who_holds_it(tiny_dist):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = _one_line(_serve(tiny_dist, "--port", port), f"port {port} on 127.0.0.1 is already in use",
                         "another port, e.g. --port")
    assert f"by pid {os.getpid()} " in line  # this test process holds it


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("args, needles", [
    pytest.param(("--host", "192.0.2.1"), ("--host 192.0.2.1", "not an address of this machine"),
                 id="host-not-on-this-machine"),
    pytest.param(("--max-pixels", "0"), ("--max-pixels 0", "e.g. --max-pixels"), id="max-pixels-zero"),
    pytest.param(("--max-pixels", str(10**10)), ("decompression-bomb limit",), id="max-pixels-past-pillow"),
    pytest.param(("--artifact", "nope"), ("--artifact nope", "model_fp32"), id="unknown-artifact"),
])
def test_serve_refuses_with_one_line(tiny_dist, args, needles):
    _one_line(_serve(tiny_dist, "--port", 0, *args), *needles)


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("damage, needle", [
    pytest.param(lambda p: p.write_bytes(_flip_last_bit(p.read_bytes())), "sha256 does not match",
                 id="tflite-altered"),
    pytest.param(lambda p: p.unlink(), "missing", id="tflite-missing"),
    pytest.param(lambda p: shutil.rmtree(p.parent), "not found", id="dist-missing"),
])
def test_damaged_dist_is_refused_at_start(tiny_dist, tmp_path, damage, needle):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_dist, dist)
    damage(dist / "model_int8.tflite")
    _one_line(_serve(dist, "--port", 0), needle)
