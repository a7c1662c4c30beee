"""Errors of the Core ML reference evaluator."""

from benchmarks.errors import BenchDataError
from train.errors import MobilepackError


class CoreMLFormatError(MobilepackError):
    """Not a Core ML model, or a damaged one."""


class UnsupportedOpError(MobilepackError):
    """An ML Program op or NeuralNetwork layer the evaluator does not implement."""


class InputMismatchError(BenchDataError):
    """Input data does not fit the model's declared input."""
