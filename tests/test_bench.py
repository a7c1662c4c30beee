import json
import math

import numpy as np
import pytest

from benchmarks.parity import compare
from benchmarks.bench import BenchConfig, run_bench
from benchmarks.errors import BenchDataError, ThresholdError
from benchmarks.gating.gate import DEFAULT_THRESHOLDS, GateCase, Threshold, judge, parse_gate
from benchmarks.runners import KerasRunner, LiteRTRunner
from convert.errors import ManifestError
from row_helpers import figures

quiet = lambda m: None  # noqa: E731


def test_sqnr_of_known_noise():
    ref = np.ones(1000)
    out = ref + 0.01  # noise power 1e-4 of signal 1 -> 40 dB
    assert compare.sqnr_db(out, ref) == pytest.approx(40.0)
    assert math.isinf(compare.sqnr_db(ref, ref))
    assert compare.finite_or_none(math.inf) is None


def test_agreement_and_accuracy():
    a, b = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0])
    assert compare.agreement(a, b) == 0.75 and compare.accuracy(a, np.array([0, 1, 1, 1])) == 0.5


def test_litert_fp32_matches_keras_on_digits(tiny_run, tiny_dist):
    from train.loading import load_keras_model

    model = load_keras_model(tiny_run)
    x = np.random.default_rng(0).uniform(0, 255, (7, 16, 16, 3)).astype(np.float32)
    ref = KerasRunner(model).predict([x])[0]
    out = LiteRTRunner(tiny_dist / "model_fp32.tflite").predict([x])[0]
    assert out.shape == (7, 10)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.fixture(scope="module")
def report(tiny_dist, fast_latency):
    return run_bench(tiny_dist, BenchConfig(repeat=1, data="digits", threads=(1, 2), latency=fast_latency), log=quiet)


