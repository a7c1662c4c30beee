"""`mobilepack convert`: a model or run dir -> artifacts + manifest.json, all or nothing."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from train.fsutil import atomic_write_bytes, atomic_write_json, staged_directory
from train.loading import load_keras_model, resolve_model_path, sha256_file, size_on_disk
from train.preprocessing import Preprocessing
from train.trainer import read_labels

from .budget import Judge
from .calibration import resolve_calibration
from .coreml import COREML_QUANTS, SUFFIX
from .errors import UsageError
from .manifest import Artifact, Manifest, SCHEMA_VERSION, tool_versions
from .shapes import fixed_model, parse_input_shapes
from .tflite import TFLITE_QUANTS, check_convertible, convert_tflite, describe_tensors

TARGETS = ("tflite", "coreml")
COREML_FORMATS = tuple(COREML_QUANTS)
ALL_QUANTS = ("fp32", "fp16", "dynamic", "int8", "int8w", "pal6", "pal4")
INT8_OUTPUTS = ("float32", "uint8")


@dataclass(frozen=True)
class ConvertConfig:
    """quantizations=() means every quantization the chosen targets and formats support."""

    targets: tuple[str, ...] = ("tflite",)
    quantizations: tuple[str, ...] = ()
    coreml_formats: tuple[str, ...] = ("mlprogram",)
    calibration: str | None = None
    calibration_size: int = 200
    int8_output: str = "float32"
    unsafe_load: bool = False
    custom_objects: tuple[str, ...] = ()  # module:name specs; importing them runs the user's code
    input_shapes: tuple[str, ...] = ()  # NAME=1x224x224x3, fixing None sizes
    seed: int = 0
    max_drop_pp: float | None = None  # accuracy budget: keep one artifact per family, the most compressed within it
    min_sqnr_db: float | None = None  # SQNR budget for outputs without labels (every output)
    min_sqnr_by_output: tuple[tuple[str, float], ...] = ()  # ... or per output name

    def __post_init__(self):
        if self.max_drop_pp is not None and not self.max_drop_pp > 0:
            raise UsageError(f"--max-drop {self.max_drop_pp:g}: the accuracy budget must be a number of "
                             "percentage points greater than 0, e.g. --max-drop 0.5")
        if not self.targets:
            raise UsageError(f"--target is empty; valid: {', '.join(TARGETS)}")
        for t in self.targets:
            if t not in TARGETS:
                raise UsageError(f"unknown --target {t!r}; valid: {', '.join(TARGETS)}")
        for f in self.coreml_formats:
            if f not in COREML_FORMATS:
                raise UsageError(f"unknown --coreml-format {f!r}; valid: {', '.join(COREML_FORMATS)}")
        valid = [q for q in ALL_QUANTS if any(q in qs for _, _, qs in self.families())]
        for q in self.quantizations:
            if q not in valid:
                raise UsageError(f"unknown --quant {q!r} for --target {','.join(self.targets)}; valid: {', '.join(valid)}")
        if self.int8_output not in INT8_OUTPUTS:
            raise UsageError(f"--int8-output {self.int8_output!r}; valid: {', '.join(INT8_OUTPUTS)}")
        if self.calibration_size < 1:
            raise UsageError(f"--calibration-size must be positive, got {self.calibration_size}")
        parse_input_shapes(self.input_shapes)  # syntax now, before the slow load; the names once it is loaded

    def families(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(target, format, quantizations it supports) for every chosen family."""
        out = [("tflite", "tflite", TFLITE_QUANTS)] if "tflite" in self.targets else []
        if "coreml" in self.targets:
            out += [("coreml", f, COREML_QUANTS[f]) for f in self.coreml_formats]
        return out

    @property
    def budgeted(self) -> bool:
        return self.max_drop_pp is not None or self.min_sqnr_db is not None or bool(self.min_sqnr_by_output)

    def budget(self):
        from .budget import Budget

        return Budget(self.max_drop_pp, self.min_sqnr_db, tuple(self.min_sqnr_by_output))

    def jobs(self) -> list[tuple[str, str, str]]:
        return [(t, f, q) for t, f, qs in self.families() for q in qs
                if not self.quantizations or q in self.quantizations]


