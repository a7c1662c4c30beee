"""Writing files and folders so that a crash, a kill or a power cut never leaves half of them.

A single file goes to a temporary name in its folder, is fsynced, renamed into place, and then
the folder is fsynced: without that last step a power cut can forget the rename itself.

A whole output folder is built beside the target, every file and folder in it is fsynced, and
it is swapped in with one atomic rename (Linux `renameat2(RENAME_EXCHANGE)`, macOS
`renamex_np(RENAME_SWAP)`); the parent is fsynced before the old folder is deleted. A reader
sees the old folder or the new one, never a mix. `replace_files` uses the same swap to replace
a few files of an existing folder as one set (bench's three reports).

Where no atomic swap exists (other systems, or filesystems without it), the old folder is renamed
to `.NAME.mobilepack-staging-old-PID` and then the new one to NAME. Between those two renames
NAME does not exist: a reader then finds no folder (never a mix), and a crash there leaves the old
folder under that name; the next write to NAME renames it back before doing anything else.

Files are created with mode 0o666 passed to `os.open`, so the kernel applies the process umask
(and a folder's default ACL) as it does for any new file. Nothing reads or sets the umask:
`os.umask` is process-wide, and setting it to read it races with other threads creating files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator

from train.errors import OutputError, plain_os_error

_STAGING_TAG = ".mobilepack-staging-"
_RENAME_EXCHANGE = 2  # Linux renameat2 flag
_RENAME_SWAP = 2  # macOS renamex_np flag
_AT_FDCWD = -100
# errno values that only a write can cause: name the output, not an input, when the OS names nothing.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all; an OSError names `path`, even for a failed write()."""
    path = Path(path)
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    fsync_dir(path.parent)


def _create_temp(path: Path) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def fsync_dir(path: Path) -> None:
    """Make the names in folder `path` (a rename, a new file) survive a power cut."""
    if os.name == "nt":  # Windows cannot open a folder; NTFS journals renames itself
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except PermissionError:  # a folder we may write but not read: the write stands, unsynced
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot sync folders say so
            raise
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths. False where the OS or the filesystem cannot."""
    libc = _libc()
    if libc is not None and hasattr(libc, "renameat2"):  # Linux 3.15+, glibc 2.28+
        rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif libc is not None and sys.platform == "darwin" and hasattr(libc, "renamex_np"):  # macOS 10.12+
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), ctypes.c_uint(_RENAME_SWAP))
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _recover(out: Path) -> None:
    """Undo what a killed run left beside `out`: restore an old folder moved aside, delete staging folders."""
    parent, name = out.parent, out.name
    for stale in sorted(parent.glob(f".{name}{_STAGING_TAG}*"), key=lambda p: "old-" not in p.name):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        if stale.name.startswith(f".{name}{_STAGING_TAG}old-") and not os.path.lexists(out):
            os.replace(stale, out)  # killed between the two renames of the fallback: the old folder returns
            fsync_dir(parent)
        elif stale.is_symlink() or not stale.is_dir():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable_dir(out: Path, hint: str = "choose a folder you can write with --out") -> None:
    """Fail early, before any slow work, when `out` cannot be produced."""
    out = Path(out)
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{out.name}{_STAGING_TAG}probe-{secrets.token_hex(4)}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(f"{out}: output folder is not writable ({exc.strerror}); {hint}") from None


@contextlib.contextmanager
def staged_directory(out: Path, hint: str = "choose a folder you can write with --out") -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `out` atomically.

    On any error the staging folder is removed and `out` is left as it was. An OSError about a
    file in the staging folder names the file's place in `out`. A symlink `out` is written through.
    """
    out = Path(out).absolute()
    if out.is_symlink():
        out = out.resolve()
    check_writable_dir(out, hint)
    _recover(out)
    staging = out.parent / f".{out.name}{_STAGING_TAG}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        _fsync_tree(staging)
        _swap_in(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        named = _in_terms_of(exc, staging, out)
        if named is not exc:
            raise named from exc
        raise


def _in_terms_of(exc: BaseException, staging: Path, out: Path) -> BaseException:
    """The OSError a user can act on: `out/...` instead of the hidden staging path.

    A failed write names the file being written (a copy's destination, not its source), or
    `out` itself when the OS named no file (a full disk during write()).
    """
    if not isinstance(exc, OSError):
        return exc
    plain = plain_os_error(exc)

    def shown(name):
        if isinstance(name, str) and (name == str(staging) or name.startswith(f"{staging}{os.sep}")):
            return str(out) + name[len(str(staging)):]
        return None

    first, second = shown(plain.filename), shown(plain.filename2)
    if plain.errno in WRITE_ERRNOS:
        return OSError(plain.errno, plain.strerror, second or first or plain.filename or str(out))
    if first or second:
        return OSError(plain.errno, plain.strerror, first or plain.filename, None, second or plain.filename2)
    return plain


_HELD: set[Path] = set()  # swap locks this process holds (flock is per open file: never take one twice)


@contextlib.contextmanager
def swap_lock(out: Path) -> Iterator[None]:
    """Exclusive with every other mobilepack swapping a folder beside `out`: an advisory flock on
    the parent folder itself, so no lock file is left in (say) an app's source tree.

    Without it, bench rebuilding a dist to add its reports could swap back the old artifacts over a
    convert that finished a moment earlier. Where flock is missing (not POSIX), no lock is taken.
    """
    parent = Path(out).absolute().parent
    if parent in _HELD:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD.add(parent)
        yield
    finally:
        _HELD.discard(parent)
        os.close(fd)  # closing releases the lock


def _swap_in(staging: Path, out: Path) -> None:
    with swap_lock(out):
        _swap_in_locked(staging, out)


def _swap_in_locked(staging: Path, out: Path) -> None:
    parent = out.parent
    if not os.path.lexists(out):
        os.replace(staging, out)
        fsync_dir(parent)
    elif _exchange(staging, out):
        fsync_dir(parent)  # the swap is durable before the old folder goes
        shutil.rmtree(staging, ignore_errors=True)
    else:
        old = parent / f".{out.name}{_STAGING_TAG}old-{os.getpid()}"
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old, out)
            raise
        fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """fsync every file, then every folder deepest first, so the new names are on disk too."""
    folders = [root]
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)