def test_report_has_the_contract_keys(report, tiny_dist):
    on_disk = json.loads((tiny_dist / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    for key in ("schema_version", "machine", "dataset", "reference", "artifacts"):
        assert key in on_disk
    assert on_disk["dataset"]["split"] == "test" and on_disk["dataset"]["count"] == 359
    assert {"cpu", "cores", "os", "python", "packages"} <= set(on_disk["machine"])
    assert "not phone" in on_disk["machine"]["note"]
    assert on_disk["reference"]["accuracy"] > 0.5
    for a in on_disk["artifacts"]:
        for key in ("name", "target", "format", "quantization", "path", "size_bytes", "sha256", "runtime",
                    "accuracy", "accuracy_drop_pp", "agreement", "max_abs_error", "sqnr_db", "latency_ms",
                    "status", "reason"):
            assert key in a, key
        assert (tiny_dist / a["path"]).is_file()
        assert a["status"] in ("passed", "failed", "skipped") and a["reason"]
        assert [s["threads"] for s in a["latency_ms"]] == [1, 2]
        for s in a["latency_ms"]:
            assert s["runs"] >= 5 and s["p50"] > 0 and s["p50"] <= s["p90"] <= s["p99"]


def test_fp32_is_numerically_the_reference(report):
    fp32 = next(a for a in report["artifacts"] if a["quantization"] == "fp32")
    assert fp32["agreement"] == 1.0 and fp32["accuracy_drop_pp"] == 0.0 and fp32["max_abs_error"] < 1e-4
    int8 = next(a for a in report["artifacts"] if a["quantization"] == "int8")
    assert 10 < int8["sqnr_db"] < fp32["sqnr_db"]


def test_markdown_report_lists_every_artifact(report, tiny_dist):
    md = (tiny_dist / "report.md").read_text()
    assert "not phone latencies" in md
    for a in report["artifacts"]:
        assert f"`{a['name']}`" in md


def _judged(drop, agreement, quant="int8"):
    """judge() on one classification output with these figures, against a 1 pp / 0.98 gate on 200 inputs."""
    out = figures(accuracy_drop_pp=drop, agreement=agreement, accuracy=0.9)
    return judge([out], None, GateCase(f"model_{quant}.tflite", quant, Threshold(1.0, 0.98), 200))


def test_judge_fails_with_numbers_and_a_next_step():
    status, reason = _judged(1.5, 0.91)
    assert status == "failed"
    assert "1.50 pp > 1.00 pp" in reason and "0.910 < 0.980" in reason and "200" in reason and "try" in reason
    assert "output 'probs'" not in reason  # a single-output model keeps the short message
    assert _judged(0.2, 0.99)[0] == "passed"


@pytest.mark.bad_input("api")
def test_gate_overrides_are_validated():
    assert parse_gate(["int8.max_drop=0.5"])["int8"].max_drop_pp == 0.5
    assert parse_gate(["int8.min_sqnr=31", "fp16.min_agreement=0.9"])["int8"].min_sqnr_db == 31.0
    assert parse_gate([])["fp16"] == DEFAULT_THRESHOLDS["fp16"]
    for bad, msg in [("int8", "QUANT.FIELD=VALUE"), ("int4.max_drop=1", "unknown quantization"),
                     ("int8.max_dorp=1", "unknown field"), ("int8.max_drop=abc", "not a number"),
                     ("int8.max_drop=-1", "between")]:
        with pytest.raises(ThresholdError, match=msg):
            parse_gate([bad])


@pytest.mark.bad_input("api")
def test_thread_counts_must_be_positive():
    with pytest.raises(ThresholdError, match=">= 1"):
        BenchConfig(threads=(0,))
    with pytest.raises(ThresholdError):
        BenchConfig(threads=(-2, 1))


def test_npz_without_labels_gives_agreement_only(tiny_dist, tmp_path, fast_latency):
    x = np.random.default_rng(1).uniform(0, 255, (40, 16, 16, 3)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    r = run_bench(tiny_dist, BenchConfig(repeat=1, data=str(tmp_path / "x.npz"), threads=(1,), latency=fast_latency, crosscheck=False), log=quiet)
    assert r["reference"]["accuracy"] is None and r["dataset"]["count"] == 40
    assert all(a["accuracy"] is None and a["accuracy_drop_pp"] is None for a in r["artifacts"])


@pytest.mark.bad_input("loader")
def test_npz_of_wrong_shape_is_refused(tiny_dist, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(BenchDataError, match=r"shape \(8, 8, 3\).*\(16, 16, 3\)"):
        run_bench(tiny_dist, BenchConfig(repeat=1, data=str(tmp_path / "x.npz")), log=quiet)


@pytest.mark.bad_input("loader")
def test_missing_artifact_is_refused(tiny_dist, tmp_path):
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(tiny_dist, copy)
    (copy / "model_int8.tflite").unlink()
    with pytest.raises(ManifestError, match="model_int8.tflite: listed in the manifest but missing"):
        run_bench(copy, BenchConfig(repeat=1), log=quiet)


def test_one_recommended_artifact_per_platform(report):
    rows = report["artifacts"]
    tflite = [a for a in rows if a["target"] == "tflite"]
    best = min((a for a in tflite if a["status"] == "passed"), key=lambda a: a["size_bytes"])
    assert report["recommended"]["android"] == best["name"]
    assert [a["name"] for a in rows if a["recommended"]] == [best["name"]]
    assert "smallest android artifact that passed its gate within the budget" in best["recommendation_reason"]
    assert all(a["recommendation_reason"] for a in rows)
    assert report["recommended"]["ios"] is None  # no Core ML artifacts in this dist


def test_recommendation_skips_failed_artifacts(outlier_dist, tmp_path, fast_latency):
    import shutil

    dist = shutil.copytree(outlier_dist, tmp_path / "d")
    r = run_bench(dist, BenchConfig(repeat=1, data="digits", threads=(1,), latency=fast_latency, crosscheck=False), log=quiet)
    rows = {a["name"]: a for a in r["artifacts"]}
    assert rows["model_int8"]["status"] == "failed" and not rows["model_int8"]["recommended"]
    assert rows["model_int8"]["recommendation_reason"].startswith("failed its gate")
    chosen = rows[r["recommended"]["android"]]
    assert chosen["status"] == "passed"
    assert chosen["size_bytes"] == min(a["size_bytes"] for a in rows.values() if a["status"] == "passed")


def test_macs_counted_from_the_graph(report, tiny_run):
    """small_cnn at 16 px, by hand: convs 16*16*32*27 + 8*8*64*288 + 4*4*128*576, dense 128*10."""
    expected = 16 * 16 * 32 * 27 + 8 * 8 * 64 * 288 + 4 * 4 * 128 * 576 + 128 * 10
    for a in report["artifacts"]:
        assert a["macs"] == expected, a["name"]
        assert a["gmacs_per_s"] > 0
    for s in report["artifacts"][0]["latency_ms"]:
        assert s["min"] <= s["p5"] <= s["p50"] <= s["p95"] <= s["max"]


def test_thread_counts_above_the_cores_are_capped_with_a_note(tiny_dist, fast_latency, tmp_path):
    import os
    import shutil

    dist = tmp_path / "d"
    shutil.copytree(tiny_dist, dist)
    cores = os.cpu_count()
    r = run_bench(dist, BenchConfig(repeat=1, data="digits", threads=(1, cores + 2), latency=fast_latency, crosscheck=False), log=quiet)
    assert r["threads"]["measured"] == sorted({1, cores})
    assert f"this machine has {cores} cores" in r["threads"]["note"]
    assert [s["threads"] for s in r["artifacts"][0]["latency_ms"]] == sorted({1, cores})
