"""Memory the evaluator reuses instead of asking the allocator for fresh feature maps.

A feature map of a 224-px network is megabytes. glibc gives a freed block that large back
to the system, and the next one is page-faulted in again, a page at a time: on MobileNetV2
224, 4 samples per pass, that was 17,000 faults per pass and about half the evaluator's time
(2-core machine under load). A workspace keeps two kinds of memory for one thread:
  scratch  a kernel's temporaries (padded planes, im2col columns, partial sums), one buffer
           per purpose, faulted in once;
  free     feature maps whose last reader has run, by shape, for the next op's output.
Kernels ask through scratch() and empty(); with no workspace bound to the thread (a kernel
called on its own, e.g. in a test) these are plain allocations. Reuse never changes a number:
every buffer handed out is written in full before it is read.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from contextlib import contextmanager

import numpy as np

FREE_BYTES = 256 << 20  # dead feature maps kept per workspace; more are left to the allocator
_LOCAL = threading.local()


class Workspace:
    """One thread's reusable memory (not shared: bind one per thread with using())."""

    def __init__(self):
        self._scratch: dict[tuple, np.ndarray] = {}
        self._free: dict[tuple, list[np.ndarray]] = {}
        self._held = 0

    def scratch(self, purpose: str, shape, dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._scratch.get((purpose, dtype))
        if buf is None or buf.size < size:
            buf = self._scratch[(purpose, dtype)] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def empty(self, shape, dtype) -> np.ndarray:
        kept = self._free.get((shape, dtype))
        if not kept:
            return np.empty(shape, dtype)
        buf = kept.pop()
        self._held -= buf.nbytes
        return buf

    def keep(self, value) -> None:
        """Take a dead feature map if nothing else holds it (another name, a view of it, a watcher)."""
        if not sole(value, 1) or self._held + value.nbytes > FREE_BYTES:  # 1: this call's argument
            return
        self._free.setdefault((value.shape, value.dtype), []).append(value)
        self._held += value.nbytes


class WorkspacePool:
    """Workspaces for the threads that run one program, kept between calls (so a second batch
    reuses the first one's memory) and lent to one thread at a time."""

    def __init__(self):
        self._idle: queue.SimpleQueue = queue.SimpleQueue()

    @contextmanager
    def lend(self):
        """Bind an idle workspace (or a new one) to the current thread for the duration."""
        try:
            ws = self._idle.get_nowait()
        except queue.Empty:
            ws = Workspace()
        try:
            with using(ws):
                yield ws
        finally:
            self._idle.put(ws)


# The reference count a function sees for an argument that nothing else holds (measured: it
# depends on the interpreter's calling convention).
_SOLE = (lambda value: sys.getrefcount(value))(np.empty(0))


def sole(value, holders: int) -> bool:
    """Whether value is an array that only the caller's `holders` references reach (its locals,
    its container entries): not a view, not another name's, so the caller may overwrite it.
    Call it with the value as an expression, e.g. sole(kwargs["x"], 1) for a dict entry."""
    return isinstance(value, np.ndarray) and value.base is None and value.flags.writeable \
        and sys.getrefcount(value) <= _SOLE + holders


def last_reads(reads, kept) -> list[tuple[str, ...]]:
    """Per step, given the names each step reads in order, the names it is the last to read, other
    than `kept` (a program's constants, inputs, outputs): after that step they are dead."""
    last = {name: i for i, names in enumerate(reads) for name in names}
    return [tuple(dict.fromkeys(n for n in names if last[n] == i and n not in kept)) for i, names in enumerate(reads)]


def release(env: dict, names) -> None:
    """Drop dead names from env; the thread's workspace, if one is bound, takes their arrays for
    later outputs (keep() refuses one that something else still holds)."""
    ws = active()
    for name in names:
        if name not in env:
            continue
        if ws is None:
            del env[name]
        else:
            ws.keep(env.pop(name))  # (passed straight on: a local name would be one more holder)


def active() -> Workspace | None:
    return getattr(_LOCAL, "workspace", None)


@contextmanager
def using(workspace: Workspace):
    """Bind a workspace to the current thread for the duration."""
    before = active()
    _LOCAL.workspace = workspace
    try:
        yield workspace
    finally:
        _LOCAL.workspace = before


def scratch(purpose: str, shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised temporary, reused by the next request for the same purpose in this thread:
    the caller must be done with it before asking again, and must not return it."""
    ws = active()
    dtype = np.dtype(dtype)
    return ws.scratch(purpose, tuple(shape), dtype) if ws is not None else np.empty(shape, dtype)


def empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised array for an op's output: a dead feature map of that shape if there is one."""
    ws = active()
    dtype = np.dtype(dtype)
    return ws.empty(tuple(shape), dtype) if ws is not None else np.empty(shape, dtype)
