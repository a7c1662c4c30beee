"""The report row is a typed record: report.json is its serialised form, read back with from_json, checked on write."""

import dataclasses
import json

import pytest

from benchmarks.report.write import load_report, write_report
from benchmarks.row import ABSENT, Arm64Block, ArtifactRow, LatencyEntry, OutputFigures, Report, ReportFieldError, Statistics
from train.errors import DocumentError


def _read(dist):
    text = (dist / "report.json").read_text()
    return text, Report.from_json(json.loads(text))


def test_a_real_report_round_trips_byte_for_byte(tiny_benched):
    text, report = _read(tiny_benched)
    assert json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n" == text
    assert report.artifacts and all(isinstance(r, ArtifactRow) for r in report.artifacts)
    for row in report.artifacts:
        assert ArtifactRow.from_json(row.to_json()) == row
        assert isinstance(row.outputs[0], OutputFigures) and isinstance(row.latency_ms[0], LatencyEntry)
        assert row.best_p50() == min(s.p50 for s in row.latency_ms)
        assert isinstance(row.statistics, Statistics) and (row.arm64 is None or isinstance(row.arm64, Arm64Block))


def test_a_misspelled_field_fails_loudly(tiny_benched):
    _, report = _read(tiny_benched)
    row = report.artifacts[0]
    with pytest.raises(TypeError, match="statuss"):
        dataclasses.replace(row, statuss="passed")
    with pytest.raises(AttributeError, match="statuss"):
        row.statuss = "passed"  # slotted: no silent new attribute
    with pytest.raises(AttributeError):
        row.outputs[0].agrement = 1.0
    document = row.to_json()
    document["recomended"] = document.pop("recommended")
    with pytest.raises(ReportFieldError, match="unknown field 'recomended'"):
        ArtifactRow.from_json(document)
    del document["recomended"]
    with pytest.raises(ReportFieldError, match="recommended"):  # a field left out is no default either
        ArtifactRow.from_json(document)


def test_writing_an_invalid_row_is_refused_before_any_file(tiny_benched, tmp_path):
    _, report = _read(tiny_benched)
    report.artifacts[1].sha256 = "not-a-hash"
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ReportFieldError, match=r"artifacts\[1\]\.sha256") as caught:
        write_report(report, out)
    assert "\n" not in str(caught.value)
    assert list(out.iterdir()) == []
    report.artifacts[1].sha256 = report.artifacts[0].sha256
    report.artifacts[0].status = "green"
    with pytest.raises(ReportFieldError, match=r"artifacts\[0\]\.status"):
        write_report(report, out)
    assert list(out.iterdir()) == []


def test_a_report_of_another_schema_version_is_refused_in_one_line(tiny_benched, tmp_path):
    text, _ = _read(tiny_benched)
    old = json.loads(text)
    old["schema_version"] = 3
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    with pytest.raises(DocumentError) as caught:
        load_report(path, "re-run `mobilepack bench dist`")
    message = str(caught.value)
    assert "schema_version 3" in message and "re-run `mobilepack bench dist`" in message and "\n" not in message
    with pytest.raises(ReportFieldError, match="schema_version 3, this mobilepack reads 4") as caught:
        Report.from_json(old)
    assert "\n" not in str(caught.value)


def test_a_file_of_the_same_version_from_an_earlier_mobilepack_still_reads(tiny_benched, tmp_path):
    """Reports written before `executor` existed (same schema_version), or with a key a later one adds, read back;
    records bench builds stay strict."""
    text, _ = _read(tiny_benched)
    earlier = json.loads(text)
    del earlier["executor"]
    earlier["artifacts"][0]["a_later_note"] = "kept by a newer mobilepack"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(earlier))
    report = load_report(path, "re-run `mobilepack bench dist`")
    assert report.executor is ABSENT and "executor" not in report.to_json()
    assert [r.name for r in report.artifacts] == [a["name"] for a in earlier["artifacts"]]
    with pytest.raises(ReportFieldError, match="unknown field 'a_later_note'"):
        Report.from_json(earlier)  # what bench builds is strict
    del earlier["artifacts"][0]["a_later_note"]
    with pytest.raises(ReportFieldError, match="missing field 'executor'"):
        Report.from_json(earlier)


def test_absent_stays_absent_through_copies_and_pickles(tiny_benched):
    import copy
    import pickle

    _, report = _read(tiny_benched)
    for twin in (copy.deepcopy(report), pickle.loads(pickle.dumps(report))):
        assert json.dumps(twin.to_json()) == json.dumps(report.to_json())
    assert copy.deepcopy(ABSENT) is ABSENT and pickle.loads(pickle.dumps(ABSENT)) is ABSENT


def test_report_diff_counts_every_field_but_the_measured_ones(tiny_benched, tmp_path):
    """benchmarks/figures/report_diff.py, the check that a refactor left report.json as it was."""
    import subprocess
    import sys

    def diff(document):
        (tmp_path / "new.json").write_text(json.dumps(document))
        return subprocess.run([sys.executable, "-m", "benchmarks.figures.report_diff", str(tiny_benched / "report.json"),
                               str(tmp_path / "new.json")], capture_output=True, text=True)

    old = json.loads((tiny_benched / "report.json").read_text())
    timed = json.loads(json.dumps(old))
    timed["created_at"], timed["artifacts"][0]["latency_ms"][0]["p50"] = "2000-01-01T00:00:00+00:00", 1e9
    same = diff(timed)
    assert same.returncode == 0 and "0 differing field(s)" in same.stdout, same.stdout + same.stderr
    changed = json.loads(json.dumps(old))
    changed["artifacts"][1]["outputs"][0]["sqnr_db"] = -1.0
    changed["artifacts"][0].pop("reason")
    found = diff(changed)
    assert found.returncode == 1 and "2 differing field(s)" in found.stdout, found.stdout
    assert ".artifacts[1].outputs[0].sqnr_db:" in found.stdout and ".artifacts[0].reason: only in old" in found.stdout
