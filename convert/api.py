"""`mobilepack convert`: a model or run dir -> artifacts + manifest.json, swapped in whole.

A variant that cannot be converted costs that variant, never the run: the others are written,
and the manifest lists it under `failed` with its one-line reason.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from train.data import load_split
from train.fsutil import atomic_write_json, check_writable_dir, staged_directory
from train.loading import load_keras_model, resolve_model_path, sha256_file
from train.preprocessing import Preprocessing
from train.trainer import read_labels

from convert.artifacts import coreml_artifact, tflite_artifact, variant_name, with_tflite_metadata
from convert.budget import Judge
from convert.calibration import CalibrationRequest, resolve_calibration
from convert.config import ConvertConfig
from convert.context import ConversionContext
from convert.coreml.w8a8 import ActivationRanges
from convert.errors import ConversionError
from convert.manifest import Artifact, Failure, Manifest, SCHEMA_VERSION, tool_versions
from convert.search import Search, budgeted
from convert.shapes import fixed_model, parse_input_shapes
from convert.tflite.convert import check_convertible


@dataclass(frozen=True)
class RuntimeHooks:
    """What a caller lends convert that needs a runtime convert does not import (mobilepack lends them).

    judge: with a budget (config.budgeted), `judge(path, target)` gives a candidate's per-output
        validation figures, and each family keeps only its most compressed candidate within budget.
    search: `search(ctx, log)` runs that search elsewhere instead (mobilepack's on Ray), same result.
    activation_ranges: calibrates w8a8's activations (convert/coreml/w8a8.py); mobilepack gives the
        Core ML evaluator's.
    """

    judge: Judge | None = None
    search: Search | None = None
    activation_ranges: ActivationRanges | None = None


def convert(source: Path, out: Path, config: ConvertConfig, log: Callable[[str], None] = print,
            progress: Callable[[str, int, int], None] | None = None, hooks: RuntimeHooks = RuntimeHooks()) -> Manifest:
    """Convert `source` (a .keras file or run dir) into `out`, replacing it atomically."""
    model_path = resolve_model_path(Path(source))
    run_dir = model_path.parent if (model_path.parent / "preprocessing.json").is_file() else None
    check_writable_dir(Path(out))  # before the slow part
    log(f"loading {model_path}")
    loaded = load_keras_model(model_path, unsafe=config.unsafe_load, custom_objects=config.custom_objects)
    model = fixed_model(loaded, parse_input_shapes(config.input_shapes))
    check_convertible(model)
    with staged_directory(out) as stage:
        ctx = dataclasses.replace(_context(model, model_path, run_dir, config, stage, log),
                                  activation_ranges=hooks.activation_ranges)
        if config.budgeted:
            chosen, failed = hooks.search(ctx, log) if hooks.search is not None else budgeted(ctx, hooks.judge, log)
            if not chosen:  # nothing to ship: the old dist stays as it was
                raise _nothing_converted(failed)
            artifacts = [with_tflite_metadata(ctx, a) for a in chosen]
        else:
            artifacts, failed = _every(ctx, log, progress)
        manifest = _write_support_files(ctx, run_dir, artifacts, model if model is not loaded else None, failed)
    log(f"wrote {len(artifacts)} artifact(s) and manifest.json to {out}")
    return manifest


def _context(model, model_path: Path, run_dir: Path | None, config: ConvertConfig, stage: Path, log) -> ConversionContext:
    """Everything the conversion steps share: what the run dir says of the model, and int8 calibration."""
    prep = Preprocessing.load(run_dir / "preprocessing.json") if run_dir else None
    input_shapes = [tuple(t.shape)[1:] for t in model.inputs]
    image_input = prep is not None and len(input_shapes) == 1 and tuple(input_shapes[0]) == prep.input_shape
    # labels.txt names the classes of a single-output classifier: one line per class, or the apps show wrong names
    classes = model.outputs[0].shape[-1] if image_input and len(model.outputs) == 1 else None
    labels = read_labels(run_dir / "labels.txt", classes) if run_dir and (run_dir / "labels.txt").is_file() else None
    if _split_file(run_dir):
        load_split(_split_file(run_dir))  # checked before the dist keeps a copy that bench and ship will read
    calibration = None
    needed_by = sorted({q for _, _, q in config.variants() if q in ("int8", "w8a8")})  # int8 activations: TFLite, Core ML
    if needed_by:
        request = CalibrationRequest(config.calibration, config.calibration_size, config.seed, input_shapes,
                                     [t.name for t in model.inputs], " and ".join(needed_by),
                                     [str(t.dtype) for t in model.inputs])
        calibration = resolve_calibration(request, _split_file(run_dir), prep if image_input else None, log)
    metadata = {"source_model_sha256": sha256_file(model_path), "tools": tool_versions(),
                "preprocessing": prep.to_dict() if prep else None}
    return ConversionContext(model=model, model_path=model_path, config=config, stage=stage, image_input=image_input,
                             prep=prep, labels=labels, calibration=calibration, metadata=metadata)


def _split_file(run_dir: Path | None) -> Path | None:
    return run_dir / "split.json" if run_dir and (run_dir / "split.json").is_file() else None


def _every(ctx: ConversionContext, log, progress=None) -> tuple[list[Artifact], list[Failure]]:
    """Every asked-for variant; one that fails is recorded with its reason and the others go on."""
    variants = ctx.config.variants()
    artifacts, failed, errors = [], [], []
    for i, (target, fmt, quant) in enumerate(variants, 1):
        start = time.perf_counter()
        family = target if target == fmt else f"{target} {fmt}"
        if progress:  # a live bar while the step runs; its log line below replaces it
            progress(f"converting {target} {quant}", i - 1, len(variants))
        try:
            artifact = tflite_artifact(ctx, quant) if target == "tflite" else coreml_artifact(ctx, fmt, quant)
            artifact = with_tflite_metadata(ctx, artifact)
        except ConversionError as exc:
            failed.append(Failure(name=variant_name(target, fmt, quant), target=target, format=fmt, quantization=quant,
                                  reason=str(exc)))
            errors.append(exc)
            log(f"[{i}/{len(variants)}] {family} {quant}: FAILED in {time.perf_counter() - start:.1f} s: {exc}")
            continue
        artifacts.append(artifact)
        log(f"[{i}/{len(variants)}] {family} {quant}: {artifact.size_bytes / 1024:.1f} KiB "
            f"in {time.perf_counter() - start:.1f} s")
    if not artifacts:  # nothing to ship: the old dist stays as it was
        raise _nothing_converted(failed, errors)
    return artifacts, failed


def _nothing_converted(failed: list[Failure], errors: list[ConversionError] = ()) -> ConversionError:
    """The one error when every variant failed: their reason when they share it, else each distinct one.

    `errors` are the failures' own exceptions when this process raised them (a budget family's are reasons only)."""
    reasons = list(dict.fromkeys(f.reason for f in failed))
    if len(reasons) == 1:  # the converter's own named error (UnsupportedLayerError, ...) as it was, if we have it
        return errors[0] if errors else ConversionError(reasons[0])
    return ConversionError("no variant converted: " + "; ".join(
        f"{', '.join(f.name for f in failed if f.reason == r)}: {r}" for r in reasons))


def _rebuilt_source(model_path: Path, rebuilt) -> dict:
    """What the saved reference was rebuilt from, and the input sizes it was given (-1: any batch)."""
    return {"original_sha256": sha256_file(model_path),
            "input_shapes": {t.name: [-1 if d is None else d for d in t.shape] for t in rebuilt.inputs}}


def _write_support_files(ctx: ConversionContext, run_dir: Path | None, artifacts: list[Artifact],
                         rebuilt=None, failed: list[Failure] = ()) -> Manifest:
    """Copy the reference model (the benchmark baseline) and write the manifest last.

    A model rebuilt for conversion (sizes fixed, subclassed wrapped) is saved as the
    reference instead, so bench runs what was converted without --input-shape.
    """
    stage, model_path, prep, labels, calibration = ctx.stage, ctx.model_path, ctx.prep, ctx.labels, ctx.calibration
    split_file = _split_file(run_dir)
    ref = stage / "reference"
    ref.mkdir()
    ref_file = ref / (f"{model_path.stem}.keras" if rebuilt is not None else model_path.name)
    if rebuilt is not None:
        rebuilt.save(ref_file)
    else:
        shutil.copy2(model_path, ref_file)
    if split_file:
        shutil.copy2(split_file, ref / "split.json")
    if prep:
        prep.save(stage / "preprocessing.json")
    if labels:
        (stage / "labels.txt").write_text("\n".join(labels) + "\n")
    atomic_write_json(stage / "convert_config.json", dataclasses.asdict(ctx.config))
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        task="image_classification" if ctx.image_input else "tensor",
        source={
            "model_file": f"reference/{ref_file.name}",
            "model_sha256": sha256_file(ref_file),
            "original_path": str(model_path.resolve()),
            "split_file": "reference/split.json" if split_file else None,
            **(_rebuilt_source(model_path, rebuilt) if rebuilt is not None else {}),
        },
        preprocessing=prep.to_dict() if prep else None,
        labels=labels,
        labels_file="labels.txt" if labels else None,
        calibration=calibration.description if calibration else None,
        tools=tool_versions(),
        artifacts=artifacts,
        failed=list(failed),
    )
    manifest.save(stage)
    return manifest
