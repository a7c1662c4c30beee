"""Loading Keras models without running code from the file.

Keras' safe mode refuses Lambda layers (their Python bytecode would run on
load). We keep it on unless the user passes --unsafe-load for a file they trust.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from .errors import ModelLoadError, UnsafeModelError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def resolve_model_path(path: Path) -> Path:
    """A model file, or a run dir holding model.keras."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory; give a .keras file or a run dir from `mobilepack train`")
    if path.is_dir():
        candidate = path / "model.keras"
        if not candidate.is_file():
            raise ModelLoadError(f"{path}: folder has no model.keras; give a .keras file or a run dir from `mobilepack train`")
        return candidate
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(f"{path}: not a Keras model (expected .keras or .h5); save it with model.save('model.keras')")
    return path


def sha256_file(path: Path) -> str:
    """sha256 of a file, or of a folder (an .mlpackage): its relative paths and contents in order."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_on_disk(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def load_keras_model(path: Path, unsafe: bool = False):
    """Load a .keras/.h5 model with safe mode on unless `unsafe`."""
    path = resolve_model_path(path)
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a valid .keras archive (truncated or not a Keras model); re-save the model")
    import keras

    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(
                f"{path}: contains a Lambda layer, whose Python code safe mode will not load; "
                "if you trust this file, pass --unsafe-load"
            ) from None
        raise ModelLoadError(f"{path}: cannot load as a Keras model ({_first_line(text)})") from None
    except (OSError, zipfile.BadZipFile, KeyError, EOFError, TypeError) as exc:
        raise ModelLoadError(
            f"{path}: cannot load as a Keras model ({_first_line(str(exc)) or type(exc).__name__}); "
            "the file may be truncated or damaged"
        ) from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""
