"""The README's tour, run as written in a fresh folder: it must print what the README shows."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "docs"))

import tour  # noqa: E402  (docs/tour.py: the README's blocks are made and compared by the same code)

BLOCK = re.compile(r"^```console\n\$ (mobilepack [^\n]+)\n(.*?)^```$", flags=re.M | re.S)


def tour_blocks() -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows it printing) for every console block of the tour."""
    return [(command, body.rstrip("\n").splitlines()) for command, body in BLOCK.findall(README.read_text())]


def test_readme_names_the_two_commands_and_ci_uses_the_test_one():
    text = README.read_text()
    assert "make demo\nmake test" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


def test_masking_keeps_words_and_hides_only_what_varies():
    shown = ["[1/9] tflite fp32: 374.0 KiB in 0.8 s", "recommended for ios: model_mlprogram_pal4 (smallest ios ...)",
             "report: dist/report.html  (measured on AMD EPYC; host latency, not phone latency)", "model_fp32: 359/359"]
    now = ["[1/9] tflite fp32: 374.5 KiB in 1.2 s", "recommended for ios: model_mlprogram_pal6 (smallest ios ...)",
           "report: dist/report.html  (measured on Intel(R) Xeon(R); host latency, not phone latency)", "model_fp32: 1/359"]
    assert tour.comparable(tour.condense("\n".join(shown))) == tour.comparable(tour.condense("\n".join(now)))
    assert tour.condense("a\nmodel_fp32: 1/359\nmodel_fp16: 1/359\nb") == ["a", "...", "b"]
    assert tour.comparable(["model_int8 passed"]) != tour.comparable(["model_int8 failed"])
    assert tour.comparable(["tflite int8: 1 KiB"]) != tour.comparable(["tflite fp16: 1 KiB"])
    noisy = ["p50 0.044 [0.043-0.077]!", "unstable latency (repetitions differ ...): model_int8 @2t",
             "cross-check with Google's benchmark tool: over 15% apart for model_fp32 (see report.md)"]
    quiet = ["p50 0.043 [0.043-0.044]", "cross-check with Google's benchmark tool: every .tflite median within 15%"]
    assert tour.comparable(noisy) == tour.comparable(quiet)


@pytest.mark.slow
def test_tour_prints_what_the_readme_shows(tmp_path, arm64_home, monkeypatch):
    monkeypatch.setenv("MOBILEPACK_ARM64_HOME", str(arm64_home))  # as after `make test`: bench has its ARM64 column
    blocks = tour_blocks()
    assert [c.split()[1] for c, _ in blocks] == ["train", "convert", "convert", "bench"]
    for command, shown in blocks:
        code, output = tour.run(command, tmp_path)
        assert code == 0, (command, output)
        now = tour.condense(output)
        assert tour.comparable(now) == tour.comparable(shown), (
            f"README.md's block for `{command}` no longer matches what it prints; re-run `cog -r README.md`.\n"
            + "\n".join(now))
    report = json.loads((tmp_path / "dist" / "report.json").read_text())
    assert report["reference"]["accuracy"] >= 0.97  # the floor for small_cnn on digits
    assert report["gate"]["verdict"] == "passed" and len(report["artifacts"]) == 9
    assert {a["runtime"] for a in report["artifacts"]} == {"litert", "coreml-reference"}
    budget = json.loads((tmp_path / "dist-budget" / "manifest.json").read_text())
    assert sorted(a["format"] for a in budget["artifacts"]) == ["mlprogram", "tflite"]
