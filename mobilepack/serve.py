"""`mobilepack serve`: the exact .tflite files that will ship, behind a small HTTP API and a test page.

Flask app factory (`create_app`) served by waitress. Every bad request gets a 4xx with a JSON
`error`; nothing a client sends produces a 500 or a traceback. Each worker thread has its own
LiteRT interpreters (interpreters are not thread-safe), so concurrent requests never share one.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from pathlib import Path

import numpy as np

from convert.manifest import load_manifest, verify_artifacts
from train.errors import MobilepackError
from train.preprocessing import Preprocessing

MAX_UPLOAD_BYTES = 8 * 2**20
TOP_K = 5


class ServeError(MobilepackError):
    """The dist cannot be served as asked."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Models:
    """The served TFLite artifacts and a per-thread interpreter for each."""

    def __init__(self, dist: Path, default: str | None = None):
        from benchmarks.runners import LiteRTRunner  # noqa: F401 - fail at start, not on the first request

        self.dist = Path(dist)
        self.manifest = load_manifest(self.dist)
        verify_artifacts(self.manifest, self.dist)
        self.artifacts = {a.name: a for a in self.manifest.artifacts if a.target == "tflite"}
        if not self.artifacts:
            raise ServeError(f"{self.dist}: no .tflite artifact to serve; convert with --target tflite")
        if default is not None and default not in self.artifacts:
            raise ServeError(f"--artifact {default}: not a .tflite artifact of {self.dist}; choose from "
                             f"{', '.join(self.artifacts)}")
        self.default = default or _float_first(self.artifacts)
        self.prep = (Preprocessing.from_dict(self.manifest.preprocessing, "manifest preprocessing")
                     if self.manifest.preprocessing else None)
        self.labels = self.manifest.labels
        self._local = threading.local()

    def get(self, name: str | None):
        name = name or self.default
        if name not in self.artifacts:
            raise BadRequest(404, f"unknown artifact {name!r}; served: {', '.join(self.artifacts)}")
        return self.artifacts[name]

    def runner(self, name: str):
        from benchmarks.runners import LiteRTRunner

        runners = getattr(self._local, "runners", None)
        if runners is None:
            runners = self._local.runners = {}
        if name not in runners:
            runners[name] = LiteRTRunner(self.dist / self.artifacts[name].file, num_threads=1)
        return runners[name]

    def input_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.artifacts[name].inputs[0]["shape"][1:])


def _float_first(artifacts: dict) -> str:
    order = ["fp32", "fp16", "dynamic", "int8"]
    return min(artifacts, key=lambda n: order.index(artifacts[n].quantization)
               if artifacts[n].quantization in order else len(order))


def tensor_from_json(payload, shape: tuple[int, ...]) -> np.ndarray:
    """{"input": [...]} -> a float32 batch of one, or a BadRequest saying what is wrong."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise BadRequest(400, 'JSON body must be an object with "input": a nested list in the model\'s input '
                              f"shape {list(shape)}")
    try:
        x = np.asarray(payload["input"])
    except (ValueError, TypeError):
        raise BadRequest(400, f'"input" is ragged; give a nested list of shape {list(shape)}') from None
    if x.dtype == object or x.dtype.kind not in "iuf" or x.dtype == bool:
        raise BadRequest(400, f'"input" must hold numbers only (got {x.dtype.name if x.dtype != object else "mixed values"})')
    if tuple(x.shape) == shape:
        x = x[None]
    if tuple(x.shape) != (1, *shape):
        raise BadRequest(400, f'"input" has shape {list(x.shape)}; the model takes {list(shape)} (or [1, ...])')
    if not np.all(np.isfinite(x)):
        raise BadRequest(400, '"input" holds NaN or infinity')
    return x.astype(np.float32)


def tensor_from_image(data: bytes, prep: Preprocessing | None) -> np.ndarray:
    """An uploaded image -> the model input, preprocessed exactly as `mobilepack bench` does."""
    from PIL import Image, UnidentifiedImageError

    from train.preprocessing import read_rgb_image

    if prep is None:
        raise BadRequest(400, "this model's inputs are not images; POST JSON {\"input\": [...]} instead")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = read_rgb_image(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadRequest(400, "the upload is not an image Pillow can read (png, jpeg, bmp, webp, ...)") from None
    return prep.apply_batch([image])


def predict(models: Models, name: str | None, x: np.ndarray) -> dict:
    artifact = models.get(name)
    runner = models.runner(artifact.name)
    start = time.perf_counter()
    out = runner.predict([x])[0].reshape(-1)
    latency = (time.perf_counter() - start) * 1e3
    order = np.lexsort((np.arange(len(out)), -out))[:TOP_K]
    label = (lambda i: models.labels[i] if models.labels and i < len(models.labels) else str(i))  # noqa: E731
    return {"prediction": int(order[0]), "label": label(int(order[0])),
            "probabilities": [{"label": label(int(i)), "index": int(i), "probability": float(out[i])} for i in order],
            "artifact": artifact.name, "sha256": artifact.sha256, "latency_ms": round(latency, 3)}


def create_app(dist: Path, artifact: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES):
    """The Flask app serving `dist`'s .tflite artifacts."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    models = Models(dist, artifact)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    app.config["MOBILEPACK_MODELS"] = models

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest):
        return jsonify({"error": exc.message}), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description
        if exc.code == 413:
            message = f"upload over the {max_upload_bytes // 2**20} MiB limit"
        return jsonify({"error": message}), exc.code

    @app.errorhandler(Exception)
    def internal(exc: Exception):  # a bug, never bad input: no traceback leaves the server
        app.logger.exception("unhandled error")
        return jsonify({"error": "internal error; see the server log"}), 500

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "artifacts": len(models.artifacts), "default": models.default})

    @app.get("/v1/models")
    def list_models():
        entries = [dataclasses.asdict(a) for a in models.artifacts.values()]
        return jsonify({"default": models.default, "labels": models.labels,
                        "preprocessing": models.manifest.preprocessing, "models": entries})

    @app.post("/predict")
    def predict_route():
        name = request.args.get("artifact")
        models.get(name)  # 404 before reading the body
        if request.files:
            upload = request.files.get("image") or next(iter(request.files.values()))
            x = tensor_from_image(upload.read(), models.prep)
        else:
            payload = request.get_json(silent=True)
            if payload is None:
                raise BadRequest(400, "body is not valid JSON; send {\"input\": [...]} with Content-Type "
                                      "application/json, or a multipart upload field named 'image'")
            x = tensor_from_json(payload, models.input_shape(name or models.default))
        return jsonify(predict(models, name, x))

    @app.get("/")
    def page():
        from .serve_page import render_page

        return render_page(models)

    return app


def serve(dist: Path, artifact: str | None, host: str, port: int, workers: int, log=print) -> None:
    """Serve with waitress (a production WSGI server), `workers` threads."""
    from waitress import serve as waitress_serve

    app = create_app(dist, artifact)
    models = app.config["MOBILEPACK_MODELS"]
    log(f"serving {', '.join(models.artifacts)} from {dist} (default {models.default}) on http://{host}:{port} "
        f"with {workers} worker thread(s); Ctrl-C stops")
    waitress_serve(app, host=host, port=port, threads=workers, ident="mobilepack")
