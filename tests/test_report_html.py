"""Fresh-process measurement, memory, the Google-tool cross-check, and report.html in a real browser."""

import html
import json
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.report.html import expected_image_count
from benchmarks.row import Report
from mobilepack.cli.main import cli

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def benched(tiny_dist, tmp_path_factory):
    dist = tmp_path_factory.mktemp("html") / "dist"
    shutil.copytree(tiny_dist, dist)
    # --no-gate: whether tiny_run's fp16 rows keep every top-1 is the CPU's say; these tests read the report.
    result = CliRunner().invoke(cli, ["bench", str(dist), "--threads", "1,2", "--runs", "5",
                                      "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "2", "--no-gate", "-q"])
    assert result.exit_code == 0, result.stderr
    assert "latency @" not in result.output and "/" not in result.output.split("reference (keras)")[0], \
        "--quiet must silence progress"
    assert "cross-check with Google's benchmark tool: " in result.output  # the verdict of the cross-check is shown
    return dist, json.loads((dist / "report.json").read_text())


def tflite_rows(report):
    return [a for a in report["artifacts"] if a["target"] == "tflite"]


def test_every_measurement_ran_in_its_own_process_interleaved(benched):
    _, report = benched
    reps = [r for a in report["artifacts"] for s in a["latency_ms"] for r in s["repetitions"]]
    pids = [r["pid"] for r in reps]
    assert len(pids) == len(set(pids)) and os.getpid() not in pids
    entries = 2 * len(tflite_rows(report)) + len(report["artifacts"]) - len(tflite_rows(report))
    assert report["repeat"] == 2 and len(pids) == 2 * entries
    # A B C, A B C: every first repetition started before any second one.
    first = [s["repetitions"][0]["started"] for a in report["artifacts"] for s in a["latency_ms"]]
    second = [s["repetitions"][1]["started"] for a in report["artifacts"] for s in a["latency_ms"]]
    assert max(first) < min(second)
    for a in report["artifacts"]:
        for s in a["latency_ms"]:
            assert s["p50_interval"][0] <= s["p50"] <= s["p50_interval"][1] and s["spread"] >= 0


def test_memory_is_measured_and_int8_needs_a_smaller_arena(benched):
    _, report = benched
    by_quant = {a["quantization"]: a["memory"] for a in tflite_rows(report)}
    for mem in by_quant.values():
        assert mem["peak_rss_bytes"] > 0 and mem["baseline_rss_bytes"] > 0
        assert mem["rss_delta_bytes"] == max(0, mem["peak_rss_bytes"] - mem["baseline_rss_bytes"])
        assert mem["arena_bytes"] > 0
    # int8 activations take a quarter of float32's bytes; the planner's arena must show it.
    assert by_quant["int8"]["arena_bytes"] < 0.5 * by_quant["fp32"]["arena_bytes"]


def test_arena_matches_the_activation_sizes(tiny_dist):
    """fp32 arena >= the largest activation plus the input, and well below the sum of every tensor."""
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.latency.measure import tflite_arena_bytes

    content = (tiny_dist / "model_fp32.tflite").read_bytes()
    arena = tflite_arena_bytes(content)
    interp = Interpreter(model_content=content)
    interp.allocate_tensors()
    sizes = sorted(int(np.prod(d["shape"])) * 4 for d in interp.get_tensor_details()
                   if len(d["shape"]) == 4 and d["shape"][0] == 1)  # activations (batch 1), not conv weights
    assert arena >= sizes[-1]
    assert arena < len(content) + sum(sizes)


def test_google_tool_cross_checks_every_tflite_latency(benched):
    _, report = benched
    assert report["crosscheck"]["tool"] == "ai_edge_litert.tools.benchmark_litert_model"
    for a in tflite_rows(report):
        assert [c["threads"] for c in a["crosscheck"]] == [1, 2]
        for c in a["crosscheck"]:
            assert c["google_median_ms"] > 0 and c["google_runs"] >= 50
            # one tool process beside each of our two repetitions; agreement is its median inside our
            # interval widened by 15% and the tool's 0.01 ms rounding
            assert len(c["google_medians_ms"]) == 2
            ours = next(e for e in a["latency_ms"] if e["threads"] == c["threads"])["repetitions"]
            starts = sorted(r["started"] for r in ours)
            assert starts[0] < c["google_started"][0] < starts[1] < c["google_started"][1]
            assert c["google_median_ms"] == pytest.approx(statistics.median(c["google_medians_ms"]))
            lo, hi = c["p50_interval"]
            assert c["agrees"] == (lo * 0.85 - 0.005 <= c["google_median_ms"] <= hi * 1.15 + 0.005)
    assert report["crosscheck"]["disagreements"] == [a["name"] for a in tflite_rows(report)
                                                     if not all(c["agrees"] for c in a["crosscheck"])]


def test_no_crosscheck_skips_the_tool(tiny_dist, tmp_path):
    dist = tmp_path / "d"
    shutil.copytree(tiny_dist, dist)
    result = CliRunner().invoke(cli, ["bench", str(dist), "--threads", "1", "--runs", "2",
                                      "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1",
                                      "--no-crosscheck"])
    assert result.exit_code == 0, result.stderr
    # Without --quiet every long step reports progress: each artifact's evaluation and latency process.
    for name in ("model_fp32", "model_int8"):
        assert f"{name}: {json.loads((dist / 'report.json').read_text())['dataset']['count']}/" in result.output
        assert f"{name} latency @1t: 1/1" in result.output
    assert "google tool" not in result.output
    report = json.loads((dist / "report.json").read_text())
    assert report["crosscheck"]["enabled"] is False and all(a["crosscheck"] == [] for a in report["artifacts"])


def test_worst_artifact_lists_what_it_gets_wrong(benched):
    _, report = benched
    worst = report["worst"]
    rows = {a["name"]: a for a in report["artifacts"]}
    assert worst["accuracy_drop_pp"] == max(a["accuracy_drop_pp"] for a in rows.values())
    assert len(worst["per_class"]) == 10 and sum(c["count"] for c in worst["per_class"]) == report["dataset"]["count"]
    wrong = round((1 - rows[worst["name"]]["accuracy"]) * report["dataset"]["count"])
    assert worst["missed_count"] == wrong
    assert all(m["predicted"] != m["label"] for m in worst["misses"])


def test_html_is_self_contained(benched):
    dist, report = benched
    page = (dist / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<img") == expected_image_count(Report.from_json(report), has_images=True)
    for a in report["artifacts"]:
        assert a["name"] in page
    assert html.escape(report["machine"]["note"]) in page


def test_html_renders_in_headless_chromium(benched, tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian chromium and chromium-driver are needed: apt-get install chromium chromium-driver "
                    "(`make test` installs them)")
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    dist, report = benched
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get((dist / "report.html").resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1200, min(height + 100, 8000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
        title = driver.title
    finally:
        driver.quit()
    assert len(images) == expected_image_count(Report.from_json(report), has_images=True)
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images
    assert report["gate"]["verdict"] in title
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape[0] > 900 and pixels.std() > 10  # a rendered page, not a blank one
