"""Named errors of the benchmark stage."""

from train.errors import MobilepackError


class BenchDataError(MobilepackError):
    """Evaluation data is missing or does not fit the model."""


class ThresholdError(MobilepackError):
    """A --max-drop / --min-agreement / --threads value is malformed."""
