"""Real filesystem faults for tests: a read-only folder, a full disk, a file root may not read.

Each is the kernel's own refusal, not a stand-in: a read-only bind mount (EROFS), a small tmpfs
filled to the brim (ENOSPC), and a thread that lost root's power to read any file (EACCES).
They need root; without it the read-only folder falls back to chmod and the others skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

import pytest


def digest(root: Path) -> dict[str, str]:
    """Every file and folder under `root`: relative path -> sha256 (folders: 'dir')."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def staging_left(root: Path) -> list[str]:
    """Staging folders or temp files a write left anywhere under `root`."""
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob(".*")
                  if ".mobilepack-staging-" in p.name or p.name.endswith(".tmp"))


def _mount(*args) -> None:
    result = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); the fault needs CAP_SYS_ADMIN")


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` and everything in it refuses writes: EROFS for root (bind mount), EACCES otherwise."""
    folder = Path(folder)
    if os.geteuid() != 0:
        dirs = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        modes = {d: d.stat().st_mode for d in dirs}
        for d in dirs:
            d.chmod(0o555)
        try:
            yield
        finally:
            for d, mode in modes.items():
                d.chmod(mode)
        return
    _mount("--bind", folder, folder)
    try:
        _mount("-o", "remount,bind,ro", folder)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "8m"):
    """A tmpfs of `size` at `folder` (created): a real disk that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("a real ENOSPC needs a small tmpfs, and mounting one needs root")
    folder = Path(folder)
    folder.mkdir(parents=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Write a filler file so that only about `leave` bytes stay free on `disk`."""
    st = os.statvfs(disk)
    room = st.f_bavail * st.f_frsize - leave
    assert room > 0, f"the disk has less than {leave} bytes free already"
    with open(Path(disk) / "filler", "wb") as fh:
        chunk = b"\0" * (1 << 20)
        while room > 0:
            room -= fh.write(chunk[:room])


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_VERSION_3 = 0x20080522
_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: root reading any file


@contextlib.contextmanager
def unreadable(path: Path):
    """`path` (a file) cannot be opened by this thread: chmod 000, and root's override dropped."""
    path = Path(path)
    mode = path.stat().st_mode
    path.chmod(0)
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(_CAP_VERSION_3, 0), (_CapData * 2)()  # pid 0: this thread only
    saved = None
    try:
        if os.geteuid() == 0:
            if libc.capget(ctypes.byref(header), data) != 0:
                pytest.skip(f"capget failed ({os.strerror(ctypes.get_errno())})")
            saved = data[0].effective
            data[0].effective &= ~_DAC
            if libc.capset(ctypes.byref(header), data) != 0:
                pytest.skip(f"capset failed ({os.strerror(ctypes.get_errno())})")
        with pytest.raises(PermissionError):  # the fault is real before the test relies on it
            open(path, "rb").close()
        yield
    finally:
        if saved is not None:
            data[0].effective = saved
            assert libc.capset(ctypes.byref(header), data) == 0, "could not restore root's file access"
        path.chmod(mode)
