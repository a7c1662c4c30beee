"""What every command shares: --debug and --quiet, one-line errors and exit codes, the click classes.

A leaf of the CLI package: the command modules (main.py, apps.py, arm64.py) import it; it imports
none of them.
"""

from __future__ import annotations

import functools
import os
import sys

import click

# Before any TensorFlow import: keep its C++ INFO/WARNING lines out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobilepack.cli.console import ProgressLine, native_stderr_silenced  # noqa: E402


def command_options(fn):
    """--debug and --quiet on every command, and the one error-handling policy."""

    @click.option("--debug", is_flag=True, help="Show tracebacks and native (TensorFlow) logs.")
    @click.option("--quiet", "-q", is_flag=True, help="Only errors and the final result.")
    @functools.wraps(fn)
    def wrapper(*args, debug: bool, quiet: bool, **kwargs):
        debug = debug or bool((click.get_current_context().find_root().obj or {}).get("debug"))
        from train.errors import MobilepackError, os_error_message

        ui = ProgressLine(quiet)
        try:
            with native_stderr_silenced(not debug):
                return fn(*args, ui=ui, **kwargs)
        except MobilepackError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # full disk, read-only or forbidden path, busy port: the user's to fix, so exit 2
            if debug:
                raise
            click.echo(f"Error: {os_error_message(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was left half-written.", err=True)
            sys.exit(130)

    return wrapper


class _OneLineUsageErrors:
    """Click prints a usage error as three lines (usage, hint, error); ours is one line and exit 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `mobilepack`: the help, as click shows it
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class Group(_OneLineUsageErrors, click.Group):
    pass


class Command(_OneLineUsageErrors, click.Command):
    pass
