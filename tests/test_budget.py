"""Accuracy-budgeted conversion (`convert --max-drop`) with the real converter, debugger and runtimes."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from convert.api import ConvertConfig, RuntimeHooks, convert
from convert.budget import Budget, BudgetNotMetError
from convert.search import float_layer_counts
from convert.errors import UsageError
from mobilepack.cli.main import cli
from mobilepack.judge import min_validation_images, validation_judge

quiet = lambda m: None  # noqa: E731


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def loses(pp: float) -> dict:
    """A judge's figures for a one-output classifier that loses `pp` on the validation split."""
    return {"name": "probs", "kind": "classification", "accuracy_drop_pp": pp, "sqnr_db": 30.0}


def one_line(result, code, fragment):
    assert result.exit_code == code, (result.output, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.bad_input("cli")
def test_budget_must_be_a_positive_number(tiny_run, tmp_path):
    for bad in (-1.0, 0.0):
        with pytest.raises(UsageError, match="greater than 0"):
            ConvertConfig(max_drop_pp=bad)
    one_line(run("convert", tiny_run, "--max-drop", "-0.5", "--out", tmp_path / "o"), 2, "greater than 0")
    result = run("convert", tiny_run, "--max-drop", "lots", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "lots" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_validation_split_must_resolve_the_budget(tiny_run, tmp_path):
    assert min_validation_images(0.5) == 200 and min_validation_images(1.0) == 100
    with pytest.raises(UsageError, match="has 359 images.*0.2 pp budget needs at least 500"):
        validation_judge(tiny_run, Budget(0.2), log=quiet)
    one_line(run("convert", tiny_run, "--max-drop", "0.2", "--out", tmp_path / "o"), 2, "needs at least 500")


@pytest.mark.bad_input("cli")
def test_budget_needs_a_run_dir(tensor_model, tmp_path):
    one_line(run("convert", tensor_model, "--max-drop", "1", "--out", tmp_path / "o"), 2, "needs a run dir")
    one_line(run("convert", tensor_model, "--validation", "v.npz", "--out", tmp_path / "o"), 2, "add --max-drop")


def test_float_layer_counts_double_up_to_half():
    assert float_layer_counts(10) == [1, 2, 4] and float_layer_counts(1) == [1] and float_layer_counts(40)[-1] == 16


def test_search_recovers_an_int8_model_that_plain_int8_breaks(outlier_run, tmp_path, fast_latency):
    """A 5 pp budget: plain int8 of the outlier model loses tens of pp, healthy int8 of tiny_run about 0, on any CPU."""
    from benchmarks.bench import BenchConfig, run_bench

    judge = validation_judge(outlier_run, Budget(5.0), log=quiet)
    manifest = convert(outlier_run, tmp_path / "d", ConvertConfig(max_drop_pp=5.0), log=quiet,
                       hooks=RuntimeHooks(judge=judge))
    [chosen] = manifest.artifacts
    trail = chosen.notes["search"]
    assert trail[0]["candidate"] == "int8" and not trail[0]["within_budget"] and trail[0]["val_drop_pp"] > 20.0
    assert trail[-1]["within_budget"] and chosen.notes["budget_pp"] == 5.0
    # Keeping the blown-up tensor's producer and reader float is enough: a mixed int8 model, not a fallback.
    assert chosen.name == "model_int8_mixed" and chosen.quantization == "int8"
    [group] = chosen.notes["float_layers"]
    assert any("outlier_up" in n for n in group["layers"]) and any("outlier_down" in n for n in group["layers"])
    assert "never quantized" in chosen.notes["float_layer_reason"]
    report = run_bench(tmp_path / "d", BenchConfig(repeat=1, data="digits", threads=(1,), latency=fast_latency,
                                                   crosscheck=False, budget=Budget(5.0)), log=quiet)
    row = report["artifacts"][0]
    assert row["status"] == "passed" and "<= 5.00 pp" in row["reason"]  # gated at the budget, on the test split
    assert report["recommended"]["android"] == "model_int8_mixed"
    assert row["budget_pp"] == 5.0 and row["float_layers"] == chosen.notes["float_layers"]
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "report" / "report.schema.json").read_text())
    jsonschema.validate(json.loads((tmp_path / "d" / "report.json").read_text()), schema)
    md = (tmp_path / "d" / "report.md").read_text()
    assert "1 tensor(s) kept float" in md and "tried int8 " in md


