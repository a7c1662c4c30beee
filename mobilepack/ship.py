"""`mobilepack ship`: put the artifact that passed its gate, and everything the app reads, into a demo app.

Each app folder carries a marker, `mobilepack-app.json` ({"platform", "assets", and for iOS "ios_target"}), naming the
folder its assets live in. That folder is rebuilt beside itself and swapped in atomically with:

    manifest.json      the dist's manifest with only the shipped artifact (same schema): the model
                       file name, input shape, dtype and quantization, preprocessing and labels
    <model file>       the .tflite, or the .mlpackage / .mlmodel
    labels.txt, preprocessing.json
    samples/           a few test-split images at their original size (so the apps' launch check
                       covers their own decode and resize), each with NAME.expected.png: the RGB
                       pixels mobilepack's pixel contract makes of it at the model's size; and
                       samples.json: file, true label, expected_pixels, and the top-1 mobilepack
                       expects from this artifact
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.report.write import load_report
from benchmarks.row import ArtifactRow, Report
from convert.manifest import MANIFEST_NAME, PLATFORM_TARGET, load_manifest, verify_artifacts
from train.documents import load_document, shown
from train.errors import DocumentError, MobilepackError
from train.fsutil import atomic_write_json, check_writable_dir, staged_directory
from train.preprocessing import Preprocessing

MARKER = "mobilepack-app.json"
MARKER_SPEC = {"platform": str, "assets": str, "ios_target?": int}  # ios_target: the app's deployment target
WRITABLE_HINT = "ship replaces the app's assets folder: make the app folder writable or ship into a copy of the app"


class ShipError(MobilepackError):
    """The dist or the app folder cannot be shipped as asked."""


@dataclass(frozen=True)
class ShipConfig:
    apps: dict  # platform -> app folder
    artifacts: tuple[str, ...] = ()  # --artifact NAME (one per platform at most); default: the report's pick
    force: bool = False  # ship an artifact whose gate failed
    samples: int = 10


def ship(dist: Path, config: ShipConfig, log: Callable[[str], None] = print) -> dict:
    """Copy each platform's artifact into its app; returns {platform: {"artifact", "assets"}}."""
    dist = Path(dist)
    manifest = load_manifest(dist)
    verify_artifacts(manifest, dist)
    if manifest.preprocessing is None or manifest.labels is None:
        raise ShipError(f"{dist}: the demo apps ship image classifiers; this manifest has no preprocessing or "
                        "labels (convert a run dir made by `mobilepack train`)")
    prep = Preprocessing.from_dict(manifest.preprocessing, f"{dist / MANIFEST_NAME} preprocessing")
    report = _load_report(dist, manifest)
    markers = {platform: app_marker(Path(app), platform) for platform, app in config.apps.items()}
    targets = {platform: assets for platform, (assets, _) in markers.items()}
    for assets in targets.values():  # every app before any, so a refused one leaves none half-shipped
        check_writable_dir(assets, WRITABLE_HINT)
    chosen = {}  # every platform's artifact chosen and checked before any app is touched
    for platform in targets:
        row = _choose(platform, report, config)
        chosen[platform] = row, next(a for a in manifest.artifacts if a.name == row.name)
        _check_deployment_target(chosen[platform][1], Path(config.apps[platform]), markers[platform][1])
    shipped = {}
    for platform, assets in targets.items():
        row, artifact = chosen[platform]
        with staged_directory(assets, WRITABLE_HINT) as stage:
            _copy_model(dist / artifact.file, stage / artifact.file)
            shutil.copy2(dist / manifest.labels_file, stage / "labels.txt")
            atomic_write_json(stage / "preprocessing.json", prep.to_dict())
            one = manifest.to_dict()
            one["artifacts"] = [a for a in one["artifacts"] if a["name"] == artifact.name]
            atomic_write_json(stage / MANIFEST_NAME, one)
            count = _samples(dist, manifest, prep, artifact, stage / "samples", config.samples)
        log(f"{platform}: {artifact.name} ({row.status}) + labels, manifest, preprocessing, {count} sample(s) "
            f"-> {assets}")
        shipped[platform] = {"artifact": artifact.name, "assets": str(assets)}
    return shipped


def _load_report(dist: Path, manifest) -> Report:
    path = dist / "report.json"
    if not path.is_file():
        raise ShipError(f"{dist}: no report.json, so no gate verdict; run `mobilepack bench {dist}` first")
    report = load_report(path, f"re-run `mobilepack bench {dist}`")
    rows = {r.name: r for r in report.artifacts}
    stale = [a.name for a in manifest.artifacts if a.name not in rows or rows[a.name].sha256 != a.sha256]
    if stale:
        raise ShipError(f"{path}: does not describe {', '.join(stale)} as they are now (re-converted?); "
                        f"run `mobilepack bench {dist}` again")
    return report


def app_assets(app: Path, platform: str) -> Path:
    return app_marker(app, platform)[0]


