"""`mobilepack arm64 setup`: the commands around the phone's own kernels (registered by cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import command_options


@click.group("arm64")
def arm64_group():
    """LiteRT's ARM64 build under emulation: what `bench` uses for its ARM64 column.

    Example:

        mobilepack arm64 setup
    """


@arm64_group.command("setup")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Cache folder (default: $MOBILEPACK_ARM64_HOME or ~/.cache/mobilepack/arm64), "
                   "e.g. --home /var/cache/mobilepack-arm64.")
@click.option("--force", is_flag=True, help="Rebuild even when a finished setup is there, e.g. after a mirror change.")
@command_options
def arm64_setup_cmd(home, force, ui):
    """Prepare the emulated ARM64 runtime: aarch64 CPython 3.11 and ai-edge-litert under qemu-aarch64-static.

    Downloads Debian's arm64 python3.11 through a private apt configuration (never
    `dpkg --add-architecture`) and the pinned aarch64 wheels, pins the CPU model
    (Cortex-A76) and ships its /proc/cpuinfo. About a minute and 250 MB; a second run does
    nothing; an interrupted one is detected and redone. Needs qemu-user-static.

    Example:

        mobilepack arm64 setup --home ~/.cache/mobilepack/arm64
    """
    from benchmarks.arm64_setup import setup

    setup(home, log=ui.log, force=force)