def replace_files(folder: Path, files: dict[str, bytes], unchanged: dict[str, str] | None = None) -> None:
    """Write `files` (name -> bytes) into the existing `folder` as one set.

    The folder is rebuilt beside itself, hard links to everything else in it (no data is copied)
    plus the new files, and swapped in: a reader or a crash sees every file old or every file new.
    A folder that cannot be swapped (a mount point, or its parent is read-only) gets the files one
    by one in the given order, each whole; the caller lists the file readers trust last.
    `unchanged` (name -> sha256) are files the new ones describe: if another command replaced one
    since, nothing is written (checked under the swap lock, so no swap can slip in between).
    """
    folder = Path(folder).resolve()
    with swap_lock(folder):
        for name, digest in (unchanged or {}).items():
            if _sha256_or_none(folder / name) != digest:
                raise OutputError(f"{folder / name}: replaced while this command ran (another command wrote "
                                  f"{folder}); nothing was written; run it again on the new folder")
        if not _swappable(folder):
            for name, data in files.items():
                atomic_write_bytes(folder / name, data)
            return
        with staged_directory(folder) as stage:
            _link_tree(folder, stage, skip=set(files))
            for name, data in files.items():
                atomic_write_bytes(stage / name, data)


def _sha256_or_none(path: Path) -> str | None:
    from train.loading import sha256_file  # the digest bench recorded the file with

    try:
        return sha256_file(path)
    except OSError:
        return None


def check_replaceable(folder: Path, hint: str) -> None:
    """Fail early, before any slow work, when `replace_files(folder, ...)` could not write."""
    folder = Path(folder).resolve()
    if _swappable(folder):
        return
    try:
        probe, fd = _create_temp(folder / "probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: folder is not writable ({exc.strerror}); {hint}") from None


def _swappable(folder: Path) -> bool:
    if os.path.ismount(folder):
        return False
    try:
        check_writable_dir(folder)
    except OutputError:
        return False
    return True


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """dst gets src's entries as hard links (copies where the filesystem refuses links), except `skip`.

    Whoever writes into dst afterwards must replace files (rename), never change one in place:
    a linked file is the same file as the one in src.
    """
    for entry in os.scandir(src):
        if entry.name in skip or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue  # a temp file a killed write left behind is not carried over
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, target)
    shutil.copymode(src, dst)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copy2(src, dst)
