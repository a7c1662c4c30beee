"""The zoo check shared by tests/test_zoo_*.py: docs/models.py converts and compares, these assert."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

import models  # noqa: E402  (docs/models.py: the support table is made and checked by the same code)


def assert_supported(name: str, folder: Path) -> None:
    """Every default variant converts and runs, the float ones match Keras, and docs/models.md says so."""
    result = models.check(name, folder)
    cells = result["cells"]
    assert set(cells) == {models.column(*v) for v in models.variants()}, "a default variant was not attempted"
    assert {c: v for c, v in cells.items() if v != "✓"} == {}, name
    for (target, quant), floor in models.FLOORS.items():  # 60 dB fp32, 20 dB Core ML fp16: the floors
        col = models.column(target, target, quant)
        assert all(s >= floor for s in result["sqnr"][col]), (name, col, result["sqnr"][col])
    documented = models.table_rows((ROOT / "docs" / "models.md").read_text())
    assert documented.get(name) == models.row(name, cells), "docs/models.md is stale: run `cog -r docs/models.md`"
