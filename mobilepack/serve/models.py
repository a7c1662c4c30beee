"""The artifacts `mobilepack serve` answers from: read once, checked against the manifest, kept in memory.

Every worker thread builds its interpreters from the bytes whose sha256 was checked at start
(LiteRT's `model_content`), never from the file again: a dist replaced while the server runs
changes nothing until restart, and the sha256 the server reports is that of what it runs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np

from convert.errors import ManifestError
from convert.manifest import Artifact, load_manifest
from train.errors import MobilepackError
from train.preprocessing import Preprocessing

from mobilepack.serve.inputs import FLOAT32_MAX, BadRequest, InputSpec

TOP_K = 5


class ServeError(MobilepackError):
    """The dist cannot be served as asked."""


class Models:
    """The served TFLite artifacts, their checked bytes, and a per-thread interpreter for each."""

    def __init__(self, dist: Path, default: str | None = None):
        self.dist = Path(dist)
        self.manifest = load_manifest(self.dist)
        self.artifacts = {a.name: a for a in self.manifest.artifacts if a.target == "tflite"}
        if not self.artifacts:
            raise ServeError(f"{self.dist}: no .tflite artifact to serve; convert with --target tflite")
        if default is not None and default not in self.artifacts:
            raise ServeError(f"--artifact {default}: not a .tflite artifact of {self.dist}; choose from "
                             f"{', '.join(self.artifacts)}")
        self.default = default or _float_first(self.artifacts)
        self.content = {name: checked_bytes(self.dist, a) for name, a in self.artifacts.items()}
        self.sha256 = {name: hashlib.sha256(data).hexdigest() for name, data in self.content.items()}
        self.prep = (Preprocessing.from_dict(self.manifest.preprocessing, "manifest preprocessing")
                     if self.manifest.preprocessing else None)
        self.labels = self.manifest.labels
        self._local = threading.local()
        for name in self.artifacts:  # bytes LiteRT cannot load fail here, at start, not on a request
            self._build(name)

    def get(self, name: str | None) -> Artifact:
        name = self.default if name is None else name  # ?artifact= (empty) is a name, and not a served one
        if name not in self.artifacts:
            raise BadRequest(404, f"unknown artifact {name!r}; served: {', '.join(self.artifacts)}")
        return self.artifacts[name]

    def runner(self, name: str):
        """This thread's interpreter for `name` (LiteRT interpreters are not thread-safe)."""
        runners = getattr(self._local, "runners", None)
        if runners is None:
            runners = self._local.runners = {}
        if name not in runners:
            runners[name] = self._build(name)
        return runners[name]

    def _build(self, name: str):
        from benchmarks.runners import LiteRTRunner

        try:
            names = [t.get("signature_name") for t in self.artifacts[name].inputs]  # fed in the manifest's order
            return LiteRTRunner(None, num_threads=1, content=self.content[name],
                                input_names=names if all(names) else None)
        except (ValueError, RuntimeError) as exc:
            raise ServeError(f"{self.artifacts[name].path(self.dist)}: LiteRT cannot load it ({exc}); "
                             "re-run `mobilepack convert`") from None

    def input_specs(self, name: str | None = None) -> list[InputSpec]:
        """Each input of the artifact by its signature (Keras) name, as /predict takes it."""
        tensors = self.artifacts[name or self.default].inputs
        out = []
        for t in tensors:
            dtype = t["dtype"] if np.dtype(t["dtype"]).kind in "iu" and not t.get("quantization") else "float32"
            info = np.iinfo(dtype) if dtype != "float32" else None
            value_range = ((float(info.min), float(info.max)) if info is not None
                           else self.value_range() if len(tensors) == 1 else (-FLOAT32_MAX, FLOAT32_MAX))
            out.append(InputSpec(t.get("signature_name") or t["name"], tuple(t["shape"][1:]), dtype, value_range))
        return out

    def value_range(self) -> tuple[float, float]:
        """What JSON input may hold: raw pixels in the preprocessing's range, else any float32."""
        if self.prep is not None:
            return tuple(float(v) for v in self.prep.value_range)
        return (-FLOAT32_MAX, FLOAT32_MAX)


def checked_bytes(dist: Path, artifact: Artifact) -> bytes:
    """The artifact's bytes, read once, with the size and sha256 the manifest records."""
    path = artifact.path(dist)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: listed in the manifest but missing; re-run `mobilepack convert`") from None
    except OSError as exc:
        raise ServeError(f"{path}: cannot be read ({exc.strerror}); re-run `mobilepack convert`") from None
    if len(data) != artifact.size_bytes or hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise ManifestError(f"{path}: sha256 does not match the manifest (file altered); re-run `mobilepack convert`")
    return data


def _float_first(artifacts: dict) -> str:
    order = ["fp32", "fp16", "dynamic", "int8"]
    return min(artifacts, key=lambda n: order.index(artifacts[n].quantization)
               if artifacts[n].quantization in order else len(order))


def predict(models: Models, name: str | None, inputs: list[np.ndarray]) -> dict:
    """inputs: a batch of one per input, in the artifact's input order."""
    artifact = models.get(name)
    runner = models.runner(artifact.name)
    start = time.perf_counter()
    out = runner.predict(inputs)[0].reshape(-1)
    latency = (time.perf_counter() - start) * 1e3
    if not np.all(np.isfinite(out)):  # JSON has no NaN; and the caller should know the input overflowed
        raise BadRequest(422, f"{artifact.name} gave NaN or infinity for this input; values this far from "
                              "the training data overflow float32 inside the model")
    order = np.lexsort((np.arange(len(out)), -out))[:TOP_K]
    label = (lambda i: models.labels[i] if models.labels and i < len(models.labels) else str(i))  # noqa: E731
    return {"prediction": int(order[0]), "label": label(int(order[0])),
            "probabilities": [{"label": label(int(i)), "index": int(i), "probability": float(out[i])} for i in order],
            "artifact": artifact.name, "sha256": models.sha256[artifact.name], "latency_ms": round(latency, 3)}
