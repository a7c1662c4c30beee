"""Errors of the Core ML reference evaluator: one base, CoreMLReferenceError, and a subclass per kind.

The evaluator is a library of its own; a program that uses it (mobilepack's benchmarks/runners.py)
translates these into its own named errors.
"""


class CoreMLReferenceError(Exception):
    """Base of every error the evaluator raises on purpose; the message is one line."""


class CoreMLFormatError(CoreMLReferenceError):
    """Not a Core ML model, or a damaged one."""


class UnsupportedOpError(CoreMLReferenceError):
    """An ML Program op or NeuralNetwork layer the evaluator does not implement.

    ops names the op types the evaluator lacks (empty when an implemented op failed on its
    inputs), so a caller can count a missing op apart from a broken one.
    """

    def __init__(self, message: str, ops: tuple[str, ...] = ()):
        super().__init__(message)
        self.ops = tuple(ops)

    def __reduce__(self):  # pickled with its ops (a process pool, a Ray worker)
        return type(self), (str(self), self.ops)


class InputMismatchError(CoreMLReferenceError):
    """Input data does not fit the model's declared input."""


class PredictionError(CoreMLReferenceError):
    """The input makes the program fail as Core ML's prediction would, e.g. an out-of-range index
    where the op validates its indices."""