def app_marker(app: Path, platform: str) -> tuple[Path, dict]:
    """The app's assets folder, and its checked marker."""
    marker = app / MARKER
    if not marker.is_file():
        raise ShipError(f"{app}: not a mobilepack demo app (no {MARKER}); give this repository's "
                        f"{platform}_demo folder")
    fix = f"restore it from this repository's {platform}_demo/{MARKER} (`git checkout -- {platform}_demo/{MARKER}`)"
    spec = load_document(marker, MARKER_SPEC, fix)
    if spec["platform"] not in PLATFORM_TARGET:
        raise DocumentError(f"{marker}: platform {shown(spec['platform'])} is neither android nor ios; {fix}")
    if spec["platform"] != platform:  # a sound marker of the other app
        raise ShipError(f"{app}: {MARKER} says platform {shown(spec['platform'])}; --{platform} needs the "
                        f"{platform}_demo folder")
    assets = Path(spec["assets"])
    if assets.is_absolute() or ".." in assets.parts or not assets.parts or "\0" in spec["assets"]:
        # ship replaces this folder whole: never one outside the app, nor the app itself
        raise DocumentError(f"{marker}: assets {shown(spec['assets'])} is not a folder inside the app; {fix}")
    return app / assets, spec


def _check_deployment_target(artifact, app: Path, marker: dict) -> None:
    """Refuse a Core ML file that needs a newer iOS than the app's deployment target (the marker's ios_target).

    Xcode compiles such a model but the app cannot load it on the older iPhones it promises to support.
    """
    needs = artifact.notes.get("minimum_deployment_target", "")
    if not needs.startswith("iOS"):
        return
    app_target = marker.get("ios_target")
    if isinstance(app_target, int) and int(needs[3:]) > app_target:
        raise ShipError(f"{artifact.name} needs iOS {needs[3:]}; the app at {app} targets iOS {app_target} "
                        f"({MARKER} ios_target): ship another with --artifact NAME, re-convert with --ios-target "
                        f"{app_target}, or raise the app's deployment target in both {MARKER} and project.yml")


def _choose(platform: str, report: Report, config: ShipConfig) -> ArtifactRow:
    target = PLATFORM_TARGET[platform]
    rows = [r for r in report.artifacts if r.target == target]
    asked = [r for r in rows if r.name in config.artifacts]
    unknown = [n for n in config.artifacts if n not in {r.name for r in report.artifacts}]
    if unknown:
        raise ShipError(f"--artifact {unknown[0]}: not in the report; choose from "
                        f"{', '.join(r.name for r in report.artifacts)}")
    if asked:
        row = asked[0]
    elif report.recommended.get(platform):
        row = next(r for r in rows if r.name == report.recommended[platform])
    else:
        failed = ", ".join(f"{r.name} ({r.reason})" for r in rows[:2]) or f"no {target} artifact"
        raise ShipError(f"no {target} artifact passed its gate for {platform}: {failed}; re-convert with a "
                        "larger budget, or pass --artifact NAME --force to ship one anyway")
    if row.status == "failed" and not config.force:
        raise ShipError(f"{row.name} failed its gate ({row.reason}); pass --force to ship it anyway")
    return row


def _copy_model(src: Path, dst: Path) -> None:
    if src.is_dir():  # .mlpackage
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _samples(dist: Path, manifest, prep: Preprocessing, artifact, out: Path, count: int) -> int:
    """One test-split image per class in turn, at its original size, with the pixels the contract makes of
    it at the model's size and what the artifact predicts."""
    from PIL import Image

    from benchmarks.runners import artifact_runner
    from train.data import split_part

    split_file = manifest.source.get("split_file")
    if not split_file or count <= 0:
        return 0
    dataset, test = split_part(dist / split_file, "test", lambda m: None)
    by_class: dict[int, list[int]] = {}
    for i in test:
        by_class.setdefault(int(dataset.labels[i]), []).append(i)
    chosen = [by_class[c][k] for k in range(max(map(len, by_class.values()))) for c in sorted(by_class)
              if k < len(by_class[c])][:count]
    originals = [np.ascontiguousarray(dataset.images[i], dtype=np.uint8) for i in chosen]
    x = prep.apply_batch(originals)  # resized by the contract, as the app must resize them
    runner = artifact_runner(dist / artifact.file, artifact.target)
    top1 = np.argmax(runner.predict([x])[0].reshape(len(x), -1), axis=1)
    out.mkdir()
    entries = []
    for n, (i, image, pred) in enumerate(zip(chosen, originals, top1)):
        stem = f"sample_{n:02d}_{manifest.labels[int(dataset.labels[i])]}"
        Image.fromarray(image).save(out / f"{stem}.png")
        Image.fromarray(prep.resized(image)).save(out / f"{stem}.expected.png")
        entries.append({"file": f"{stem}.png", "label": manifest.labels[int(dataset.labels[i])],
                        "expected_top1": manifest.labels[int(pred)], "expected_pixels": f"{stem}.expected.png"})
    atomic_write_json(out / "samples.json", {"artifact": artifact.name, "samples": entries})
    return len(entries)
