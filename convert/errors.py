"""Named errors of the convert stage, and naming the Keras layer a converter error is about."""

import re

from train.errors import DocumentError, MobilepackError


class ConversionError(MobilepackError):
    """The converter could not produce an artifact."""


class UnsupportedLayerError(ConversionError):
    """A layer or op the target format cannot take."""


class CalibrationDataError(MobilepackError):
    """int8 calibration data is missing, too small, or of the wrong shape."""


class ManifestError(DocumentError):
    """manifest.json is missing, of an unknown schema, or lacks a field."""


class UsageError(MobilepackError):
    """A bad option value or combination."""


def tool_error(tool: str, exc: BaseException, where: str = "", hint: str = "") -> ConversionError:
    """One line for an error a converter raised that mobilepack does not recognise.

    The failing layer or op when known (`where`), the tool's own message (its first line, which
    is where converters put the cause), the next step, and where the rest is: --debug re-raises
    with the tool's exception chained, its whole message and traceback.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
    place = f" at {where}" if where else ""
    return ConversionError(f"{tool}: conversion failed{place}: {said}; {hint + '; ' if hint else ''}"
                           "run with --debug for the full error")


def layer_of(node: str, model) -> str:
    """Map a TF graph node name back to the Keras layer that made it."""
    parts = node.split("/")
    names = {layer.name: type(layer).__name__ for layer in model.layers}
    for part in parts:
        base = re.sub(r"_1$", "", part)
        if base in names:
            return f"{base!r} ({names[base]})"
    return repr(node or "unknown")
