"""Per-output parity figures of an artifact against the Keras reference, by the output's kind."""

from __future__ import annotations

import numpy as np

from benchmarks.parity import compare
from benchmarks.parity.outputs import OutputSpec
from benchmarks.parity.stats import paired_difference, wilson


def reference_figures(spec: OutputSpec, ref: np.ndarray, labels: np.ndarray | None) -> dict:
    """What the Keras model itself scores on an output: accuracy or MAE against its labels."""
    entry = {"name": spec.name, "kind": spec.kind, "has_labels": labels is not None}
    if labels is None:
        return entry
    if spec.kind == "classification":
        right = compare.top1(ref) == labels
        entry.update(accuracy=float(right.mean()), accuracy_interval=list(wilson(int(right.sum()), len(right))))
    else:
        entry["mae"] = float(np.mean(np.abs(ref.astype(np.float64) - labels)))
    return entry


def output_figures(spec: OutputSpec, out: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> dict:
    """Every figure of one output of one artifact: the kind's metrics plus error figures for all kinds."""
    n = len(ref)
    out2, ref2 = out.reshape(n, -1).astype(np.float64), ref.reshape(n, -1).astype(np.float64)
    entry = {"name": spec.name, "kind": spec.kind, "kind_source": spec.kind_source,
             **_error_figures(out2, ref2)}
    if spec.kind == "classification":
        entry.update(_classification(out2, ref2, labels))
    elif spec.kind == "embedding":
        entry.update(_embedding(out2, ref2))
    elif labels is not None:
        entry["mae"] = float(np.mean(np.abs(out2 - labels.reshape(n, -1))))
        entry["reference_mae"] = float(np.mean(np.abs(ref2 - labels.reshape(n, -1))))
    return entry


def _error_figures(out: np.ndarray, ref: np.ndarray) -> dict:
    """Absolute and range-relative error, and SQNR: what a regression head is judged on."""
    err = np.abs(out - ref)
    span = float(ref.max() - ref.min())
    rel = (lambda v: float(v / span)) if span > 0 else (lambda v: 0.0 if v == 0 else float("inf"))
    return {
        "max_abs_error": float(err.max()),
        "max_rel_error": compare.finite_or_none(rel(float(err.max()))),
        "rmse_rel": compare.finite_or_none(rel(float(np.sqrt(np.mean(err ** 2))))),
        "reference_range": span,
        "sqnr_db": compare.finite_or_none(compare.sqnr_db(out, ref)),
    }


def _classification(out: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> dict:
    n = len(ref)
    pred, ref_pred = out.argmax(-1), ref.argmax(-1)
    same = pred == ref_pred
    fig = {"classes": int(ref.shape[-1]), "agreement": float(same.mean()),
           "agreement_interval": list(wilson(int(same.sum()), n)), "top5_agreement": None}
    if ref.shape[-1] >= 5:
        # The reference's top-1 class among the artifact's five highest scores.
        top5 = np.argpartition(-out, 4, axis=-1)[:, :5]
        hit = (top5 == ref_pred[:, None]).any(axis=-1)
        fig.update(top5_agreement=float(hit.mean()), top5_agreement_interval=list(wilson(int(hit.sum()), n)))
    if labels is not None:
        right, ref_right = pred == labels, ref_pred == labels
        lo, hi = paired_difference(ref_right, right)
        fig.update(accuracy=float(right.mean()), accuracy_interval=list(wilson(int(right.sum()), n)),
                   accuracy_drop_pp=float(ref_right.mean() - right.mean()) * 100.0,
                   accuracy_drop_interval_pp=[lo * 100.0, hi * 100.0])
    else:
        fig.update(accuracy=None, accuracy_drop_pp=None)
    return fig


def _embedding(out: np.ndarray, ref: np.ndarray) -> dict:
    norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    both_zero = norms == 0
    cos = np.where(both_zero, 1.0, np.sum(out * ref, axis=1) / np.where(both_zero, 1.0, norms))
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}


def headline(outputs: list[dict]) -> dict:
    """The row's top-level figures: the first classification output's accuracy and agreement, and the
    worst error over all outputs (a single-output classifier keeps exactly its own figures)."""
    first = next((o for o in outputs if o["kind"] == "classification"), None)
    sqnrs = [o["sqnr_db"] for o in outputs]
    finite = [s for s in sqnrs if s is not None]
    return {
        "accuracy": first.get("accuracy") if first else None,
        "accuracy_interval": first.get("accuracy_interval") if first else None,
        "accuracy_drop_pp": first.get("accuracy_drop_pp") if first else None,
        "accuracy_drop_interval_pp": first.get("accuracy_drop_interval_pp") if first else None,
        "agreement": first["agreement"] if first else None,
        "agreement_interval": first["agreement_interval"] if first else None,
        "max_abs_error": max(o["max_abs_error"] for o in outputs),
        "sqnr_db": min(finite) if finite else None,
    }
