"""The artifact contract: what every consumer of a dist folder may rely on.

Loading refuses an unknown schema_version or a missing field, so a stale or
hand-edited manifest fails loudly instead of feeding the wrong tensor shape to
an app or a benchmark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from train.documents import NUMBER, Array, Maybe, check_document, read_json, shown
from train.loading import sha256_file, size_on_disk
from train.preprocessing import Preprocessing

from convert.errors import ManifestError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
PLATFORM_TARGET = {"android": "tflite", "ios": "coreml"}  # the artifact target each platform's app embeds
# Everything bench, ship, serve and the runners index, with its JSON type (train.documents describes the notation).
_TENSOR = {"name": str, "signature_name?": Maybe(str), "shape": Maybe([int]), "dtype": Maybe(str),
           "quantization": Maybe({"scale": NUMBER, "zero_point": int})}
_NOTES = {"budget?": Maybe({"max_drop_pp?": Maybe(NUMBER), "min_sqnr_db?": Maybe(NUMBER),
                            "min_sqnr_by_output?": Maybe(dict)}),
          "budget_pp?": Maybe(NUMBER), "probabilities_output?": Maybe(str), "search?": list, "float_layers?": list}
_ARTIFACT = {"name": str, "file": str, "sha256": str, "size_bytes": int, "target": str, "format": str,
             "quantization": str, "inputs": [_TENSOR], "outputs": [_TENSOR], "notes": _NOTES}
_FAILURE = {"name": str, "target": str, "format": str, "quantization": str, "status": str, "reason": str}
SPEC = {"schema_version": int, "created_at": str, "task": str,
        "source": {"model_file": str, "model_sha256": str, "original_path?": str, "split_file?": Maybe(str)},
        "preprocessing": Maybe(dict), "labels": Maybe(Array(str, min_length=1)), "labels_file": Maybe(str),
        "calibration": Maybe(dict), "tools": dict, "artifacts": [_ARTIFACT], "failed?": [_FAILURE]}


@dataclass(frozen=True)
class Artifact:
    name: str
    file: str
    sha256: str
    size_bytes: int
    target: str
    format: str
    quantization: str
    inputs: list
    outputs: list
    notes: dict

    def path(self, dist: Path) -> Path:
        return Path(dist) / self.file


@dataclass(frozen=True)
class Failure:
    """A variant asked for that did not convert: no file, only the one-line reason."""

    name: str
    target: str
    format: str
    quantization: str
    reason: str
    status: str = "failed"


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    created_at: str
    task: str  # "image_classification" or "tensor"
    source: dict  # model_file (copied reference), model_sha256, original_path, split_file
    preprocessing: dict | None
    labels: list | None
    labels_file: str | None
    calibration: dict | None
    tools: dict
    artifacts: list[Artifact]
    failed: list[Failure] = dataclasses.field(default_factory=list)  # variants that did not convert, with why

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise ManifestError(f"no artifact {name!r}; the manifest has {', '.join(a.name for a in self.artifacts)}")

    def save(self, dist: Path) -> None:
        from train.fsutil import atomic_write_json

        atomic_write_json(Path(dist) / MANIFEST_NAME, self.to_dict())


def regenerate(where) -> str:
    """What to run to rebuild the dist a manifest at `where` belongs to."""
    return f"re-run `mobilepack convert MODEL_OR_RUN_DIR --out {Path(str(where)).parent}`"


def manifest_from_dict(d: dict, where: str = MANIFEST_NAME) -> Manifest:
    """A parsed manifest, every field its consumers index checked; any fault is a ManifestError."""
    fix = regenerate(where)
    check_document(d, SPEC, where, fix, SCHEMA_VERSION, ManifestError)
    if d["preprocessing"] is not None:
        Preprocessing.from_dict(d["preprocessing"], f"{where}: preprocessing", fix, ManifestError)
    if (d["labels"] is None) != (d["labels_file"] is None):
        raise ManifestError(f"{where}: labels and labels_file must both be set or both null; {fix}")
    inside = [("labels_file", d["labels_file"]), ("source.model_file", d["source"]["model_file"]),
              ("source.split_file", d["source"].get("split_file"))]
    for key, name in inside + [(f"artifacts[{i}].file", a["file"]) for i, a in enumerate(d["artifacts"])]:
        # bench, ship and serve open these relative to the dist; a path that leaves it could read (or, for
        # ship, copy) any file on the machine
        if name is not None and not _inside_dist(name):
            raise ManifestError(f"{where}: {key} {shown(name)} is not a file name inside the dist; {fix}")
    for i, a in enumerate(d["artifacts"]):
        if a["target"] not in PLATFORM_TARGET.values():
            raise ManifestError(f"{where}: artifacts[{i}].target {shown(a['target'])} is neither tflite nor coreml; "
                                f"{fix}")
    arts = [Artifact(**{f.name: a[f.name] for f in dataclasses.fields(Artifact)}) for a in d["artifacts"]]
    failed = [Failure(**{f.name: e[f.name] for f in dataclasses.fields(Failure)}) for e in d.get("failed", [])]
    fields = {f.name: d[f.name] for f in dataclasses.fields(Manifest) if f.name != "failed"}
    return Manifest(**{**fields, "artifacts": arts, "failed": failed})


def _inside_dist(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "\\" not in name


def load_manifest(dist: Path) -> Manifest:
    path = Path(dist) / MANIFEST_NAME if Path(dist).is_dir() else Path(dist)
    if not path.exists():
        raise ManifestError(f"{path}: not found; point at the --out folder of `mobilepack convert`")
    return manifest_from_dict(read_json(path, regenerate(path), ManifestError), str(path))


def verify_artifacts(manifest: Manifest, dist: Path) -> None:
    """Every file exists with the recorded size and sha256."""
    for a in manifest.artifacts:
        p = a.path(dist)
        if not p.exists():
            raise ManifestError(f"{p}: listed in the manifest but missing; re-run `mobilepack convert`")
        if size_on_disk(p) != a.size_bytes or sha256_file(p) != a.sha256:
            raise ManifestError(f"{p}: sha256 does not match the manifest (file altered); re-run `mobilepack convert`")


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mobilepack", "tensorflow", "keras", "ai-edge-litert", "coremltools", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
