"""The README's tour commands, run as written, in a fresh folder."""

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobilepack.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[str]:
    return re.findall(r"^\$ (mobilepack .+)$", README.read_text(), flags=re.M)


def test_readme_names_the_two_commands_and_ci_uses_the_test_one():
    text = README.read_text()
    assert "make demo\nmake test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


@pytest.mark.slow
def test_tour_runs_as_written(tmp_path, monkeypatch):
    commands = tour_commands()
    assert [c.split()[1] for c in commands] == ["train", "convert", "convert", "bench"]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        result = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert result.exit_code == 0, (command, result.output, result.stderr)
    report = json.loads((tmp_path / "dist" / "report.json").read_text())
    assert report["reference"]["accuracy"] >= 0.97  # the floor for small_cnn on digits
    assert report["gate"]["verdict"] == "passed" and len(report["artifacts"]) == 9
    assert {a["runtime"] for a in report["artifacts"]} == {"litert", "coreml-reference"}
    budget = json.loads((tmp_path / "dist-budget" / "manifest.json").read_text())
    assert sorted(a["format"] for a in budget["artifacts"]) == ["mlprogram", "tflite"]
