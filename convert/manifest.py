"""The artifact contract: what every consumer of a dist folder may rely on.

Loading refuses an unknown schema_version or a missing field, so a stale or
hand-edited manifest fails loudly instead of feeding the wrong tensor shape to
an app or a benchmark.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from train.loading import sha256_file, size_on_disk

from .errors import ManifestError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
PLATFORM_TARGET = {"android": "tflite", "ios": "coreml"}  # the artifact target each platform's app embeds
_TENSOR_FIELDS = ("name", "shape", "dtype", "quantization")


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


def _require(d: dict, fields, where: str) -> None:
    missing = [f for f in fields if f not in d]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}; re-run `mobilepack convert`")


def manifest_from_dict(d: dict, where: str = MANIFEST_NAME) -> Manifest:
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: not a JSON object")
    _require(d, ["schema_version"], where)
    if d["schema_version"] != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {d['schema_version']!r} is not supported (this mobilepack reads "
            f"{SCHEMA_VERSION}); re-run `mobilepack convert` with this version"
        )
    fields = [f.name for f in dataclasses.fields(Manifest)]
    _require(d, fields, where)
    arts = []
    for i, a in enumerate(d["artifacts"]):
        aw = f"{where}: artifacts[{i}]"
        _require(a, [f.name for f in dataclasses.fields(Artifact)], aw)
        for j, t in enumerate(a["inputs"] + a["outputs"]):
            _require(t, _TENSOR_FIELDS, f"{aw} tensor {j}")
        arts.append(Artifact(**{f.name: a[f.name] for f in dataclasses.fields(Artifact)}))
    return Manifest(**{**{f: d[f] for f in fields}, "artifacts": arts})


def load_manifest(dist: Path) -> Manifest:
    path = Path(dist) / MANIFEST_NAME if Path(dist).is_dir() else Path(dist)
    if not path.exists():
        raise ManifestError(f"{path}: not found; point at the --out folder of `mobilepack convert`")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return manifest_from_dict(d, str(path))


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
