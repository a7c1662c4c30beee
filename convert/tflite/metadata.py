"""Standard TFLite model metadata for image classifiers, so MediaPipe Tasks / ML Kit / the Task Library can run them.

The metadata is the `TFLITE_METADATA` buffer of the model flatbuffer (a `ModelMetadata`
table, file identifier "M001") plus the label file packed after the model as a zip, which
is how the format defines associated files. MediaPipe's `metadata_writers` would do this,
but on Linux they import a compiled module the mediapipe wheel lacks; the generated
flatbuffer schema modules (`mediapipe.tasks.metadata`) are present, so this module builds
the tables with them and inserts the buffer itself.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from convert.errors import ConversionError

METADATA_NAME = b"TFLITE_METADATA"
LABELS_FILE = "labels.txt"
# Every field written here is in the first metadata schema (1.0.0); mediapipe's
# metadata_version lists the later members (vocabulary files, process units on
# subgraphs, tensor groups, tokenizers, audio, associated-file versions), none used.
MIN_PARSER_VERSION = "1.0.0"


def _schemas():
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
        from mediapipe.tasks.metadata import schema_py_generated as tfl
    except ImportError as exc:  # pragma: no cover - mediapipe is a dependency
        raise ConversionError(f"TFLite metadata needs the mediapipe package ({exc}); pip install mediapipe") from None
    return meta, tfl


def input_normalization(prep, input_dtype: str) -> tuple[list[float], list[float]] | None:
    """mean/std an app applies to RGB 0-255 pixels before a float input; None for integer inputs.

    With normalization baked into the model (mobilepack's default) the model takes raw
    pixels, so the app's normalization is the identity: mean 0, std 1.
    """
    if input_dtype != "float32":
        return None
    if prep.normalization_in_model:
        return [0.0] * prep.channels, [1.0] * prep.channels
    return [float(m) for m in prep.mean], [float(s) for s in prep.std]


def build_metadata(prep, labels: list[str], input_dtype: str, info: dict) -> bytes:
    """The ModelMetadata flatbuffer of a single-input, single-output image classifier."""
    import flatbuffers

    meta, _ = _schemas()
    image = meta.TensorMetadataT()
    image.name = "image"
    image.description = (f"RGB image, {prep.image_size[1]}x{prep.image_size[0]}, "
                         f"{'raw pixels 0-255' if prep.normalization_in_model else 'normalized as below'}, "
                         f"resized {prep.resize}")
    image.content = meta.ContentT()
    image.content.contentPropertiesType = meta.ContentProperties.ImageProperties
    image.content.contentProperties = meta.ImagePropertiesT()
    image.content.contentProperties.colorSpace = meta.ColorSpaceType.RGB
    norm = input_normalization(prep, input_dtype)
    if norm is not None:
        unit = meta.ProcessUnitT()
        unit.optionsType = meta.ProcessUnitOptions.NormalizationOptions
        unit.options = meta.NormalizationOptionsT()
        unit.options.mean, unit.options.std = norm
        image.processUnits = [unit]
    image.stats = meta.StatsT()
    image.stats.min, image.stats.max = [float(prep.value_range[0])], [float(prep.value_range[1])]

    probs = meta.TensorMetadataT()
    probs.name = "probability"
    probs.description = f"Probabilities of the {len(labels)} labels in {LABELS_FILE} (softmax)."
    probs.content = meta.ContentT()
    probs.content.contentPropertiesType = meta.ContentProperties.FeatureProperties
    probs.content.contentProperties = meta.FeaturePropertiesT()
    probs.stats = meta.StatsT()
    probs.stats.min, probs.stats.max = [0.0], [1.0]
    label_file = meta.AssociatedFileT()
    label_file.name = LABELS_FILE
    label_file.description = "One label per line, in output order."
    label_file.type = meta.AssociatedFileType.TENSOR_AXIS_LABELS
    probs.associatedFiles = [label_file]

    subgraph = meta.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [image], [probs]
    model = meta.ModelMetadataT()
    model.name, model.description = info["name"], info["description"]
    model.version, model.author, model.license = info["version"], info["author"], info["license"]
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def add_metadata(tflite: bytes, prep, labels: list[str], info: dict) -> bytes:
    """`tflite` with the metadata buffer inserted and labels.txt packed after it."""
    import flatbuffers

    _, tfl = _schemas()
    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAsModel(tflite, 0))
    graph = model.subgraphs[0]
    if len(model.subgraphs) != 1 or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConversionError("TFLite metadata: only single-input, single-output image classifiers get metadata")
    input_dtype = "float32" if graph.tensors[graph.inputs[0]].type == tfl.TensorType.FLOAT32 else "integer"
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(build_metadata(prep, labels, input_dtype, info), np.uint8)
    model.buffers.append(buffer)
    entry = tfl.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(tflite) + 4096)
    builder.Finish(model.Pack(builder), b"TFL3")
    packed = io.BytesIO(bytes(builder.Output()))
    packed.seek(0, io.SEEK_END)
    # The zip entry is dated 1980-01-01, not now: the same model gives the same bytes (and sha256) every run.
    entry = zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0))
    entry.external_attr = 0o600 << 16  # what writestr gives a name
    with zipfile.ZipFile(packed, "a") as zf:  # associated files live in a zip appended to the flatbuffer
        zf.writestr(entry, "\n".join(labels) + "\n")
    return packed.getvalue()


def read_metadata(tflite: bytes) -> dict | None:
    """The metadata fields a client reads, as plain data; None when the model has none."""
    meta, tfl = _schemas()
    model = tfl.Model.GetRootAsModel(tflite, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            m = meta.ModelMetadataT.InitFromObj(meta.ModelMetadata.GetRootAsModelMetadata(data, 0))
            break
    else:
        return None
    sub = m.subgraphMetadata[0]
    image, probs = sub.inputTensorMetadata[0], sub.outputTensorMetadata[0]
    norm = next((u.options for u in image.processUnits or []
                 if u.optionsType == meta.ProcessUnitOptions.NormalizationOptions), None)
    with zipfile.ZipFile(io.BytesIO(tflite)) as zf:
        packed = {name: zf.read(name).decode("utf-8") for name in zf.namelist()}
    dec = lambda b: b.decode("utf-8") if isinstance(b, bytes) else b  # noqa: E731
    return {
        "name": dec(m.name), "description": dec(m.description), "version": dec(m.version),
        "author": dec(m.author), "license": dec(m.license), "min_parser_version": dec(m.minParserVersion),
        "input": {"name": dec(image.name), "mean": None if norm is None else [float(v) for v in norm.mean],
                  "std": None if norm is None else [float(v) for v in norm.std],
                  "color_space": "RGB" if image.content.contentProperties.colorSpace == meta.ColorSpaceType.RGB else "?"},
        "output": {"name": dec(probs.name), "label_file": dec(probs.associatedFiles[0].name)},
        "packed_files": packed,
    }
