"""Stage 1: a Keras model, its labels and its Preprocessing, in a run dir.

The lowest layer: it imports nothing of mobilepack. It also holds what every stage needs: named
errors (errors.py), atomic writes (fsutil.py), model loading and sha256 (loading.py), the one loader
of every file mobilepack reads back (documents.py), .npy/.npz inputs (tensors.py) and the pixel
contract (imagecontract.py).
"""

from train.errors import (DataError, MobilepackError, ModelLoadError, OutputError, PreprocessingError,
                           UnsafeModelError)
from train.preprocessing import Preprocessing

__all__ = ["DataError", "MobilepackError", "ModelLoadError", "OutputError", "Preprocessing",
           "PreprocessingError", "UnsafeModelError"]