def convert(source: Path, out: Path, config: ConvertConfig, log: Callable[[str], None] = print,
            judge: Judge | None = None, progress: Callable[[str, int, int], None] | None = None) -> Manifest:
    """Convert `source` (a .keras file or run dir) into `out`, replacing it atomically.

    With a budget (config.budgeted), `judge(path, target)` gives a candidate's per-output
    validation figures and each family keeps only its most compressed candidate within budget.
    """
    source = Path(source)
    model_path = resolve_model_path(source)
    run_dir = model_path.parent if (model_path.parent / "preprocessing.json").is_file() else None
    prep = Preprocessing.load(run_dir / "preprocessing.json") if run_dir else None
    labels = read_labels(run_dir / "labels.txt") if run_dir and (run_dir / "labels.txt").is_file() else None
    split_file = run_dir / "split.json" if run_dir and (run_dir / "split.json").is_file() else None

    from train.fsutil import check_writable_dir

    check_writable_dir(Path(out))  # before the slow part
    log(f"loading {model_path}")
    loaded = load_keras_model(model_path, unsafe=config.unsafe_load, custom_objects=config.custom_objects)
    model = fixed_model(loaded, parse_input_shapes(config.input_shapes))
    check_convertible(model)
    input_shapes = [tuple(t.shape)[1:] for t in model.inputs]
    input_names = [t.name for t in model.inputs]
    image_input = prep is not None and len(input_shapes) == 1 and tuple(input_shapes[0]) == prep.input_shape

    jobs = config.jobs()
    calibration = None
    if any(q == "int8" for _, _, q in jobs):
        calibration = resolve_calibration(config.calibration, split_file, prep if image_input else None,
                                          input_shapes, input_names, config.calibration_size, config.seed, log)

    model_sha = sha256_file(model_path)
    metadata = {"source_model_sha256": model_sha, "tools": tool_versions(),
                "preprocessing": prep.to_dict() if prep else None}
    with staged_directory(out) as stage:
        def finish(artifact: Artifact) -> Artifact:  # what every written artifact gets before it is reported
            if image_input and labels:
                return _with_tflite_metadata(stage, artifact, prep, labels, metadata, model_path)
            return artifact

        if config.budgeted:
            artifacts = [finish(a) for a in
                         _budgeted(stage, model, calibration, image_input, prep, labels, metadata, config, judge, log)]
        else:
            artifacts = _every(stage, jobs, model, calibration, image_input, prep, labels, metadata, config, log,
                               progress, finish)
        manifest = _write_support_files(stage, model_path, run_dir, split_file, prep, labels, calibration,
                                        artifacts, config, image_input, model if model is not loaded else None)
    log(f"wrote {len(artifacts)} artifact(s) and manifest.json to {out}")
    return manifest


def _with_tflite_metadata(stage: Path, artifact: Artifact, prep, labels, metadata, model_path: Path) -> Artifact:
    """Give an image classifier .tflite standard TFLite metadata (MediaPipe / ML Kit refuse float models without)."""
    from .tflite_metadata import add_metadata

    if artifact.target != "tflite":
        return artifact
    path = stage / artifact.file
    info = {"name": f"{model_path.stem} ({artifact.quantization})",
            "description": f"{len(labels)}-class image classifier, {artifact.quantization}, converted by mobilepack "
                           f"from {model_path.name} (sha256 {metadata['source_model_sha256'][:12]})",
            "version": metadata["source_model_sha256"][:12], "author": metadata.get("author", "mobilepack"),
            "license": metadata.get("license", "unspecified")}
    data = add_metadata(path.read_bytes(), prep, labels, info)
    atomic_write_bytes(path, data)
    notes = {**artifact.notes, "metadata": "TFLite metadata: normalization, labels.txt packed, author, license"}
    return dataclasses.replace(artifact, sha256=sha256_file(path), size_bytes=len(data), notes=notes)


