"""`mobilepack ship` into the demo apps, what each app reads, and the Kotlin preprocessing on the JVM."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmarks.runners import quantize
from convert.manifest import load_manifest
from mobilepack.cli.main import cli
from train.preprocessing import Preprocessing

ROOT = Path(__file__).resolve().parents[1]
KOTLIN_MAIN = ROOT / "android_demo/app/src/main/java/dev/mobilepack/demo"
SWIFT = ROOT / "ios_demo/MobilepackDemo"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, code, *needles):
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == code and len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def benched(tiny_run, tmp_path_factory):
    """TFLite fp32 + int8 and Core ML fp16, benched so the gate verdicts exist."""
    from convert.api import ConvertConfig, convert

    dist = tmp_path_factory.mktemp("ship") / "dist"
    convert(tiny_run, dist, ConvertConfig(targets=("tflite", "coreml"), quantizations=("fp32", "int8", "fp16")),
            log=lambda m: None)
    result = run("bench", dist, "--threads", "1", "--runs", "2",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-crosscheck", "--no-gate", "-q")
    assert result.exit_code == 0, result.stderr
    return dist


@pytest.fixture()
def apps(tmp_path):
    out = {}
    for name in ("android_demo", "ios_demo"):
        out[name] = tmp_path / name
        shutil.copytree(ROOT / name, out[name], ignore=shutil.ignore_patterns("mobilepack"))
    return out


def shipped(benched, apps, *extra):
    result = run("ship", benched, "--android", apps["android_demo"], "--ios", apps["ios_demo"], *extra)
    assert result.exit_code == 0, result.output
    return (apps["android_demo"] / "app/src/main/assets/mobilepack", apps["ios_demo"] / "MobilepackDemo/Resources/mobilepack")


def test_ship_puts_what_each_app_reads_in_place(benched, apps):
    report = json.loads((benched / "report.json").read_text())
    android, ios = shipped(benched, apps)
    for assets, target in ((android, "tflite"), (ios, "coreml")):
        manifest = load_manifest(assets)  # the same schema, holding only the shipped artifact
        [artifact] = manifest.artifacts
        assert artifact.target == target and artifact.name == report["recommended"]["android" if target == "tflite" else "ios"]
        assert (assets / artifact.file).exists()
        from train.loading import sha256_file

        assert sha256_file(assets / artifact.file) == artifact.sha256
        labels = (assets / "labels.txt").read_text().split("\n")[:-1]
        assert labels == manifest.labels
        raw = json.loads((assets / "manifest.json").read_text())
        if target == "tflite":
            assert len(labels) == artifact.outputs[-1]["shape"][-1]
            _check_fields_the_apps_read(raw)
        else:  # ShippedManifest.swift: the artifact's name, file, format and quantization, labels, image size
            a = raw["artifacts"][0]
            assert all(isinstance(a[k], str) for k in ("name", "file", "target", "format", "quantization"))
            assert all(isinstance(v, int) for v in raw["preprocessing"]["image_size"])
        prep = Preprocessing.from_dict(json.loads((assets / "preprocessing.json").read_text()))
        samples = json.loads((assets / "samples/samples.json").read_text())
        assert samples["artifact"] == artifact.name and len(samples["samples"]) == 10
        assert len({s["label"] for s in samples["samples"]}) == 10  # one per class
        for s in samples["samples"]:
            with Image.open(assets / "samples" / s["file"]) as im:  # digits' own 8x8, so the app must resize
                assert im.size == (8, 8) != (prep.image_size[1], prep.image_size[0]) and im.mode == "RGB"
            with Image.open(assets / "samples" / s["expected_pixels"]) as im:
                assert im.size == (prep.image_size[1], prep.image_size[0]) and im.mode == "RGB"
            assert s["expected_top1"] in labels


def _check_fields_the_apps_read(raw: dict) -> None:
    """The keys ModelSpec.kt and ShippedManifest.swift read, with the types they read them as."""
    a = raw["artifacts"][0]
    assert all(isinstance(a[k], str) for k in ("name", "file", "target", "format", "quantization"))
    for tensor in (a["inputs"][0], a["outputs"][0]):
        assert all(isinstance(d, int) for d in tensor["shape"]) and tensor["dtype"] in ("float32", "uint8", "int8")
        q = tensor["quantization"]
        assert q is None or (isinstance(q["scale"], float) and isinstance(q["zero_point"], int))
    p = raw["preprocessing"]
    assert p["channel_order"] in ("RGB", "BGR") and p["layout"] in ("NHWC", "NCHW") and isinstance(p["resize"], str)
    assert isinstance(p["normalization_in_model"], bool) and all(isinstance(v, int) for v in p["image_size"])
    assert len(p["mean"]) == len(p["std"]) == 3 and isinstance(raw["labels"], list)


def test_launch_check_runs_the_shipped_samples_through_the_apps_kotlin(benched, apps, kotlin_jar):
    """MainActivity's launch check, with ImageIO for BitmapFactory: original-size samples in, contract out."""
    from mobilepack.golden import run_contract_check

    android, _ = shipped(benched, apps)
    prep = json.loads((android / "manifest.json").read_text())["preprocessing"]
    args = ("samples", android / "samples", prep["image_size"][1], prep["image_size"][0], prep["resize"])
    check = run_contract_check(kotlin_jar, *args)
    assert check.returncode == 0 and check.stdout.strip() == "10/10 match mobilepack", check.stdout + check.stderr
    # An app whose resize drifted: the check names the sample and by how much.
    expected = android / "samples/sample_03_3.expected.png"
    pixels = np.asarray(Image.open(expected)).copy()
    pixels[0, 0] = (pixels[0, 0].astype(int) + 5) % 256
    Image.fromarray(pixels).save(expected)
    check = run_contract_check(kotlin_jar, *args)
    assert check.returncode == 1, check.stdout + check.stderr
    assert check.stdout.splitlines()[:2] == ["9/10 match mobilepack",
                                             "sample_03_3.png differs by up to 5 LSB in 3 of 768 values"], check.stdout


