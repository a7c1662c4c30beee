"""Named errors of the benchmark stage."""

from train.errors import MobilepackError


class BenchDataError(MobilepackError):
    """Evaluation data is missing or does not fit the model."""


class ThresholdError(MobilepackError):
    """A --max-drop / --min-agreement / --threads value is malformed."""


class MeasurementError(MobilepackError):
    """A latency/memory measurement process or the cross-check tool failed."""
