"""`mobilepack serve`: the exact .tflite bytes that will ship, behind a small HTTP API and a test page.

Flask app factory (`create_app`) served by waitress. Every bad request gets a 4xx with a JSON
`error`; nothing a client sends produces a 500 or a traceback. The contract is published at
/openapi.json. What is served and how inputs are checked live beside this module:
models.py (checked bytes, per-thread interpreters), inputs.py (request bodies and images),
openapi.py (the contract), page.py (the test page).
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from pathlib import Path

from mobilepack.serve.inputs import BadRequest, ImageLimits, json_body, tensor_from_image, tensors_from_json
from mobilepack.serve.models import Models, ServeError, predict

MAX_UPLOAD_BYTES = 8 * 2**20
# waitress buffers a body before the app sees it; past this it refuses on its own (plain text 413)
# instead of spooling up to its 1 GiB default to disk. Between the two limits the app answers JSON.
WAITRESS_BODY_FACTOR = 4

__all__ = ["BadRequest", "ImageLimits", "Models", "ServeError", "create_app", "serve"]


def create_app(dist: Path, artifact: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               limits: ImageLimits = ImageLimits()):
    """The Flask app serving `dist`'s .tflite artifacts."""
    from flask import Flask

    models = Models(dist, artifact)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    app.config["MOBILEPACK_MODELS"] = models
    _error_handlers(app, max_upload_bytes)
    _routes(app, models, limits, max_upload_bytes)
    return app


def _error_handlers(app, max_upload_bytes: int) -> None:
    from flask import jsonify, request
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest):
        return jsonify({"error": exc.message}), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description
        if exc.code == 413 and (request.content_length or 0) > max_upload_bytes:
            message = f"request body over the {max_upload_bytes // 2**20} MiB limit; send a smaller image"
        response = jsonify({"error": message})
        response.status_code = exc.code
        for key, value in exc.get_headers():  # keep Allow on a 405
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def internal(exc: Exception):  # a bug, never bad input: no traceback leaves the server
        app.logger.exception("unhandled error")
        return jsonify({"error": "internal error; see the server log"}), 500


def _routes(app, models: Models, limits: ImageLimits, max_upload_bytes: int) -> None:
    from flask import jsonify, request

    from mobilepack.serve.openapi import openapi

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "artifacts": len(models.artifacts), "default": models.default,
                        "sha256": models.sha256})

    @app.get("/v1/models")
    def list_models():
        entries = [dataclasses.asdict(a) for a in models.artifacts.values()]
        return jsonify({"default": models.default, "labels": models.labels,
                        "preprocessing": models.manifest.preprocessing, "models": entries})

    @app.get("/openapi.json")
    def contract():
        return jsonify(openapi(models, limits, max_upload_bytes))

    @app.post("/predict")
    def predict_route():
        name = request.args.get("artifact")
        models.get(name)  # 404 before reading the body
        return jsonify(predict(models, name, _request_tensor(request, models, limits)))

    @app.get("/")
    def page():
        from mobilepack.serve.page import render_page

        return render_page(models)


def _request_tensor(request, models: Models, limits: ImageLimits):
    """The body of POST /predict as the model's inputs (a batch of one each), by its Content-Type."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            # A part whose Content-Disposition has no name parses to the key None: show it, do not crash on it.
            fields = sorted({repr(k) if k is None else str(k) for k in (*request.files, *request.form)}) or ["none"]
            raise BadRequest(400, f"the multipart body needs a file field named 'image' (got: {', '.join(fields)})")
        return [tensor_from_image(upload.read(), models.prep, limits)]
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return tensors_from_json(json_body(request.get_data(cache=False)), models.input_specs(request.args.get("artifact")))
    if not mimetype and not request.get_data(cache=False):
        raise BadRequest(400, 'body is empty; send JSON {"input": [...]} or a multipart upload field named \'image\'')
    raise BadRequest(415, f"Content-Type {mimetype or 'missing'!s} is not accepted; send application/json "
                          "{\"input\": [...]} or multipart/form-data with a file field 'image'")


@dataclasses.dataclass(frozen=True)
class Listen:
    """Where the server listens, and with how many worker threads (--host, --port, --workers)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 4


def serve(dist: Path, artifact: str | None, listen: Listen, log=print, max_pixels: int | None = None) -> None:
    """Serve with waitress (a production WSGI server), `listen.workers` threads, until interrupted."""
    limits = _limits(max_pixels)
    app = create_app(dist, artifact, limits=limits)
    models = app.config["MOBILEPACK_MODELS"]
    server = _bind(app, listen)
    workers = listen.workers
    # --port 0 takes a free port; the line says which, so a script can read it
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    urls = ", ".join(f"http://{h if ':' not in h else f'[{h}]'}:{p}" for h, p in listening)
    log(f"serving {', '.join(models.artifacts)} from {dist} (default {models.default}) on {urls} "
        f"with {workers} worker thread(s); images up to {limits.max_pixels} pixels; Ctrl-C stops")
    try:
        server.run()
    finally:
        server.close()


def _limits(max_pixels: int | None) -> ImageLimits:
    from PIL import Image

    if max_pixels is None:
        return ImageLimits()
    # Pillow refuses more than 2 x MAX_IMAGE_PIXELS in Image.open itself; a larger cap could never
    # be reached, and raising Pillow's global limit would change it for every thread at once.
    ceiling = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    if max_pixels < 1 or (ceiling and max_pixels > ceiling):
        raise ServeError(f"--max-pixels {max_pixels}: give 1 to {ceiling} (Pillow's decompression-bomb limit), "
                         "e.g. --max-pixels 12000000 for 12-megapixel photos")
    return ImageLimits(max_pixels=max_pixels)


def _bind(app, listen: Listen):
    """waitress listening on host:port, or a ServeError naming the port and what to do."""
    from waitress import create_server

    host, port, workers = listen.host, listen.port, listen.workers
    try:
        return create_server(app, host=host, port=port, threads=workers, ident="mobilepack",
                             max_request_body_size=WAITRESS_BODY_FACTOR * app.config["MAX_CONTENT_LENGTH"])
    except socket.gaierror:
        raise ServeError(f"--host {host}: not an address or a name this machine resolves; "
                         "e.g. --host 127.0.0.1, or --host 0.0.0.0 for every interface") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            holder = _listener(port)
            by, other = (f" by {holder}" if holder else ""), (port + 1 if port < 65535 else 8000)
            raise ServeError(f"port {port} on {host} is already in use{by}; stop it or choose another port, "
                             f"e.g. --port {other}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"--host {host}: not an address of this machine; e.g. --host 127.0.0.1") from None
        if exc.errno == errno.EACCES:
            raise ServeError(f"--port {port}: permission denied (ports below 1024 need privileges); "
                             "e.g. --port 8000") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --host 127.0.0.1 "
                         "--port 8000") from None


def _listener(port: int) -> str | None:
    """'pid N (command)' of the process listening on `port`, read from /proc; None where that is not cheap."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(str(Path(fd).readlink()) in inodes for fd in (proc / "fd").iterdir()):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                return f"pid {proc.name} ({command[:80]})"
        except OSError:
            continue
    return None