def test_artifact_flag_ships_another_artifact(benched, apps):
    android, _ = shipped(benched, apps, "--artifact", "model_fp32")
    assert [a.name for a in load_manifest(android).artifacts] == ["model_fp32"]


def test_app_code_reads_the_manifest_not_constants():
    kotlin = "\n".join(p.read_text() for p in KOTLIN_MAIN.glob("*.kt"))
    swift = "\n".join(p.read_text() for p in SWIFT.glob("*.swift"))
    for key in ('"manifest.json"', '"file"', '"shape"', '"dtype"', '"quantization"', '"preprocessing"',
                '"channel_order"', '"layout"', '"mean"', '"std"', '"labels.txt"'):
        assert key.strip('"') in kotlin, key
    assert "manifest.json" in swift and "artifact.file" in swift and "VNCoreMLRequest" in swift
    # no model file name, size or scale compiled into the apps
    assert not re.search(r'"[^"]*\.(tflite|mlpackage|mlmodel)"', kotlin + swift)
    assert not re.search(r"\b(32|224)\s*,\s*(32|224)\b", kotlin)
    for name, text in (("android", (ROOT / "android_demo/mobilepack-app.json").read_text()),
                       ("ios", (ROOT / "ios_demo/mobilepack-app.json").read_text())):
        assert json.loads(text)["platform"] == name
    gradle = (ROOT / "android_demo/app/build.gradle.kts").read_text()
    assert "minSdk = 24" in gradle and "litert" in gradle


