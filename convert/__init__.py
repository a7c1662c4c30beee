"""Stage 2: a Keras model -> TFLite and Core ML artifacts, float and quantized, and manifest.json."""

from convert.api import ConvertConfig, convert
from convert.errors import CalibrationDataError, ConversionError, ManifestError, UnsupportedLayerError, UsageError
from convert.manifest import Artifact, Manifest, load_manifest, verify_artifacts

__all__ = ["Artifact", "CalibrationDataError", "ConversionError", "ConvertConfig", "Manifest",
           "ManifestError", "UnsupportedLayerError", "UsageError", "convert", "load_manifest",
           "verify_artifacts"]
