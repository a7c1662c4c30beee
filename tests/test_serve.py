"""`mobilepack serve`: every endpoint, a real server under concurrency, what it serves once the dist is
replaced, and the page in Chromium. Bad requests: test_serve_bad_input.py; the contract: test_serve_contract.py."""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import requests

from benchmarks.runners import LiteRTRunner
from convert.manifest import load_manifest
from mobilepack.cli.main import serve_cmd
from mobilepack.serve.server import create_app
from mobilepack.serve.inputs import MAX_PIXELS
from serve_helpers import blank_png, first_line, live_server as serving, png, wait_healthy
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


def test_healthz_and_models(client, tiny_dist):
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["artifacts"] == 4 and health["default"] == "model_fp32"
    on_disk = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_dist.glob("*.tflite")}
    assert health["sha256"] == on_disk
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


def test_a_phone_jpeg_with_a_second_picture_is_its_primary_photo(client, digits):
    """MPO (a JPEG with a preview or depth map after it, as many phones save) is a still photo, not animation."""
    photo = Image.fromarray(digits.images[9]).resize((64, 64))
    mpo, jpeg = io.BytesIO(), io.BytesIO()
    photo.save(mpo, "MPO", save_all=True, append_images=[Image.new("RGB", (16, 16), (255, 0, 0))])
    photo.save(jpeg, "JPEG")
    assert Image.open(io.BytesIO(mpo.getvalue())).is_animated
    answers = [client.post("/predict", data={"image": (io.BytesIO(b.getvalue()), "photo.jpg")}) for b in (mpo, jpeg)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].get_data(as_text=True)
    assert answers[0].get_json()["probabilities"] == answers[1].get_json()["probabilities"]


def test_an_image_at_the_pixel_cap_is_decoded(client):
    r = client.post("/predict", data={"image": (io.BytesIO(blank_png(2048, 2048)), "cap.png")})
    assert 2048 * 2048 == MAX_PIXELS and r.status_code == 200, r.get_data(as_text=True)


def _probabilities(answer) -> dict[int, np.float32]:
    return {p["index"]: np.float32(p["probability"]) for p in answer["probabilities"]}


def test_replaced_dist_changes_nothing_until_restart(tiny_dist, digits, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_dist, dist)
    names = sorted(p.stem for p in dist.glob("*.tflite"))
    original = {n: (dist / f"{n}.tflite").read_bytes() for n in names}
    prep = Preprocessing.from_dict(load_manifest(dist).preprocessing)
    x = prep.apply(digits.images[7])
    # each artifact's own answer, from its checked bytes, and what the bytes replacing it would answer
    want = {n: LiteRTRunner(None, num_threads=1, content=original[n]).predict([x[None]])[0][0] for n in names}
    swap = dict(zip(names, names[1:] + names[:1]))  # each file gets another variant's bytes
    assert all(not np.array_equal(want[n], want[swap[n]]) for n in names)  # else this test could not fail

    app = create_app(dist)  # checks the sha256s; no interpreter of a worker thread exists yet
    with serving(app) as url:
        for n in names:  # replaced after the check, before any request: os.replace, as convert's staging does
            (dist / f"{n}.new").write_bytes(original[swap[n]])
            os.replace(dist / f"{n}.new", dist / f"{n}.tflite")
        body = json.dumps({"input": x.tolist()}).encode()
        for n in names:  # a worker thread builds its interpreter on its first request: after the replacement
            req = urllib.request.Request(f"{url}/predict?artifact={n}", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                answer = json.loads(r.read())
            got = _probabilities(answer)
            assert got == {i: want[n][i] for i in got}, n
            assert answer["sha256"] == hashlib.sha256(original[n]).hexdigest()
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:
            health = json.loads(r.read())
    assert health["sha256"] == {n: hashlib.sha256(original[n]).hexdigest() for n in names}
    assert all(hashlib.sha256((dist / f"{n}.tflite").read_bytes()).hexdigest() != health["sha256"][n] for n in names)


def test_page_offers_the_float_and_the_quantized_artifact(client):
    page = client.get("/").get_data(as_text=True)
    assert '["model_fp32", "model_int8"]' in page and 'type="file"' in page


def test_serve_binds_loopback_by_default_and_documents_the_pixel_cap():
    assert next(p.default for p in serve_cmd.params if p.name == "host") == "127.0.0.1"
    assert str(MAX_PIXELS) in next(p.help for p in serve_cmd.params if p.name == "max_pixels")


def test_cli_takes_a_free_port_and_a_larger_pixel_cap_and_stops_on_ctrl_c(tiny_dist):
    command = [sys.executable, "-m", "mobilepack", "serve", str(tiny_dist), "--port", "0", "--max-pixels", "5000000"]
    # A shell starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN: give the
    # server the default, as a terminal's Ctrl-C finds it, or a suite run in the background hangs here.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = first_line(proc)  # printed once it listens
        assert "images up to 5000000 pixels" in line, line + proc.stderr.read()
        url = "http://" + line.split("http://", 1)[1].split()[0]
        wait_healthy(url, proc)
        big = requests.post(f"{url}/predict", files={"image": ("big.png", blank_png(2049, 2048))}, timeout=30)
        assert big.status_code == 200, big.text  # over the default cap, under this one
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0


@pytest.fixture()
def live_server(app):
    with serving(app) as url:
        yield url


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
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result .latency")) == 2)
        boxes = {b.get_attribute("data-artifact"): b for b in driver.find_elements(By.CSS_SELECTOR, ".result")}
        fp32_label = boxes["model_fp32"].find_element(By.CSS_SELECTOR, ".label").text
        assert set(boxes) == {"model_fp32", "model_int8"}
        assert all("ms" in b.find_element(By.CSS_SELECTOR, ".latency").text for b in boxes.values())
        driver.save_screenshot(str(tmp_path / "serve.png"))
    finally:
        driver.quit()
    assert fp32_label == label
