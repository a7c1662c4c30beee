"""Errors of the Core ML reference evaluator."""

from benchmarks.errors import BenchDataError
from train.errors import MobilepackError


class CoreMLFormatError(MobilepackError):
    """Not a Core ML model, or a damaged one."""


class UnsupportedOpError(MobilepackError):
    """An ML Program op or NeuralNetwork layer the evaluator does not implement.

    ops names the op types the evaluator lacks (empty when an implemented op failed on its
    inputs), so a caller can count a missing op apart from a broken one.
    """

    def __init__(self, message: str, ops: tuple[str, ...] = ()):
        super().__init__(message)
        self.ops = tuple(ops)


class InputMismatchError(BenchDataError):
    """Input data does not fit the model's declared input."""


class PredictionError(BenchDataError):
    """The input makes the program fail as Core ML's prediction would, e.g. an out-of-range index
    where the op validates its indices."""