@pytest.mark.bad_input("api")
def test_no_candidate_within_budget_lists_them_all(tiny_run, tmp_path):
    pessimist = lambda path, target: [loses(5.0)]  # noqa: E731  every candidate loses 5 pp
    with pytest.raises(BudgetNotMetError) as info:
        convert(tiny_run, tmp_path / "o", ConvertConfig(targets=("coreml",), max_drop_pp=1.0), log=quiet,
                hooks=RuntimeHooks(judge=pessimist))
    assert info.value.exit_code == 1
    for q in ("pal4", "pal6", "int8w", "fp16"):
        assert f"{q}: drop 5.00 pp > 1 pp" in str(info.value)
    assert not (tmp_path / "o").exists()


def test_cli_exit_1_when_the_budget_cannot_be_met(tiny_run, tmp_path, monkeypatch):
    import mobilepack.judge as judge

    monkeypatch.setattr(judge, "validation_judge", lambda *a, **k: (lambda path, target: [loses(5.0)]))
    one_line(run("convert", tiny_run, "--target", "coreml", "--quant", "fp16", "--max-drop", "1",
                 "--out", tmp_path / "o"), 1, "no candidate stays within 1 pp")


def test_digits_budget_keeps_one_artifact_per_format(tiny_run, tmp_path):
    judge = validation_judge(tiny_run, Budget(0.5), log=quiet)
    manifest = convert(tiny_run, tmp_path / "d", ConvertConfig(targets=("tflite", "coreml"), max_drop_pp=0.5),
                       log=quiet, hooks=RuntimeHooks(judge=judge))
    assert sorted(a.format for a in manifest.artifacts) == ["mlprogram", "tflite"]
    saved = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert all(a["notes"]["search"][-1]["within_budget"] for a in saved["artifacts"])


@pytest.mark.slow
def test_demo_takes_a_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("demo", "--out", "dist", "--run-dir", "run", "--no-crosscheck", "--epochs", "3", "--img-size", "16", "--max-drop", "1",
                 "--threads", "1", "--runs", "5", "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-gate", "-q")  # which rung passes: the CPU's say
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "dist" / "report.json").read_text())
    assert sorted(a["format"] for a in report["artifacts"]) == ["mlprogram", "neuralnetwork", "tflite"]
    assert all(a["budget_pp"] == 1.0 for a in report["artifacts"])
    assert run("demo", "--max-drop", "1", "--max-drop", "2").exit_code == 2


def test_coreml_ladder_leaves_the_worst_weights_uncompressed_before_stepping_up(tiny_run, tmp_path):
    """A judge that accepts pal4 only with a weight uncompressed: the search must get there, not to pal6."""
    from convert.coreml.convert import import_coremltools

    ct = import_coremltools()

    def judge(path, target):
        spec = ct.models.utils.load_spec(str(path))
        block = spec.mlProgram.functions["main"].block_specializations["CoreML6"]
        compressed = sum(op.type.startswith("constexpr") for op in block.operations)
        return [loses(0.0 if compressed == 1 else 3.0)]  # pal4 on both big weights "loses 3 pp"

    manifest = convert(tiny_run, tmp_path / "o", ConvertConfig(targets=("coreml",), max_drop_pp=1.0), log=quiet,
                       hooks=RuntimeHooks(judge=judge))
    [chosen] = manifest.artifacts
    assert chosen.name == "model_mlprogram_pal4_mixed" and chosen.quantization == "pal4"
    assert [t["candidate"] for t in chosen.notes["search"]] == ["pal4", "pal4 with 1 weight(s) uncompressed"]
    assert len(chosen.notes["float_layers"]) == 1 and "reproduces worst" in chosen.notes["float_layer_reason"]
