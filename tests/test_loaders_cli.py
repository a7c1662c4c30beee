"""The CLI refuses a damaged file it reads in one line, exit 2, no traceback, and leaves its previous output as it was.

The loaders themselves are fuzzed in test_loaders.py; these are the commands users run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]

ASSETS = "app/src/main/assets/mobilepack"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shipped(tiny_benched, tmp_path_factory) -> Path:
    """An android_demo copy into which the tiny_benched dist was shipped once: the output a failed ship must keep."""
    app = tmp_path_factory.mktemp("app") / "android_demo"
    shutil.copytree(ROOT / "android_demo", app, ignore=shutil.ignore_patterns("mobilepack"))
    result = run("ship", tiny_benched, "--android", app, "--artifact", "model_fp32", "--samples", "2")
    assert result.exit_code == 0, result.output
    return app


def write_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


SHIP_CASES = [
    pytest.param(lambda dist, app: (dist / "report.json").write_text("{not json"),
                 ["report.json", "not valid JSON", "mobilepack bench"], id="ship-report-not-json"),
    pytest.param(lambda dist, app: write_json(dist / "report.json", lambda d: d.update(artifacts={})),
                 ["report.json", "artifacts is an object, expected an array", "mobilepack bench"],
                 id="ship-report-rows-not-a-list"),
    pytest.param(lambda dist, app: (app / "mobilepack-app.json").write_text('{"platform": "android", '),
                 ["mobilepack-app.json", "not valid JSON", "git checkout"], id="ship-marker-not-json"),
    pytest.param(lambda dist, app: write_json(app / "mobilepack-app.json", lambda d: d.pop("assets")),
                 ["mobilepack-app.json", "missing field(s) assets"], id="ship-marker-without-assets"),
    pytest.param(lambda dist, app: write_json(app / "mobilepack-app.json", lambda d: d.update(assets="/tmp")),
                 ["mobilepack-app.json", "not a folder inside the app"], id="ship-marker-assets-outside-app"),
]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("damage,fragments", SHIP_CASES)
def test_ship_refuses_a_damaged_report_or_marker(damage, fragments, tiny_benched, shipped, tmp_path):
    dist, app = tmp_path / "dist", tmp_path / "android_demo"
    shutil.copytree(tiny_benched, dist)
    shutil.copytree(shipped, app)
    before = tree(app / ASSETS)
    damage(dist, app)
    assert_one_line_error(run("ship", dist, "--android", app, "--artifact", "model_fp32"), 2, *fragments)
    assert tree(app / ASSETS) == before


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("damage,fragment", [
    pytest.param(lambda report: b"{not json", "not valid JSON", id="bench-baseline-not-json"),
    pytest.param(lambda report: report[: len(report) // 3], "not valid JSON", id="bench-baseline-truncated"),
    pytest.param(lambda report: b'{"schema_version": 4}', "missing field(s) machine", id="bench-baseline-missing-keys"),
])
def test_bench_refuses_a_damaged_baseline(damage, fragment, tiny_benched, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    before = tree(dist)
    old = tmp_path / "old.json"
    old.write_bytes(damage((tiny_benched / "report.json").read_bytes()))
    result = run("bench", dist, "--baseline", old, "--threads", "1", "--no-crosscheck")
    assert_one_line_error(result, 2, f"--baseline {old}", fragment, "mobilepack bench")
    assert tree(dist) == before


@pytest.mark.bad_input("cli")
def test_bench_refuses_a_damaged_split_in_the_dist(tiny_benched, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    (dist / "reference" / "split.json").write_text('{"schema_version": 1, "source": ')
    before = tree(dist)
    result = run("bench", dist, "--threads", "1", "--no-crosscheck")
    assert_one_line_error(result, 2, "reference/split.json", "not valid JSON", f"mobilepack convert RUN_DIR --out {dist}")
    assert tree(dist) == before


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("name,content,fragments", [
    pytest.param("split.json", b"{not json", ["split.json", "not valid JSON"], id="convert-split-not-json"),
    pytest.param("split.json", b'{"schema_version": 1}', ["split.json", "missing field(s) source"],
                 id="convert-split-missing-keys"),
    pytest.param("labels.txt", b"a\nb\n", ["labels.txt", "2 labels, but the model's output has 10 classes"],
                 id="convert-labels-count"),
    pytest.param("preprocessing.json", b"", ["preprocessing.json", "empty file"], id="convert-preprocessing-empty"),
])
def test_convert_refuses_a_damaged_run_dir(name, content, fragments, tiny_run, tiny_dist, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "dist"
    shutil.copytree(tiny_run, run_dir)
    shutil.copytree(tiny_dist, out)
    (run_dir / name).write_bytes(content)
    before = tree(out)
    result = run("convert", run_dir, "--out", out, "--quant", "fp32")
    assert_one_line_error(result, 2, *fragments, f"mobilepack train --out {run_dir}")
    assert tree(out) == before
