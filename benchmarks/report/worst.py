"""The report's `worst` block: the artifact that lost most, per class, and the inputs it gets wrong."""

from __future__ import annotations

import numpy as np

from benchmarks.parity import compare
from benchmarks.parity.outputs import OutputSpec
from benchmarks.row import ArtifactRow

MAX_MISSES = 24  # inputs listed (and shown as thumbnails in report.html) for the worst artifact


def worst_artifact(rows: list[ArtifactRow], predictions: dict, ref_out: list[np.ndarray], first: OutputSpec | None,
                   class_labels: np.ndarray | None, names: list | None) -> dict | None:
    """The artifact that lost most on the first classification output: per-class change and the inputs it misses.

    With labels, the misses are the inputs it gets wrong, those the reference got right first (what
    quantization broke before what was always hard); without labels, the inputs where it disagrees
    with the reference. A model with no classification output: the artifact of lowest SQNR, no misses.
    """
    if not rows:
        return None
    if first is None:
        row = min(rows, key=lambda r: float("inf") if r.sqnr_db is None else r.sqnr_db)
        return {"name": row.name, "output": None, "accuracy_drop_pp": None, "agreement": None,
                "sqnr_db": row.sqnr_db, "per_class": [], "missed_count": 0, "newly_missed_count": 0, "misses": []}
    key = (lambda r: (r.accuracy_drop_pp, -r.agreement)) if class_labels is not None else (lambda r: -r.agreement)
    row = max(rows, key=key)
    pred, ref_pred = compare.top1(predictions[row.name][first.index]), compare.top1(ref_out[first.index])
    names = names if names and len(names) == first.classes else None  # labels.txt names this output's classes
    name_of = (lambda i: names[i] if names and 0 <= i < len(names) else str(i))
    per_class = _per_class(pred, ref_pred, class_labels, name_of)
    if class_labels is not None:
        wrong = pred != class_labels
        broke = wrong & (ref_pred == class_labels)
        missed = np.concatenate([np.flatnonzero(broke), np.flatnonzero(wrong & ~broke)])
        newly = int(broke.sum())
    else:
        missed = np.flatnonzero(pred != ref_pred)
        newly = int(len(missed))
    misses = [{"index": int(i), "label": None if class_labels is None else name_of(int(class_labels[i])),
               "predicted": name_of(int(pred[i])), "reference": name_of(int(ref_pred[i]))} for i in missed[:MAX_MISSES]]
    return {"name": row.name, "output": first.name, "accuracy_drop_pp": row.accuracy_drop_pp,
            "agreement": row.agreement, "sqnr_db": row.sqnr_db, "per_class": per_class,
            "missed_count": int(len(missed)), "newly_missed_count": newly, "misses": misses}


def _per_class(pred: np.ndarray, ref_pred: np.ndarray, class_labels: np.ndarray | None, name_of) -> list[dict]:
    """Each labelled class's accuracy, the reference's and the change (empty without labels)."""
    if class_labels is None:
        return []
    per_class = []
    for c in np.unique(class_labels):
        mask = class_labels == c
        ref_acc, acc = float(np.mean(ref_pred[mask] == c)), float(np.mean(pred[mask] == c))
        per_class.append({"class": int(c), "label": name_of(int(c)), "count": int(mask.sum()),
                          "reference_accuracy": ref_acc, "accuracy": acc, "change_pp": (acc - ref_acc) * 100})
    return per_class