def _every(stage, jobs, model, calibration, image_input, prep, labels, metadata, config, log,
           progress=None, finish=lambda a: a) -> list[Artifact]:
    artifacts = []
    for i, (target, fmt, quant) in enumerate(jobs, 1):
        start = time.perf_counter()
        if progress:  # a live bar while the step runs; its log line below replaces it
            progress(f"converting {target} {quant}", i - 1, len(jobs))
        if target == "tflite":
            artifact = _tflite_artifact(stage, model, quant, calibration, image_input, config)
        else:
            artifact = _coreml_artifact(stage, model, fmt, quant, prep if image_input else None, labels, metadata)
        artifact = finish(artifact)
        artifacts.append(artifact)
        family = target if target == fmt else f"{target} {fmt}"
        log(f"[{i}/{len(jobs)}] {family} {quant}: {artifact.size_bytes / 1024:.1f} KiB "
            f"in {time.perf_counter() - start:.1f} s")
    return artifacts


def _budgeted(stage, model, calibration, image_input, prep, labels, metadata, config, judge, log) -> list[Artifact]:
    from .budget import COREML_LADDER, TFLITE_LADDER, choose

    if judge is None:
        raise UsageError("a budget needs validation data to judge candidates; convert a run dir or give --validation")
    allowed = lambda q: not config.quantizations or q in config.quantizations  # noqa: E731
    budget = config.budget()
    chosen = []
    for target, fmt, _ in config.families():
        log(f"searching {fmt} within {budget.describe()}")
        if target == "tflite":
            rungs = _tflite_rungs(stage, model, calibration, image_input, config, [q for q in TFLITE_LADDER if allowed(q)])
        else:
            rungs = _coreml_rungs(stage, model, fmt, prep if image_input else None, labels, metadata,
                                  [q for q in COREML_LADDER[fmt] if allowed(q)])
        chosen.append(choose(fmt, rungs, stage, budget, judge, log))
    return chosen


def _tflite_rungs(stage, model, calibration, image_input, config, quants):
    """int8, then int8 with the most sensitive layers kept float, then dynamic, then fp16."""
    from .budget import float_layer_counts
    from .tflite import layer_sensitivity

    for quant in quants:
        if quant != "int8":
            yield quant, lambda q=quant: _tflite_artifact(stage, model, q, calibration, image_input, config)
            continue
        # Converted once: the candidate, then (if it misses the budget) the graph the ranking walks.
        int8 = convert_tflite(model, "int8", calibration, image_input, config.int8_output)
        yield quant, lambda: _tflite_artifact(stage, model, "int8", calibration, image_input, config, data=int8)
        ranked = layer_sensitivity(model, calibration, int8)
        for k in float_layer_counts(len(ranked)):
            yield (f"int8 with {k} tensor(s) kept float",
                   lambda k=k: _tflite_artifact(stage, model, "int8", calibration, image_input, config, ranked[:k]))


def _coreml_rungs(stage, model, fmt, prep, labels, metadata, quants):
    """Each compression, then the same with its worst-reproduced weights left uncompressed, then the next."""
    from .budget import float_layer_counts
    from .coreml import convert_coreml, weight_errors

    reference = None  # the fp32 weights, converted once and only if a compression misses the budget
    for quant in quants:
        mlmodel = convert_coreml(model, fmt, quant, prep, labels, metadata)
        yield quant, lambda q=quant, m=mlmodel: _save_coreml(stage, m, fmt, q)
        if quant in ("pal4", "pal6", "int8w"):
            if reference is None:
                reference = convert_coreml(model, fmt, "fp32", prep, labels, metadata)
            ranked = weight_errors(mlmodel, reference)
            for k in float_layer_counts(len(ranked)):
                yield (f"{quant} with {k} weight(s) uncompressed",
                       lambda q=quant, k=k: _coreml_artifact(stage, model, fmt, q, prep, labels, metadata, ranked[:k]))


