"""Two benches of the same model, field by field: what differs apart from what a run measures anew.

    python -m benchmarks.figures.report_diff OLD/report.json NEW/report.json

Walks both report.json files and prints every field that differs, leaving out the measurements of a
run (latency, memory, wall times, the cross-check's timings, the date). A refactor that keeps
behaviour prints `0 differing field(s)`; exit 1 otherwise.

A re-run of `make demo` retrains, and Keras writes the save time into model.keras, so the source
model's sha256 differs and every artifact embeds it (TFLite metadata, Core ML user metadata). With
--same-bytes, each artifact's bytes (every file of an .mlpackage) are compared after the old source
hash is replaced by the new one: equal bytes mean the artifact is the same but for that hash, and
its sha256 fields are then not counted.

Example:

    python -m benchmarks.figures.report_diff /tmp/before/report.json dist/report.json --same-bytes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Fields whose values a run measures anew: its timings, memory, date and load.
MEASURED = {"created_at", "latency_ms", "crosscheck", "memory", "latency_note", "gmacs_per_s"}


def _measured(key: str) -> bool:
    return key in MEASURED or key.endswith(("_s", "_seconds")) or "latency" in key


def differences(old, new, path: str = "") -> list[str]:
    """'path: old -> new' for every differing field outside the measured ones."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(dict.fromkeys([*old, *new])):
            if _measured(key):
                continue
            if key not in old or key not in new:
                found.append(f"{path}.{key}: only in {'new' if key not in old else 'old'}")
            else:
                found += differences(old[key], new[key], f"{path}.{key}")
        return found
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: {len(old)} items -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()}


def same_but_source_hash(old: Path, new: Path, old_hash: str, new_hash: str) -> bool:
    """The artifact's bytes equal once the old source-model hash (whole, or the 12-character prefix
    TFLite metadata keeps) is replaced by the new one."""
    a, b = _files(old), _files(new)
    if a.keys() != b.keys():
        return False
    swaps = [(old_hash.encode(), new_hash.encode()), (old_hash[:12].encode(), new_hash[:12].encode())]
    for name, data in a.items():
        for before, after in swaps:
            data = data.replace(before, after)
        if data != b[name]:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="the earlier report.json")
    ap.add_argument("new", type=Path, help="the later report.json")
    ap.add_argument("--same-bytes", action="store_true",
                    help="compare each artifact's bytes, the source-model hash swapped (beside each report.json)")
    args = ap.parse_args()
    try:
        old, new = (json.loads(p.read_text()) for p in (args.old, args.new))
    except (OSError, ValueError) as exc:  # a missing or damaged report: one line, exit 2
        ap.error(f"cannot read both reports: {exc}; give two report.json files that `mobilepack bench` wrote")
    found = differences(old, new)
    if args.same_bytes:
        old_hash, new_hash = old["manifest"]["source_model_sha256"], new["manifest"]["source_model_sha256"]
        same = {a["name"] for a, b in zip(old["artifacts"], new["artifacts"])
                if a["path"] == b["path"] and same_but_source_hash(args.old.parent / a["path"],
                                                                   args.new.parent / b["path"], old_hash, new_hash)}
        hashes = {".manifest.source_model_sha256"} | {f".artifacts[{i}].sha256" for i, a in
                                                      enumerate(old["artifacts"]) if a["name"] in same}
        found = [f for f in found if f.split(":")[0] not in hashes]
        print(f"{len(same)} of {len(old['artifacts'])} artifacts have the same bytes but for the embedded "
              f"source-model hash ({old_hash[:12]} -> {new_hash[:12]})")
    print(f"{len(found)} differing field(s) apart from timings, memory and the date")
    for line in found:
        print(f"  {line}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
