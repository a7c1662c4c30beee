"""Named errors of the benchmark stage, and the line of a failed child process they quote. A leaf."""

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


def last_stderr_line(stderr: str) -> str:
    """The last non-blank line a failed child process wrote: what an error message quotes."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
