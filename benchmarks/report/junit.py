"""JUnit XML: one test case per artifact's gate (and per baseline comparison), for CI systems."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from train.errors import OutputError
from train.fsutil import atomic_write_bytes

from benchmarks.row import Report


def junit_xml(report: Report, regressions: list[dict] | None = None) -> bytes:
    suite = ET.Element("testsuite", name="mobilepack.bench")
    cases = []
    for a in report.artifacts:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{a.target}.{a.format}", name=a.name)
        if a.status == "failed":
            ET.SubElement(case, "failure", message=a.reason).text = a.reason
        elif a.status == "skipped":
            ET.SubElement(case, "skipped", message=a.reason)
        cases.append(case)
    for r in regressions or []:
        case = ET.SubElement(suite, "testcase", classname="baseline", name=r["name"])
        if r["regressed"]:
            text = "; ".join(r["problems"])
            ET.SubElement(case, "failure", message=text).text = text
        cases.append(case)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def check_junit_path(path: Path) -> None:
    """Refuse a --junit path whose folder is missing before the slow bench, not after it."""
    parent = Path(path).absolute().parent
    if not parent.is_dir():
        raise OutputError(f"--junit {path}: folder {parent} does not exist; create it or choose another path")


def write_junit(path: Path, report: Report, regressions: list[dict] | None = None) -> None:
    try:
        atomic_write_bytes(Path(path), junit_xml(report, regressions))
    except OSError as exc:
        raise OutputError(f"--junit {path}: cannot write ({exc.strerror}); choose a writable path") from None
