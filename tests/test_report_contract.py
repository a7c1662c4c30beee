"""report.json against its documented schema, baseline regressions and JUnit output."""

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from benchmarks.gating import regression
from benchmarks.row import Report
from mobilepack.cli.main import cli

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "report" / "report.schema.json").read_text())


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def bench_report(tiny_dist, tmp_path_factory):
    import shutil

    dist = tmp_path_factory.mktemp("contract") / "dist"
    shutil.copytree(tiny_dist, dist)
    # --no-gate: whether tiny_run's fp16 rows keep every top-1 (their 0.1 pp gate) is the CPU's say; the contract
    # is what these tests check. Gate failures are forced elsewhere (outlier_dist).
    result = run("bench", dist, "--threads", "1", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "2", "--no-gate", "-q")  # repetitions: tests/test_repeat.py
    assert result.exit_code == 0, result.stderr
    return dist, json.loads((dist / "report.json").read_text())


def test_report_matches_its_schema(bench_report):
    jsonschema.validate(bench_report[1], SCHEMA)


def test_schema_catches_a_broken_report(bench_report):
    broken = copy.deepcopy(bench_report[1])
    broken["artifacts"][0]["sha256"] = "not-a-hash"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    del broken["machine"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def _baseline(report, tmp_path, edit):
    old = copy.deepcopy(report)
    for row in old["artifacts"]:
        edit(row)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    return path


def test_unchanged_artifacts_do_not_regress(bench_report, tmp_path):
    dist, report = bench_report

    def slower_before(row):  # the old run was 10x slower, so timing noise cannot flag this one
        for s in row["latency_ms"]:
            scale_latency(s, 10)

    old = _baseline(report, tmp_path, slower_before)
    result = run("bench", dist, "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q", "--baseline", old,
                 "--junit", tmp_path / "j.xml", "--no-gate")
    assert result.exit_code == 0, result.stderr
    new = json.loads((dist / "report.json").read_text())
    jsonschema.validate(new, SCHEMA)
    assert new["baseline"]["regressed"] == [] and len(new["baseline"]["comparisons"]) == 4
    suite = ET.parse(tmp_path / "j.xml").getroot()
    gates_failed = sum(a["status"] == "failed" for a in new["artifacts"])  # 0 unless the CPU flipped an fp16 top-1
    assert suite.get("tests") == "8" and suite.get("failures") == str(gates_failed)  # 4 gates + 4 comparisons


def test_regressions_are_named_with_numbers(bench_report):
    _, report = bench_report
    old = copy.deepcopy(report)
    for row in old["artifacts"]:
        row["size_bytes"] = int(row["size_bytes"] / 1.5)
        row["accuracy"] = min(1.0, row["accuracy"] + 0.02)
        for s in row["latency_ms"]:
            scale_latency(s, 0.1)
    [first, *_] = compare(report, old)
    assert first["regressed"] and len(first["problems"]) == 3  # accuracy, size, p50 @1t
    assert "x1.50" in first["problems"][1] and "pp" in first["problems"][0] and "ms" in first["problems"][2]
    assert "95% lower bound x" in first["problems"][2]
    evaluator = copy.deepcopy(report)
    evaluator["artifacts"][0]["runtime"] = "coreml-reference"  # the evaluator's time is never gated as latency
    [first, *_] = compare(evaluator, old)
    assert not first["latency_compared"] and not any("p50" in p for p in first["problems"])
    other_cpu = copy.deepcopy(old)
    other_cpu["machine"]["cpu"] = "another CPU"
    assert all(not c["latency_compared"] and len(c["problems"]) == 2 for c in compare(report, other_cpu))


def compare(new: dict, old: dict) -> list[dict]:
    """The baseline comparison of two report.json documents, read back as bench reads them."""
    return regression.compare(Report.from_json(new), Report.from_json(old))


def scale_latency(entry: dict, factor: float) -> None:
    """What a faster or slower machine run would have stored: every repetition's samples scaled."""
    entry["p50"] *= factor
    for rep in entry["repetitions"]:
        rep["p50"] *= factor
        rep["samples"] = [v * factor for v in rep["samples"]]


def test_memory_regression_needs_the_ratio_the_bytes_and_every_repetition(bench_report):
    _, report = bench_report
    mib = 2**20

    def with_delta(delta_new, delta_old, new_reps=None):
        new, old = copy.deepcopy(report), copy.deepcopy(report)
        for row, delta, reps in ((new, delta_new, new_reps), (old, delta_old, None)):
            row["artifacts"][0]["memory"]["rss_delta_bytes"] = delta
            for rep, value in zip(row["artifacts"][0]["latency_ms"][0]["repetitions"], reps or [delta] * 99):
                rep["rss_delta_bytes"] = value
        return compare(new, old)[0]

    grown = with_delta(30 * mib, 20 * mib)
    assert grown["regressed"] and "peak memory 20.0 -> 30.0 MiB" in grown["problems"][-1]
    assert not with_delta(3 * mib, 1 * mib)["regressed"]  # x3, but 2 MiB is allocator noise
    assert not with_delta(120 * mib, 100 * mib)["regressed"]  # 20 MiB, but only x1.2
    overlap = with_delta(30 * mib, 20 * mib, new_reps=[30 * mib, 19 * mib, 31 * mib])
    assert not overlap["regressed"] and "within noise" in overlap["within_noise"][0]


def test_cli_exits_1_on_regression(bench_report, tmp_path):
    dist, report = bench_report

    def smaller_before(row):
        row["size_bytes"] = row["size_bytes"] // 2
        for s in row["latency_ms"]:
            scale_latency(s, 10)

    old = _baseline(report, tmp_path, smaller_before)
    result = run("bench", dist, "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q", "--baseline", old,
                 "--junit", tmp_path / "j.xml", "--no-gate")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "regression against" in lines[0] and "size" in lines[0]
    suite = ET.parse(tmp_path / "j.xml").getroot()
    gates_failed = sum(a["status"] == "failed" for a in json.loads((dist / "report.json").read_text())["artifacts"])
    assert suite.get("failures") == str(4 + gates_failed)  # the 4 size regressions


def test_baseline_of_another_schema_or_dataset_is_refused(bench_report, tmp_path):
    dist, report = bench_report
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**report, "schema_version": 0}))
    result = run("bench", dist, "--baseline", old)
    assert result.exit_code == 2 and "schema_version 0" in result.stderr
    # Before fresh-process memory; before per-output figures; before repetitions (no samples to test on).
    for version in (1, 2, 3):
        old.write_text(json.dumps({**report, "schema_version": version}))
        result = run("bench", dist, "--baseline", old)
        assert result.exit_code == 2 and f"schema_version {version}, this mobilepack writes 4" in result.stderr
    result = run("bench", dist, "--baseline", tmp_path)  # a folder, not the report in it
    assert result.exit_code == 2 and "cannot read" in result.stderr and "Traceback" not in result.output
    other = copy.deepcopy(report)
    other["dataset"]["count"] = 17
    old.write_text(json.dumps(other))
    result = run("bench", dist, "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q", "--baseline", old)
    assert result.exit_code == 2 and "17 inputs" in result.stderr and "same data" in result.stderr


def test_altered_artifact_is_refused_by_bench_naming_the_file(tiny_dist, tmp_path):
    import shutil

    dist = tmp_path / "d"
    shutil.copytree(tiny_dist, dist)
    data = bytearray((dist / "model_int8.tflite").read_bytes())
    data[-1] ^= 0xFF
    (dist / "model_int8.tflite").write_bytes(bytes(data))
    result = run("bench", dist, "--threads", "1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model_int8.tflite: sha256 does not match the manifest" in lines[0]


def test_junit_into_a_missing_folder_is_refused_before_the_bench(tiny_dist, tmp_path):
    result = run("bench", tiny_dist, "--junit", tmp_path / "no" / "such" / "j.xml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert not (tmp_path / "no").exists()


def test_junit_marks_failed_gates(outlier_dist, tmp_path):
    import shutil

    dist = tmp_path / "d"
    shutil.copytree(outlier_dist, dist)
    result = run("bench", dist, "--data", "digits", "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q", "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1
    suite = ET.parse(tmp_path / "j.xml").getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert "model_int8" in failed and suite.get("failures") == str(len(failed))
