"""Writing files and folders so that a crash never leaves half of them.

Single files go to a temporary name in the same folder and are renamed into
place. Whole output folders are built beside the target and then swapped in
with one atomic rename (Linux `renameat2(RENAME_EXCHANGE)` when the target
already exists), so a reader sees the old folder or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError

_STAGING_TAG = ".mobilepack-staging-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths. False where the OS cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Delete staging folders left by a run that was killed."""
    for stale in parent.glob(f".{name}{_STAGING_TAG}*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable_dir(out: Path) -> None:
    """Fail early, before any slow work, when `out` cannot be produced."""
    out = Path(out)
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}{_STAGING_TAG}probe-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(
            f"{out}: output folder is not writable ({exc.strerror}); choose a folder you can write with --out"
        ) from None


@contextlib.contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `out` atomically.

    On any error the staging folder is removed and `out` is left as it was.
    """
    out = Path(out).absolute()
    check_writable_dir(out)
    parent = out.parent
    _remove_stale_staging(parent, out.name)
    staging = parent / f".{out.name}{_STAGING_TAG}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        _fsync_tree(staging)
        if out.exists():
            if _exchange(staging, out):
                shutil.rmtree(staging, ignore_errors=True)
            else:
                # No atomic exchange here: move the old folder aside first so a
                # crash leaves either the old folder (renamed) or the new one.
                old = parent / f".{out.name}{_STAGING_TAG}old-{os.getpid()}"
                os.replace(out, old)
                os.replace(staging, out)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
