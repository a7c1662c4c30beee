"""One policy for every file mobilepack reads back: manifest, report, split, preprocessing, labels,
app marker, calibration and evaluation arrays.

A damaged file must never surface as a JSONDecodeError, KeyError or TypeError far from the read.
Each loader reads through here and checks, right at the read, every field its callers later index,
so anything wrong becomes one named error (`DocumentError` or a subclass the caller already
expects) whose single line gives the path, what is wrong (a key path such as
`artifacts[2].sha256`, expected against found type) and what to run to regenerate the file.

A spec describes the shape a loader needs; it is plain data:
    int, str, float, bool, dict, list   that JSON type (an int is never a bool; a float takes an int)
    (int, float, ...)                   any of these
    {"key": spec, "opt?": spec}         an object with these keys ("?": may be absent); others allowed
    [spec] or Array(spec, length=N)     an array whose items all match spec
    Maybe(spec)                         null or spec
    AtLeast(int, 1)                     a number of that type, >= the minimum (a divisor, a count)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.errors import DocumentError, MobilepackError

NUMBER = (int, float)
_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


@dataclass(frozen=True)
class Maybe:
    spec: Any


@dataclass(frozen=True)
class AtLeast:
    types: Any
    minimum: float


@dataclass(frozen=True)
class Array:
    item: Any
    length: int | None = None
    min_length: int = 0


def shown(value: Any, limit: int = 40) -> str:
    """A value for a one-line message: repr (which escapes newlines), cut to `limit` characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = "a very long number"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unreadable(path: Path, exc: OSError, fix: str, error: type[MobilepackError] = DocumentError) -> MobilepackError:
    """The error for an OSError met opening or reading `path`."""
    if isinstance(exc, FileNotFoundError):
        return error(f"{path}: not found; {fix}")
    if isinstance(exc, IsADirectoryError):
        return error(f"{path}: cannot read (it is a folder, not a file); {fix}")
    if isinstance(exc, PermissionError):
        return error(f"{path}: cannot read (permission denied); allow reading it (chmod u+r) or {fix}")
    return error(f"{path}: cannot read ({exc.strerror or exc}); {fix}")


def read_bytes(path: Path, fix: str, error: type[MobilepackError] = DocumentError) -> bytes:
    """The file's bytes; missing, a folder, unreadable: `error` naming the path and `fix`."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise unreadable(path, exc, fix, error) from None


def read_text(path: Path, fix: str, error: type[MobilepackError] = DocumentError) -> str:
    """The file as UTF-8 text (a leading byte-order mark is allowed)."""
    data = read_bytes(path, fix, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); {fix}") from None


def read_json(path: Path, fix: str, error: type[MobilepackError] = DocumentError) -> Any:
    """The file parsed as JSON; an empty or damaged file is `error` with the line JSON broke at."""
    text = read_text(path, fix, error)
    if not text.strip():
        raise error(f"{path}: empty file, not JSON; {fix}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting past the stack
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise error(f"{path}: not valid JSON ({reason}); {fix}") from None


def load_document(path: Path, spec: dict, fix: str, schema_version: int | None = None,
                  error: type[MobilepackError] = DocumentError) -> dict:
    """A JSON object file: read, parsed, its schema_version (if given) and `spec` checked."""
    doc = read_json(path, fix, error)
    return check_document(doc, spec, str(path), fix, schema_version, error)


def check_document(doc: Any, spec: dict, source: str, fix: str, schema_version: int | None = None,
                   error: type[MobilepackError] = DocumentError) -> dict:
    """`doc` (already parsed, from `source`) checked: an object, of `schema_version`, matching `spec`."""
    check(doc, dict, source, fix, error=error)
    if schema_version is not None:
        check(doc, {"schema_version": object}, source, fix, error=error)
        found = doc["schema_version"]
        if type(found) is not int or found != schema_version:  # True == 1 and 1.0 == 1: compare the type too
            raise error(f"{source}: schema_version {shown(found)}, this mobilepack writes {schema_version}; {fix}")
    check(doc, spec, source, fix, error=error)
    return doc


def check(value: Any, spec: Any, source: str, fix: str, where: str = "",
          error: type[MobilepackError] = DocumentError) -> None:
    """Raise `error` at the first place `value` departs from `spec`, naming its key path."""
    if isinstance(spec, Maybe):
        if value is not None:
            check(value, spec.spec, source, fix, where, error)
    elif isinstance(spec, dict):
        _check_object(value, spec, source, fix, where, error)
    elif isinstance(spec, (list, Array)):
        _check_array(value, spec if isinstance(spec, Array) else Array(spec[0]), source, fix, where, error)
    elif isinstance(spec, AtLeast):
        check(value, spec.types, source, fix, where, error)
        if not value >= spec.minimum:  # `not >=` also refuses NaN
            raise error(f"{source}: {where} is {shown(value)}, expected at least {spec.minimum}; {fix}")
    elif spec is not object and not _is(value, spec):
        raise error(f"{source}: {where or 'the document'} is {json_type(value)}, "
                    f"expected {_expected(spec)}; {fix}")


def _check_object(value, spec: dict, source, fix, where, error) -> None:
    if not isinstance(value, dict):
        raise error(f"{source}: {where or 'the document'} is {json_type(value)}, expected an object; {fix}")
    missing = [k for k in spec if not k.endswith("?") and k not in value]
    if missing:
        raise error(f"{source}: {where + ': ' if where else ''}missing field(s) {', '.join(missing)}; {fix}")
    for key, sub in spec.items():
        name = key.rstrip("?")
        if name in value:
            check(value[name], sub, source, fix, f"{where}.{name}" if where else name, error)


def _check_array(value, spec: Array, source, fix, where, error) -> None:
    if not isinstance(value, list):
        raise error(f"{source}: {where or 'the document'} is {json_type(value)}, expected an array; {fix}")
    if spec.length is not None and len(value) != spec.length:
        raise error(f"{source}: {where} has {len(value)} item(s), expected {spec.length}; {fix}")
    if len(value) < spec.min_length:
        raise error(f"{source}: {where} has {len(value)} item(s), expected at least {spec.min_length}; {fix}")
    for i, item in enumerate(value):
        check(item, spec.item, source, fix, f"{where}[{i}]", error)


def _is(value: Any, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):  # bool is an int subclass in Python, never in JSON
        return bool in types
    return isinstance(value, types) or (float in types and isinstance(value, int))


def json_type(value: Any) -> str:
    return next((name for t, name in _TYPE_NAMES.items() if type(value) is t), type(value).__name__)


def _expected(spec) -> str:
    types = spec if isinstance(spec, tuple) else (spec,)
    if float in types:
        types = tuple(t for t in types if t is not int)
    return " or ".join(_TYPE_NAMES.get(t, getattr(t, "__name__", str(t))) for t in types)
