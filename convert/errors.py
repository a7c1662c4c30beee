"""Named errors of the convert stage."""

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
