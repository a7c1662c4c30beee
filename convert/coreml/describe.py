"""What a saved Core ML model takes and gives, from its spec, for the manifest."""

from __future__ import annotations

from pathlib import Path

_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}


def describe_coreml(path: Path) -> tuple[list[dict], list[dict], dict]:
    from convert.coreml.convert import import_coremltools

    ct = import_coremltools()
    spec = ct.models.utils.load_spec(str(path))
    inputs = [_feature(f) for f in spec.description.input]
    outputs = [_feature(f) for f in spec.description.output]
    info = {
        "specification_version": spec.specificationVersion,
        "predicted_feature": spec.description.predictedFeatureName or None,
        "probabilities_output": spec.description.predictedProbabilitiesName or None,
    }
    return inputs, outputs, info


def _feature(f) -> dict:
    kind = f.type.WhichOneof("Type")
    d = {"name": f.name, "kind": kind, "shape": None, "dtype": None, "quantization": None}
    if kind == "imageType":
        t = f.type.imageType
        d.update(shape=[1, int(t.height), int(t.width), 3], dtype="uint8",
                 color_space={10: "GRAYSCALE", 20: "RGB", 30: "BGR"}.get(t.colorSpace, str(t.colorSpace)))
    elif kind == "multiArrayType":
        t = f.type.multiArrayType
        d.update(shape=[int(v) for v in t.shape], dtype=_ARRAY_DTYPES.get(t.dataType, str(t.dataType)))
    elif kind == "stringType":
        d.update(shape=[], dtype="string")
    elif kind == "dictionaryType":
        d.update(shape=[], dtype="dict[string,float64]")
    return d
