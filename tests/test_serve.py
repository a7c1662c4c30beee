"""`mobilepack serve`: every endpoint and bad request, a real server under concurrency, and the page in Chromium."""

import io
import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmarks.runners import LiteRTRunner
from convert.manifest import load_manifest
from mobilepack.cli import cli, serve_cmd
from mobilepack.serve import create_app
from train.data import load_dataset
from train.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", lambda m: None)


@pytest.fixture(scope="module")
def app(tiny_dist):
    return create_app(tiny_dist)


@pytest.fixture()
def client(app):
    return app.test_client()


def expected(tiny_dist, image, name="model_fp32"):
    prep = Preprocessing.from_dict(load_manifest(tiny_dist).preprocessing)
    out = LiteRTRunner(tiny_dist / f"{name}.tflite").predict([prep.apply_batch([image])])[0][0]
    return int(np.argmax(out)), prep


def png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(response, status, needle):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert needle in body["error"] and "Traceback" not in response.get_data(as_text=True)


def test_healthz_and_models(client, tiny_dist):
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["artifacts"] == 4 and health["default"] == "model_fp32"
    models = client.get("/v1/models").get_json()
    manifest = load_manifest(tiny_dist)
    assert [m["name"] for m in models["models"]] == [a.name for a in manifest.artifacts if a.target == "tflite"]
    assert {m["sha256"] for m in models["models"]} <= {a.sha256 for a in manifest.artifacts}
    assert models["labels"] == manifest.labels


@pytest.mark.parametrize("name", ["model_fp32", "model_int8"])
def test_json_tensor_predicts_as_litert(client, tiny_dist, digits, name):
    want, prep = expected(tiny_dist, digits.images[5], name)
    x = prep.apply(digits.images[5])
    for body in ({"input": x.tolist()}, {"input": x[None].tolist()}):  # with or without the batch axis
        r = client.post(f"/predict?artifact={name}", json=body)
        assert r.status_code == 200, r.get_data(as_text=True)
        answer = r.get_json()
        assert answer["prediction"] == want and answer["label"] == load_manifest(tiny_dist).labels[want]
        assert answer["artifact"] == name and len(answer["sha256"]) == 64 and answer["latency_ms"] > 0
        probs = [p["probability"] for p in answer["probabilities"]]
        assert probs == sorted(probs, reverse=True) and answer["probabilities"][0]["index"] == want


def test_image_upload_is_preprocessed_as_the_benchmark(client, tiny_dist, digits):
    for i in (0, 9, 21):
        want, _ = expected(tiny_dist, digits.images[i])
        r = client.post("/predict", data={"image": (io.BytesIO(png(digits.images[i])), "digit.png")})
        assert r.status_code == 200 and r.get_json()["prediction"] == want


def test_bad_requests_get_4xx_json(client, tiny_dist):
    shape = "[16, 16, 3]"
    assert_error(client.post("/predict", data="{not json", content_type="application/json"), 400, "not valid JSON")
    assert_error(client.post("/predict", json=[1, 2]), 400, '"input"')
    assert_error(client.post("/predict", json={"input": [[1, 2], [3]]}), 400, "ragged")
    assert_error(client.post("/predict", json={"input": np.zeros((8, 8, 3)).tolist()}), 400, shape)
    assert_error(client.post("/predict", json={"input": [["a"] * 3] * 16}), 400, "numbers only")
    assert_error(client.post("/predict", json={"input": np.full((16, 16, 3), np.nan).tolist()}), 400, "NaN")
    assert_error(client.post("/predict", data={"image": (io.BytesIO(b"GIF89a not really"), "x.gif")}), 400,
                 "not an image")
    assert_error(client.post("/predict?artifact=model_mlprogram_fp32", json={"input": []}), 404, "unknown artifact")
    assert_error(client.get("/predict"), 405, "not allowed")
    assert_error(client.get("/nope"), 404, "not found")


def test_upload_over_the_limit_is_413(tiny_dist, digits):
    small = create_app(tiny_dist, max_upload_bytes=1024).test_client()
    big = png(np.random.default_rng(0).integers(0, 256, (64, 64, 3)))
    assert len(big) > 1024
    assert_error(small.post("/predict", data={"image": (io.BytesIO(big), "big.png")}), 413, "limit")


def test_page_offers_the_float_and_the_quantized_artifact(client):
    page = client.get("/").get_data(as_text=True)
    assert '["model_fp32", "model_int8"]' in page and 'type="file"' in page


def test_serve_binds_loopback_by_default_and_refuses_unknown_artifacts(tiny_dist):
    assert next(p.default for p in serve_cmd.params if p.name == "host") == "127.0.0.1"
    result = CliRunner().invoke(cli, ["serve", str(tiny_dist), "--artifact", "nope"])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "--artifact nope" in lines[0]


@pytest.fixture()
def live_server(app):
    """The app under waitress on a free loopback port, as `mobilepack serve` runs it."""
    from waitress import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(timeout=5)


def test_real_server_under_concurrent_requests(live_server, tiny_dist, digits):
    cases = [(i, expected(tiny_dist, digits.images[i])[0]) for i in range(8)]
    prep = Preprocessing.from_dict(load_manifest(tiny_dist).preprocessing)

    def call(k):
        i, want = cases[k % len(cases)]
        name = ("model_fp32", "model_int8")[k % 2]
        body = json.dumps({"input": prep.apply(digits.images[i]).tolist()}).encode()
        req = urllib.request.Request(f"{live_server}/predict?artifact={name}", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())["prediction"], want

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(96)))
    assert all(status == 200 for status, _, _ in results)
    # int8 may differ from fp32 on an input or two; each artifact must be stable under concurrency
    fp32 = [(got, want) for k, (_, got, want) in enumerate(results) if k % 2 == 0]
    assert all(got == want for got, want in fp32)
    int8 = {}
    for k, (_, got, _) in enumerate(results):
        if k % 2:
            int8.setdefault(k % len(cases), set()).add(got)
    assert all(len(v) == 1 for v in int8.values())


def test_page_classifies_an_upload_in_headless_chromium(live_server, tiny_dist, digits, tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian chromium and chromium-driver are needed (`make test` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    want, _ = expected(tiny_dist, digits.images[3])
    label = load_manifest(tiny_dist).labels[want]
    image = tmp_path / "digit.png"
    image.write_bytes(png(digits.images[3]))
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(live_server + "/")
        driver.find_element(By.ID, "file").send_keys(str(image))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result .latency")) == 2)
        boxes = {b.get_attribute("data-artifact"): b for b in driver.find_elements(By.CSS_SELECTOR, ".result")}
        fp32_label = boxes["model_fp32"].find_element(By.CSS_SELECTOR, ".label").text
        assert set(boxes) == {"model_fp32", "model_int8"}
        assert all("ms" in b.find_element(By.CSS_SELECTOR, ".latency").text for b in boxes.values())
        driver.save_screenshot(str(tmp_path / "serve.png"))
    finally:
        driver.quit()
    assert fp32_label == label
