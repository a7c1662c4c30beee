"""Reference evaluator of saved Core ML models (ML Program and NeuralNetwork) in numpy.

Core ML prediction exists only on macOS; this lets Linux CI check what the
iOS app will run. It is validated against the Keras model it was converted from.
"""

from .errors import CoreMLFormatError, InputMismatchError, PredictionError, UnsupportedOpError
from .model import CoreMLReferenceRunner, load_spec

__all__ = ["CoreMLFormatError", "CoreMLReferenceRunner", "InputMismatchError", "PredictionError", "UnsupportedOpError",
           "load_spec"]
