"""Stage 1: a Keras model, its labels and its Preprocessing, in a run dir."""

from train.errors import (DataError, MobilepackError, ModelLoadError, OutputError, PreprocessingError,
                     UnsafeModelError)
from train.preprocessing import Preprocessing

__all__ = ["DataError", "MobilepackError", "ModelLoadError", "OutputError", "Preprocessing",
           "PreprocessingError", "UnsafeModelError"]
