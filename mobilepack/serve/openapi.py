"""GET /openapi.json: the HTTP contract of `mobilepack serve`, built from what this server serves.

The shapes, value range, artifact names and limits come from the served manifest, so the
document is exact for this dist: schemathesis can hold the server to it (tests/test_serve_contract.py).
"""

from __future__ import annotations

from mobilepack.serve.inputs import IMAGE_FORMATS, ImageLimits

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "description": "One line: what is wrong and what to do."}}}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def openapi(models, limits: ImageLimits, max_upload_bytes: int) -> dict:
    names = list(models.artifacts)
    return {
        "openapi": "3.0.3",
        "info": {"title": "mobilepack serve", "version": "1",
                 "description": f"The .tflite artifacts of {models.dist.name}, sha256-checked at start."},
        "paths": {
            "/predict": {"post": _predict(models, names, limits, max_upload_bytes)},
            "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness and the sha256 of each served artifact",
                                 "responses": {"200": _json(_health(names))}}},
            "/v1/models": {"get": {"operationId": "models", "summary": "The manifest entries served",
                                   "responses": {"200": _json(_models(names))}}},
        },
        "components": {"schemas": {"Error": ERROR}},
    }


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _nested(shape: tuple[int, ...], leaf: dict) -> dict:
    schema = leaf
    for n in reversed(shape):
        schema = {"type": "array", "minItems": n, "maxItems": n, "items": schema}
    return schema


def _predict(models, names: list[str], limits: ImageLimits, max_upload_bytes: int) -> dict:
    specs = models.input_specs()

    def one(spec) -> dict:
        leaf = {"type": "integer" if spec.dtype != "float32" else "number",
                "minimum": spec.value_range[0], "maximum": spec.value_range[1]}
        return {"oneOf": [_nested(spec.shape, leaf), _nested((1, *spec.shape), leaf)],
                "description": f"{spec.name}: shape {list(spec.shape)}, {spec.dtype}, with or without the batch axis"}

    if len(specs) == 1:
        schema = {"type": "object", "required": ["input"], "properties": {"input": one(specs[0])}}
    else:  # several inputs: one nested list per input, by name
        schema = {"type": "object", "required": ["inputs"], "properties": {"inputs": {
            "type": "object", "required": [s.name for s in specs], "additionalProperties": False,
            "properties": {s.name: one(s) for s in specs}}}}
    content = {"application/json": {"schema": schema}}
    if models.prep is not None:
        types = ", ".join(f"image/{f.lower()}" for f in IMAGE_FORMATS)
        content["multipart/form-data"] = {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "format": "binary"}}},
            "encoding": {"image": {"contentType": types}}}
    return {
        "operationId": "predict",
        "summary": "Run one input through an artifact; top-5 answer",
        "parameters": [{"name": "artifact", "in": "query", "required": False,
                        "description": f"Artifact to run (default {models.default})",
                        "schema": {"type": "string", "enum": names}}],
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": _json(_prediction(names)),
            "400": _error("Malformed body: not JSON, wrong shape or type, out of range; not an image, "
                          f"animated, or aspect ratio over {limits.max_aspect:g}:1"),
            "404": _error("Unknown artifact"),
            "413": _error(f"Body over {max_upload_bytes} bytes, or an image over {limits.max_pixels} pixels"),
            "415": _error("Content-Type neither application/json nor multipart/form-data"),
            "422": _error("The model's output is NaN or infinity for this input"),
        },
    }


def _prediction(names: list[str]) -> dict:
    entry = {"type": "object", "required": ["label", "index", "probability"], "additionalProperties": False,
             "properties": {"label": {"type": "string"}, "index": {"type": "integer", "minimum": 0},
                            "probability": {"type": "number"}}}
    return {"type": "object", "additionalProperties": False,
            "required": ["prediction", "label", "probabilities", "artifact", "sha256", "latency_ms"],
            "properties": {"prediction": {"type": "integer", "minimum": 0}, "label": {"type": "string"},
                           "probabilities": {"type": "array", "minItems": 1, "maxItems": 5, "items": entry},
                           "artifact": {"type": "string", "enum": names}, "sha256": SHA256,
                           "latency_ms": {"type": "number", "minimum": 0}}}


def _health(names: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False,
            "required": ["status", "artifacts", "default", "sha256"],
            "properties": {"status": {"type": "string", "enum": ["ok"]},
                           "artifacts": {"type": "integer", "minimum": 1},
                           "default": {"type": "string", "enum": names},
                           "sha256": {"type": "object", "required": names, "additionalProperties": False,
                                      "properties": {n: SHA256 for n in names},
                                      "description": "sha256 of the bytes each artifact is served from"}}}


def _models(names: list[str]) -> dict:
    tensors = {"type": "array", "items": {"type": "object", "required": ["name", "shape", "dtype"]}}
    text = {"type": "string"}
    entry = {"type": "object",
             "required": ["name", "file", "sha256", "size_bytes", "target", "format", "quantization", "inputs",
                          "outputs"],
             "properties": {"name": {"type": "string", "enum": names}, "file": text, "sha256": SHA256,
                            "size_bytes": {"type": "integer", "minimum": 1},
                            "target": {"type": "string", "enum": ["tflite"]}, "format": text, "quantization": text,
                            "inputs": tensors, "outputs": tensors}}
    return {"type": "object", "required": ["default", "labels", "preprocessing", "models"],
            "properties": {"default": {"type": "string", "enum": names},
                           "labels": {"type": "array", "items": {"type": "string"}, "nullable": True},
                           "preprocessing": {"type": "object", "nullable": True},
                           "models": {"type": "array", "items": entry}}}
