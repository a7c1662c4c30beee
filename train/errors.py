"""Named errors. Every message says what is wrong and what to do next.

`exit_code` is a hint for the CLI: 2 for bad usage or input, 1 for a
failed check. The library never exits; only the CLI reads this.
"""


class MobilepackError(Exception):
    """Base of every error mobilepack raises on purpose."""

    exit_code = 2


class ModelLoadError(MobilepackError):
    """The model file is missing, not a Keras model, or damaged."""


class UnsafeModelError(ModelLoadError):
    """The model holds Python code (a Lambda layer) that safe mode refuses."""


class CustomObjectsError(ModelLoadError):
    """--custom-objects names a module or attribute that cannot be imported."""


class DocumentError(MobilepackError):
    """A file mobilepack reads back (manifest, report, split, labels, ...) is missing or damaged.

    The message is one line: the path, what is wrong, and what to run to regenerate the file.
    """


class DataError(MobilepackError):
    """A dataset is missing, empty, or unusable."""


class PreprocessingError(DocumentError):
    """A preprocessing.json is missing a field or has a bad value."""


class OutputError(MobilepackError):
    """The output location cannot be written."""
