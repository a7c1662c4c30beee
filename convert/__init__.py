"""Stage 2: a Keras model -> TFLite and Core ML artifacts, float and quantized, and manifest.json.

May import train, never benchmarks or mobilepack. api.py runs a conversion; tflite/ and coreml/ hold
each target; manifest.py is the artifact contract; budget.py the accuracy budget and search.py the
search that holds candidates to it, judged by a callable the caller lends (api.RuntimeHooks).
"""

from convert.api import ConvertConfig, RuntimeHooks, convert
from convert.errors import CalibrationDataError, ConversionError, ManifestError, UnsupportedLayerError, UsageError
from convert.manifest import Artifact, Manifest, load_manifest, verify_artifacts

__all__ = ["Artifact", "CalibrationDataError", "ConversionError", "ConvertConfig", "Manifest", "RuntimeHooks",
           "ManifestError", "UnsupportedLayerError", "UsageError", "convert", "load_manifest",
           "verify_artifacts"]
