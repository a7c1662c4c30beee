"""The HTTP contract of `mobilepack serve`: GET /openapi.json, and schemathesis holding a real waitress
server on loopback to it. Every generated request's response must conform to the spec; none may be a 5xx."""

from __future__ import annotations

import io
import json
import math
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from mobilepack.serve.server import create_app
from serve_helpers import live_server

EXAMPLES_PER_MODE = 50  # positive and as many negative: ~100 requests, ~10 s on 2 cores
# CPU seconds of this process (the generation and the server, which runs here in threads) for both modes: what the
# fuzzing costs, which a busy machine does not change as it changes wall-clock time.
CPU_LIMIT_S = 120


@pytest.fixture(scope="module")
def server(tiny_dist):
    with live_server(create_app(tiny_dist)) as url:
        yield url


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_openapi_describes_predict_healthz_and_models(server):
    spec = _get(f"{server}/openapi.json")
    assert set(spec["paths"]) == {"/predict", "/healthz", "/v1/models"}
    predict = spec["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"200", "400", "404", "413", "415", "422"} <= set(predict["responses"])
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    artifacts = predict["parameters"][0]["schema"]["enum"]
    assert artifacts == [m["name"] for m in _get(f"{server}/v1/models")["models"]]
    # the tiny dist's input: 16x16x3 raw pixels 0-255, with or without the batch axis
    one, batch = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]["input"]["oneOf"]
    assert (one["minItems"], one["items"]["minItems"], one["items"]["items"]["maxItems"]) == (16, 16, 3)
    assert batch["maxItems"] == 1 and one["items"]["items"]["items"] == {"type": "number", "minimum": 0,
                                                                         "maximum": 255}


def _image_strategy(fmt: str):
    """Small real images (aspect within 20:1), so positive multipart cases are ones the server must accept."""
    from hypothesis import strategies as st

    @st.composite
    def images(draw) -> bytes:
        w = draw(st.integers(1, 48))
        h = draw(st.integers(max(1, math.ceil(w / 20)), min(48, w * 20)))
        pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (h, w, 3), np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        return buf.getvalue()

    return images()


def test_schemathesis_finds_no_5xx_and_nothing_off_the_spec(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schemathesis.openapi.media_type("image/png", _image_strategy("PNG"))
    schemathesis.openapi.media_type("image/jpeg", _image_strategy("JPEG"))
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    statuses: list[tuple[str, str, int]] = []
    failures: list[str] = []

    start, cpu = time.perf_counter(), time.process_time()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=schema.as_strategy(generation_mode=mode))
        def fuzz(case):
            try:
                response = case.call(timeout=30)
                statuses.append((mode.value, case.operation.label, response.status_code))
                case.validate_response(response)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - schemathesis raises a group; collect all
                failures.append(f"{mode.value} {case.operation.label}: {str(exc).strip()[:2000]}")

        fuzz()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    by_status = sorted({s for _, _, s in statuses})
    print(f"schemathesis: {len(statuses)} generated requests, {len(failures)} failures, statuses {by_status}, "
          f"{seconds:.1f} s, {cpu:.1f} CPU s")
    assert not failures, "\n\n".join(failures[:5])
    assert not [s for s in statuses if s[2] >= 500]
    # fuzzing reached both sides of the contract: answers, and refusals of negative data
    assert ("positive", "POST /predict", 200) in statuses
    assert any(mode == "negative" and 400 <= status < 500 for mode, _, status in statuses)
    assert cpu < CPU_LIMIT_S, f"{cpu:.0f} CPU s for {len(statuses)} requests"