def _tflite_artifact(stage: Path, model, quant, calibration, image_input, config, float_layers=None,
                    data: bytes | None = None) -> Artifact:
    """Write one .tflite (converting it unless `data` already holds it) and describe it."""
    from .tflite import convert_tflite_mixed

    name = f"model_{quant}_mixed" if float_layers else f"model_{quant}"
    if float_layers:
        data = convert_tflite_mixed(model, calibration, sorted({n for group, _ in float_layers for n in group}))
    elif data is None:
        data = convert_tflite(model, quant, calibration, image_input, config.int8_output)
    atomic_write_bytes(stage / f"{name}.tflite", data)
    inputs, outputs = describe_tensors(stage / f"{name}.tflite")
    notes = _notes(quant, image_input, config)
    if float_layers:
        notes = {**notes, "weights": "int8 except the float layers", "input": "float32 (quantized inside)",
                 "output": "float32",
                 "float_layers": [{"tensor": group[0], "layers": group, "quantization_sqnr_db": round(score, 2)}
                                  for group, score in float_layers],
                 "float_layer_reason": "these tensors lose most to int8 rounding (lowest worst-channel SQNR "
                                       "against their own rounding, measured with LiteRT's QuantizationDebugger "
                                       "on the calibration data); their producer and readers stay float so "
                                       "they are never quantized; added most sensitive first until the "
                                       "validation drop fit the budget"}
    return Artifact(name=name, file=f"{name}.tflite", sha256=sha256_file(stage / f"{name}.tflite"),
                    size_bytes=len(data), target="tflite", format="tflite", quantization=quant,
                    inputs=inputs, outputs=outputs, notes=notes)


def _coreml_artifact(stage: Path, model, fmt, quant, prep, labels, metadata, keep=None) -> Artifact:
    from .coreml import convert_coreml

    mlmodel = convert_coreml(model, fmt, quant, prep, labels, metadata, tuple(n for n, _ in keep or ()))
    return _save_coreml(stage, mlmodel, fmt, quant, keep)


def _save_coreml(stage: Path, mlmodel, fmt, quant, keep=None) -> Artifact:
    from .coreml_describe import describe_coreml

    name = f"model_{fmt}_{quant}" + ("_mixed" if keep else "")
    path = stage / f"{name}{SUFFIX[fmt]}"
    mlmodel.save(str(path))
    inputs, outputs, info = describe_coreml(path)
    notes = {**_COREML_NOTES[quant], **info,
             "minimum_deployment_target": mlmodel.user_defined_metadata["mobilepack.minimum_deployment_target"]}
    if keep:
        notes["float_layers"] = [{"tensor": n, "layers": [n], "relative_weight_error": round(e, 4)} for n, e in keep]
        notes["float_layer_reason"] = (f"the weights {quant} reproduces worst (relative error ||W'-W||/||W||), "
                                       "left uncompressed, worst first, until the validation drop fit the budget")
    return Artifact(name=name, file=path.name, sha256=sha256_file(path), size_bytes=size_on_disk(path),
                    target="coreml", format=fmt, quantization=quant, inputs=inputs, outputs=outputs, notes=notes)


_COREML_NOTES = {
    "fp32": {"weights": "float32", "compute_precision": "float32"},
    "fp16": {"weights": "float16", "compute_precision": "float16 (ML Program) / float32 (NeuralNetwork)"},
    "int8w": {"weights": "int8 linear symmetric per-channel", "compute_precision": "float32"},
    "pal6": {"weights": "6-bit k-means palette", "compute_precision": "float32"},
    "pal4": {"weights": "4-bit k-means palette", "compute_precision": "float32"},
}


def _notes(quant: str, image_input: bool, config: ConvertConfig) -> dict:
    if quant == "fp16":
        return {"weights": "float16", "activations": "float32"}
    if quant == "dynamic":
        return {"weights": "int8", "activations": "float32 (int8 kernels where supported)"}
    if quant == "int8":
        return {"weights": "int8", "activations": "int8",
                "input": "uint8 raw pixels" if image_input else "float32, quantized inside the model",
                "output": config.int8_output}
    return {"weights": "float32", "activations": "float32"}


def _rebuilt_source(model_path: Path, rebuilt) -> dict:
    """What the saved reference was rebuilt from, and the input sizes it was given (-1: any batch)."""
    return {"original_sha256": sha256_file(model_path),
            "input_shapes": {t.name: [-1 if d is None else d for d in t.shape] for t in rebuilt.inputs}}


def _write_support_files(stage: Path, model_path: Path, run_dir, split_file, prep, labels, calibration,
                         artifacts, config, image_input, rebuilt=None) -> Manifest:
    """Copy the reference model (the benchmark baseline) and write the manifest last.

    A model rebuilt for conversion (sizes fixed, subclassed wrapped) is saved as the
    reference instead, so bench runs what was converted without --input-shape.
    """
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
    atomic_write_json(stage / "convert_config.json", dataclasses.asdict(config))
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        task="image_classification" if image_input else "tensor",
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
    )
    manifest.save(stage)
    return manifest
