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


# What to do about an OSError, by errno: the OS says what went wrong, not what to do next.
_OS_ERROR_FIXES = {
    "ENOSPC": "free space on that disk or write somewhere else",
    "EDQUOT": "free space within your quota or write somewhere else",
    "EROFS": "write somewhere writable",
    "EACCES": "give this user access (chmod/chown) or use another path",
    "EPERM": "give this user access (chmod/chown) or use another path",
    "EFBIG": "the file exceeds what the filesystem or `ulimit -f` allows; write elsewhere or raise the limit",
    "ENOENT": "check the path",
    "ENOTDIR": "a part of the path is a file; check the path",
    "EISDIR": "give a file",
    "EMFILE": "raise the limit with `ulimit -n`",
    "ENFILE": "close some programs and retry",
    "EIO": "check the disk or share (dmesg) and retry",
    "EADDRINUSE": "choose another --port or stop the program using it",
    "EADDRNOTAVAIL": "choose another --host",
}


def os_error_message(exc: OSError) -> str:
    """One line: the path the OS named, what it said, and what to do.

    The command line prints it for any OSError the library did not turn into a named error.
    """
    import errno

    exc = plain_os_error(exc)
    fix = _OS_ERROR_FIXES.get(errno.errorcode.get(exc.errno or 0, ""))
    said = exc.strerror or str(exc) or type(exc).__name__
    name, name2 = exc.filename, exc.filename2
    if name2 is not None and errno.errorcode.get(exc.errno or 0) in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG"):
        name, name2 = name2, None  # a copy that could not write: the destination is the one to fix
    text = f"{name}: {said}" if name is not None else said
    if name2 is not None:
        text += f" (-> {name2})"
    text += f"; {fix}" if fix else ""
    if name is None:
        text += " (--debug shows where)"
    return " ".join(text.split())  # one line whatever the OS put in strerror


def plain_os_error(exc: OSError) -> OSError:
    """shutil.copytree's error (an OSError holding a list of failures, no errno) as its first failure."""
    import re
    import shutil

    if not (isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]):
        return exc
    src, dst, why = exc.args[0][0]
    m = re.match(r"\[Errno (\d+)\] (.*?)(?:: '(.*?)')?(?: -> '(.*)')?$", str(why))
    if not m:
        return OSError(None, str(why), dst)
    return OSError(int(m[1]), m[2], m[3] or dst, None, m[4])