def test_ship_refuses_a_folder_that_is_not_the_app(benched, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    one_line_error(run("ship", benched, "--android", tmp_path / "elsewhere"), 2, "not a mobilepack demo app",
                   "mobilepack-app.json")
    one_line_error(run("ship", benched, "--android", ROOT / "ios_demo"), 2, "platform 'ios'")
    one_line_error(run("ship", benched), 2, "--android")


def test_ship_refuses_failed_gates_unless_forced(benched, apps, tmp_path):
    dist = tmp_path / "failing"
    shutil.copytree(benched, dist)
    # A report in which every TFLite artifact failed its gate (what `bench` writes for a broken conversion).
    report = json.loads((dist / "report.json").read_text())
    for row in report["artifacts"]:
        if row["target"] == "tflite":
            row["status"], row["reason"] = "failed", f"{row['path']}: top-1 agreement 0.500 < 0.980 on 359 images"
    report["recommended"]["android"] = None
    (dist / "report.json").write_text(json.dumps(report))
    one_line_error(run("ship", dist, "--android", apps["android_demo"]), 2, "no tflite artifact passed its gate")
    one_line_error(run("ship", dist, "--android", apps["android_demo"], "--artifact", "model_int8"), 2,
                   "model_int8 failed its gate", "--force")
    assert not (apps["android_demo"] / "app/src/main/assets/mobilepack").exists()  # nothing half-shipped
    forced = run("ship", dist, "--android", apps["android_demo"], "--artifact", "model_int8", "--force")
    assert forced.exit_code == 0, forced.output
    assert [a.name for a in load_manifest(apps["android_demo"] / "app/src/main/assets/mobilepack").artifacts] == ["model_int8"]


@pytest.mark.bad_input("cli")
def test_ship_refuses_a_model_newer_than_the_app_deployment_target(benched, apps):
    marker = apps["ios_demo"] / "mobilepack-app.json"
    spec = json.loads(marker.read_text())
    # The repository's marker states the deployment target Xcode builds with (project.yml).
    assert f'iOS: "{spec["ios_target"]}.0"' in (ROOT / "ios_demo/project.yml").read_text()
    spec["ios_target"] = 14  # an app for iOS 14; every ML Program needs iOS 15
    marker.write_text(json.dumps(spec))
    # fp16 when it passed its gate (Neural Engine first), else fp32: which one depends on the CPU that trained.
    chosen = json.loads((benched / "report.json").read_text())["recommended"]["ios"]
    assert chosen in ("model_mlprogram_fp16", "model_mlprogram_fp32")
    one_line_error(run("ship", benched, "--android", apps["android_demo"], "--ios", apps["ios_demo"]), 2,
                   f"{chosen} needs iOS 15", "targets iOS 14", "--ios-target 14")
    for app, assets in (("android_demo", "app/src/main/assets/mobilepack"),
                        ("ios_demo", "MobilepackDemo/Resources/mobilepack")):
        assert not (apps[app] / assets).exists()  # refused before either app was touched


def test_ship_refuses_a_manifest_with_incomplete_preprocessing(benched, apps, tmp_path):
    dist = tmp_path / "d"
    shutil.copytree(benched, dist)
    m = json.loads((dist / "manifest.json").read_text())
    del m["preprocessing"]["channel_order"]
    (dist / "manifest.json").write_text(json.dumps(m))
    one_line_error(run("ship", dist, "--android", apps["android_demo"]), 2, "missing field(s) channel_order")


def test_ship_needs_a_bench_report(benched, apps, tmp_path):
    dist = tmp_path / "unbenched"
    shutil.copytree(benched, dist)
    (dist / "report.json").unlink()
    one_line_error(run("ship", dist, "--android", apps["android_demo"]), 2, "no report.json", "mobilepack bench")


# --- the Android app's pure-Kotlin preprocessing and postprocessing against the Python pipeline ---

def _golden_case(name: str, prep: Preprocessing, image: np.ndarray, in_detail: dict, out_detail: dict,
                 raw_out: np.ndarray, labels: list[str]) -> str:
    from benchmarks.runners import dequantize

    x = prep.apply(image)  # what mobilepack feeds the model
    sized = prep.resized(image).astype(np.int64)
    argb = (0xFF << 24) | (sized[..., 0] << 16) | (sized[..., 1] << 8) | sized[..., 2]
    scale, zero = in_detail["quantization"] if in_detail["dtype"] != np.float32 else (0.0, 0)
    scores = dequantize(raw_out, out_detail).ravel()
    top3 = np.lexsort((np.arange(len(scores)), -scores))[:3]  # by score, ties to the lower index
    o_scale, o_zero = out_detail["quantization"]
    fields = {
        "case": name, "width": prep.image_size[1], "height": prep.image_size[0], "channels": prep.channels,
        "dtype": np.dtype(in_detail["dtype"]).name, "scale": repr(float(scale)), "zero_point": int(zero),
        "channel_order": prep.channel_order, "layout": prep.layout,
        "normalization_in_model": str(prep.normalization_in_model).lower(),
        "mean": " ".join(map(repr, map(float, prep.mean))), "std": " ".join(map(repr, map(float, prep.std))),
        "pixels": " ".join(str(int(v) - (1 << 32)) for v in argb.ravel()),  # as Kotlin's signed Int
        "input": " ".join(repr(float(v)) for v in x.ravel()),
        "tensor": " ".join(str(int(v)) for v in quantize(x, in_detail).ravel()) if in_detail["dtype"] != np.float32 else "-",
        "output_dtype": np.dtype(out_detail["dtype"]).name, "output_scale": repr(float(o_scale)),
        "output_zero_point": int(o_zero), "output_raw": " ".join(repr(float(v)) for v in raw_out.ravel()),
        "labels": " ".join(labels), "top3": " ".join(map(str, top3)),
        "top3_scores": " ".join(repr(float(scores[i])) for i in top3),
    }
    return "\n".join(f"{k} {v}" for k, v in fields.items()) + "\n"


def test_kotlin_preprocessing_matches_python_golden_vectors(benched, tmp_path, kotlin_jar):
    from ai_edge_litert.interpreter import Interpreter

    from train.data import load_dataset

    manifest = load_manifest(benched)
    prep = Preprocessing.from_dict(manifest.preprocessing)
    images = load_dataset("digits", lambda m: None).images
    cases = []
    for quant, i in (("fp32", 3), ("int8", 7), ("int8", 11)):
        interp = Interpreter(model_path=str(benched / f"model_{quant}.tflite"))
        interp.allocate_tensors()
        ind, outd = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.set_tensor(ind["index"], quantize(prep.apply(images[i])[None], ind))
        interp.invoke()
        cases.append(_golden_case(f"{quant}-{i}", prep, images[i], ind, outd, interp.get_tensor(outd["index"]),
                                  manifest.labels))
    # BGR, NCHW and a quantized uint8 output, on a synthetic 5x4 image: layout, order and dequantization
    bgr = Preprocessing(image_size=(4, 5), channel_order="BGR", layout="NCHW")
    img = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    ind = {"dtype": np.uint8, "quantization": (2.0, 3)}
    outd = {"dtype": np.uint8, "quantization": (0.00390625, 0)}
    raw = np.array([[10, 200, 200, 7, 255]], np.uint8)
    cases.append(_golden_case("bgr-nchw", bgr, img, ind, outd, raw, ["a", "b", "c", "d", "e"]))
    golden = tmp_path / "golden.txt"
    golden.write_text("\n".join(cases))

    check = subprocess.run(["java", "-cp", str(kotlin_jar), "dev.mobilepack.demo.GoldenCheckKt", str(golden)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "all 4 golden case(s) match" in check.stdout
