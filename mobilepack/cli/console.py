"""Terminal concerns of the CLI: progress lines and keeping native log noise off stderr."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings

import click


class ProgressLine:
    """progress(label, done, total) callback: a redrawn bar on a terminal, one line per step otherwise.

    Progress and log lines go to stdout (the live bar to a terminal's stderr), so
    stderr carries only errors: a failed command shows exactly one line there.
    """

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._last: str | None = None
        self._open = False  # a live bar is drawn on the terminal and not finished

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        stream = click.get_text_stream("stderr")
        tty = stream.isatty()
        if tty:
            width = 24
            filled = int(width * done / max(total, 1))
            stream.write(f"\r\x1b[K{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done >= total:
                stream.write("\n")
            stream.flush()
            self._open = done < total
        elif done >= total and label != self._last:
            click.echo(f"{label}: {done}/{total}")
        self._last = label if done >= total else None

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self._open:  # a log line replaces an unfinished bar instead of running into it
            stream = click.get_text_stream("stderr")
            stream.write("\r\x1b[K")
            stream.flush()
            self._open = False
        click.echo(message)


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool):
    """Send C++ log lines (TensorFlow, LiteRT) written to fd 2 into a temp file.

    Python-level messages still reach the real stderr: sys.stderr is pointed at
    a duplicate of the original descriptor while fd 2 is redirected.
    """
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError, io.UnsupportedOperation):
        yield
        return
    sink = tempfile.TemporaryFile()
    uses_fd2 = _uses_fd(sys.stderr, 2)
    old_stderr = sys.stderr
    if uses_fd2:
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved_fd), "wb", buffering=0), write_through=True)
    os.dup2(sink.fileno(), 2)
    try:
        with warnings.catch_warnings():
            for mod in ("tensorflow", "keras", "absl", "coremltools", "ai_edge_litert", "google"):
                warnings.filterwarnings("ignore", module=mod)
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if uses_fd2:
            sys.stderr.close()
            sys.stderr = old_stderr
        sink.close()


def _uses_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
