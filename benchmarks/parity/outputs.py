"""A model has outputs, not "an output": each is judged by its kind.

- classification: a probability vector of >= 2 classes (softmax or sigmoid last activation);
- regression: any other output (boxes, landmarks, scores, a single value);
- embedding: only when the user says so (`--output-kind NAME=embedding`): judged by cosine similarity.

The artifact's own tensor names are recorded beside the Keras name so an app developer can map them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.errors import BenchDataError

KINDS = ("classification", "regression", "embedding")
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class OutputSpec:
    index: int  # position in the model's outputs (and in every runner's output list)
    name: str  # the Keras output name
    kind: str
    shape: tuple  # per sample, without the batch axis
    kind_source: str  # why this kind: the activation seen, or the --output-kind override

    @property
    def classes(self) -> int:
        return int(self.shape[-1]) if self.shape else 1


def parse_output_kinds(values, option: str = "--output-kind") -> dict[str, str]:
    """'box=regression' strings -> {output name: kind}."""
    out: dict[str, str] = {}
    for item in values or ():
        name, sep, kind = item.partition("=")
        if not sep or not name:
            raise BenchDataError(f"{option} {item!r}: expected NAME=KIND, e.g. {option} box=regression")
        if kind not in KINDS:
            raise BenchDataError(f"{option} {item!r}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        out[name] = kind
    return out


def describe_outputs(model, overrides: dict[str, str] | None = None) -> list[OutputSpec]:
    """One OutputSpec per Keras output, kinds inferred from the last activation unless overridden."""
    overrides = dict(overrides or {})
    names = list(model.output_names)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BenchDataError(f"--output-kind {unknown[0]}: the model has no output of that name; "
                             f"its outputs are {', '.join(names)}")
    specs = []
    for i, (name, tensor) in enumerate(zip(names, model.outputs)):
        shape = tuple(int(d) if d is not None else -1 for d in tuple(tensor.shape)[1:])
        activation = _last_activation(tensor)
        if name in overrides:
            kind, source = overrides[name], "--output-kind"
        elif activation in _PROBABILITY_ACTIVATIONS and shape and shape[-1] >= 2:
            kind, source = "classification", f"{activation} over {shape[-1]} units"
        else:
            kind = "regression"
            source = f"{activation or 'linear'} activation" + (f", {shape[-1]} unit(s)" if shape else "")
        specs.append(OutputSpec(i, name, kind, shape, source))
    return specs


def _last_activation(tensor) -> str | None:
    """Name of the activation that produced a Keras tensor, when one can be seen."""
    history = getattr(tensor, "_keras_history", None)
    layer = history[0] if history else None
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return name if isinstance(name, str) else None


def first_classification(specs: list[OutputSpec]) -> OutputSpec | None:
    return next((s for s in specs if s.kind == "classification"), None)


def resolve_labels(named: dict[str, np.ndarray], specs: list[OutputSpec], count: int, where: str) -> dict[str, np.ndarray]:
    """Labels per output name from an .npz's `y` and `y_<output name>` arrays.

    `y` labels the model's only output, else its first classification output. Class labels
    are integers in 0..classes-1; other outputs take arrays shaped like the output.
    """
    by_name = {s.name: s for s in specs}
    out: dict[str, np.ndarray] = {}
    for key, values in named.items():
        if key == "y":
            spec = specs[0] if len(specs) == 1 else first_classification(specs)
            if spec is None:
                raise BenchDataError(f"{where}: 'y' labels the first classification output and this model has none; "
                                     f"name the output instead: {', '.join('y_' + s.name for s in specs)}")
        elif key.startswith("y_"):
            spec = by_name.get(key[2:])
            if spec is None:
                raise BenchDataError(f"{where}: {key!r} names no output of the model; its outputs are "
                                     f"{', '.join(by_name)} (use y_<output name>)")
        else:
            continue
        if spec.name in out:
            raise BenchDataError(f"{where}: output {spec.name!r} is labelled twice ('y' and 'y_{spec.name}'); keep one")
        out[spec.name] = _check_labels(np.asarray(values), spec, count, f"{where}: {key!r}")
    return out


def _check_labels(values: np.ndarray, spec: OutputSpec, count: int, what: str) -> np.ndarray:
    if len(values) != count:
        raise BenchDataError(f"{what}: {len(values)} labels for {count} inputs; give one label per input")
    if spec.kind == "classification":
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise BenchDataError(f"{what}: class labels for {spec.name!r} must be {count} integers, "
                                 f"got {values.dtype} {values.shape}")
        bad = values[(values < 0) | (values >= spec.classes)]
        if len(bad):
            raise BenchDataError(f"{what}: label {int(bad[0])} outside 0..{spec.classes - 1} of output {spec.name!r}")
        return values.astype(np.int64)
    if values.dtype.kind not in "iuf" or tuple(values.shape[1:]) != tuple(spec.shape):
        raise BenchDataError(f"{what}: targets for {spec.kind} output {spec.name!r} must be numbers of shape "
                             f"{(count, *spec.shape)}, got {values.dtype} {values.shape}")
    return values.astype(np.float32)


def artifact_output_names(artifact, specs: list[OutputSpec]) -> list[dict]:
    """Keras output name -> the artifact's own name for it (TFLite signature key or Core ML feature)."""
    outs = list(artifact.outputs)
    names = []
    for s in specs:
        if artifact.target == "tflite":
            by_sig = {o.get("signature_name"): o for o in outs}
            own = by_sig.get(f"output_{s.index}") or (outs[s.index] if s.index < len(outs) else None)
            names.append({"tflite_name": own.get("signature_name") or own["name"] if own else None,
                          "tflite_tensor": own["name"] if own else None})
        else:
            probabilities = artifact.notes.get("probabilities_output")
            own = probabilities if probabilities and len(specs) == 1 else (
                outs[s.index]["name"] if s.index < len(outs) else None)
            names.append({"coreml_name": own})
    return names
