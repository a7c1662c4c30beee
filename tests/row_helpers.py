"""Typed report rows for tests of the gate and the recommendation, every field given (as bench makes them)."""

from benchmarks.row import ArtifactRow, OutputFigures, Statistics


def figures(name="probs", kind="classification", **given) -> OutputFigures:
    """One output's figures: a perfect classifier's unless `given` says otherwise."""
    base = {"max_abs_error": 0.0, "max_rel_error": 0.0, "rmse_rel": 0.0, "reference_range": 1.0, "sqnr_db": None}
    if kind == "classification":
        base.update(classes=10, agreement=1.0, agreement_interval=None, top5_agreement=None, accuracy=0.9,
                    accuracy_drop_pp=0.0)
    return OutputFigures(name=name, kind=kind, kind_source="test", **{**base, **given})


def make_row(name="int8", outputs=None, **given) -> ArtifactRow:
    """A row of a Core ML artifact that passed its gate, with `given` fields instead."""
    base = dict(target="coreml", format="mlprogram", quantization="int8w", path=f"{name}.mlpackage", size_bytes=1000,
                sha256="0" * 64, runtime="coreml-reference", accuracy=None, accuracy_interval=None,
                accuracy_drop_pp=None, accuracy_drop_interval_pp=None, agreement=None, agreement_interval=None,
                max_abs_error=0.0, sqnr_db=None, metrics=None, status="passed", reason="x",
                statistics=Statistics(underpowered=False, notes=[]), latency_ms=[], latency_note=None, memory=None,
                crosscheck=[], macs=None, gmacs_per_s=None, within_budget=False, budget_check="", recommended=False,
                recommendation_reason="")
    return ArtifactRow(name=name, outputs=outputs if outputs is not None else [figures()], **{**base, **given})
