"""Loading Keras models without running code from the file.

Keras' safe mode refuses Lambda layers (their Python bytecode would run on
load). We keep it on unless the user passes --unsafe-load for a file they trust.
Custom layers and subclassed models come from the user's own module, imported
only when --custom-objects names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Sequence

from train.errors import CustomObjectsError, ModelLoadError, UnsafeModelError

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


def inference_function(model, input_signature=None):
    """The model's forward pass as a tf.function (training=False), inputs as positional arguments.

    The benchmark's Keras runner calls it; Core ML conversion traces it into a concrete function,
    the only form of a Keras 3 model coremltools 9 accepts.
    """
    import tensorflow as tf

    return tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
                       input_signature=input_signature)


def load_keras_model(path: Path, unsafe: bool = False, custom_objects: Sequence[str] = ()):
    """Load a .keras/.h5 model with safe mode on unless `unsafe`.

    `custom_objects` are --custom-objects specs (module:name); only they are imported.
    """
    path = resolve_model_path(path)
    with open(path, "rb"):  # unreadable is not damaged: its OSError (Permission denied) names the file
        pass
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a valid .keras archive (truncated or not a Keras model); re-save the model")
    objects = import_custom_objects(custom_objects) if custom_objects else None
    import keras

    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe, custom_objects=objects)
    except (ValueError, TypeError, OSError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise _load_error(path, exc) from None


def _load_error(path: Path, exc: Exception) -> ModelLoadError:
    text = str(exc)
    missing = re.search(r"Could not locate (class|function) '([^']+)'", text)
    if missing:
        # Keras names the module the class was defined in, unless it was __main__.
        module = re.search(r"Full object config: \{'module': '([\w.]+)', 'class_name': '" + re.escape(missing[2]),
                           text)
        where = module[1] if module and module[1] != "__main__" else "MODULE"
        return ModelLoadError(
            f"{path}: needs the {missing[1]} {missing[2]!r}, which Keras cannot find (custom code the file does not "
            f"hold); pass --custom-objects {where}:{missing[2]} (a module in the current directory or an installed "
            "package)"
        )
    if isinstance(exc, ValueError) and ("safe_mode" in text or "Lambda" in text):
        return UnsafeModelError(
            f"{path}: contains a Lambda layer, whose Python code safe mode will not load; "
            "if you trust this file, pass --unsafe-load"
        )
    if isinstance(exc, ValueError):
        return ModelLoadError(f"{path}: cannot load as a Keras model ({_first_line(text)})")
    if isinstance(exc, TypeError):  # the archive was read; a class could not be rebuilt from its config
        cause = re.search(r"Exception encountered: (.+)", text)
        return ModelLoadError(
            f"{path}: Keras cannot rebuild the model from its config ({_first_line(cause[1] if cause else text)}); "
            "custom classes need get_config() and from_config() that round-trip"
        )
    return ModelLoadError(
        f"{path}: cannot load as a Keras model ({_first_line(text) or type(exc).__name__}); "
        "the file may be truncated or damaged"
    )


@contextlib.contextmanager
def custom_objects_scope(specs: Sequence[str]):
    """Every Keras load inside finds the --custom-objects classes (for loads deep inside a command, as bench's)."""
    if not specs:
        yield
        return
    from keras.saving import CustomObjectScope

    with CustomObjectScope(import_custom_objects(specs)):
        yield


def import_custom_objects(specs: Sequence[str]) -> dict:
    """--custom-objects module:name,...: the classes (or functions) Keras needs to rebuild a model.

    This runs the user's code, so it happens only for names the user gave.
    """
    from keras.saving import get_registered_name

    objects = {}
    for spec in specs:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
            raise CustomObjectsError(f"--custom-objects {spec!r}: not module:name; "
                                     "e.g. --custom-objects mylayers:MyLayer,mylayers:MyModel")
        module_name, attr = spec.split(":")
        module = _import_user_module(module_name, spec)
        if not hasattr(module, attr):
            defined = sorted(n for n, v in vars(module).items()
                             if isinstance(v, type) and v.__module__ == module.__name__)
            raise CustomObjectsError(f"--custom-objects {spec}: module {module_name!r} "
                                     f"({getattr(module, '__file__', '')}) has no attribute {attr!r}; "
                                     f"it defines: {', '.join(defined) or 'no classes'}")
        obj = getattr(module, attr)
        # Keras looks a class up by its registered name ("package>Name" when decorated), else by its own name.
        objects[attr] = objects[get_registered_name(obj)] = obj
    return objects


def import_user_module(name: str):
    """Import a user's module as `python -m` would: from the current directory first, else installed.

    sys.path is restored so the rest of the run imports nothing from the user's folder. Whatever the
    import raises is the caller's to turn into a named error.
    """
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(cwd)


def _import_user_module(name: str, spec: str):
    cwd = os.getcwd()
    try:
        return import_user_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CustomObjectsError(f"--custom-objects {spec}: no module {name!r} in the current directory ({cwd}) "
                                     "or installed packages; run from the folder holding it or install it") from None
        raise CustomObjectsError(f"--custom-objects {spec}: importing {name!r} failed: "
                                 f"{_first_line(str(exc))}") from None
    except Exception as exc:  # user code may raise anything while it is imported
        raise CustomObjectsError(f"--custom-objects {spec}: importing {name!r} raised "
                                 f"{type(exc).__name__}: {_first_line(str(exc))}") from None


def _first_line(text: str, limit: int = 200) -> str:
    """The first line, shortened at a word boundary so a message never ends mid-word."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) <= limit:
        return line
    return line[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:.") + "..."
