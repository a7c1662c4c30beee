"""Named errors of the benchmark stage."""

from train.errors import DocumentError, MobilepackError


class BenchDataError(MobilepackError):
    """Evaluation data is missing or does not fit the model."""


class ThresholdError(MobilepackError):
    """A --max-drop / --min-agreement / --threads value is malformed."""


class MeasurementError(MobilepackError):
    """A latency/memory measurement process or the cross-check tool failed."""


class BaselineError(BenchDataError, DocumentError):
    """The --baseline report is missing, damaged or of another schema version."""


class ExecutorError(MobilepackError):
    """--executor cannot be used: a bad value, Ray not installed, a cluster not reachable or not set up."""
