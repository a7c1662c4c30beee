"""`mobilepack ship` and `mobilepack serve`: the commands that put artifacts into apps and behind HTTP (registered by
main.py)."""

from __future__ import annotations

from pathlib import Path

import click

from mobilepack.cli.common import command_options


@click.command("ship")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--android", type=click.Path(path_type=Path), default=None, help="The android_demo app folder.")
@click.option("--ios", type=click.Path(path_type=Path), default=None, help="The ios_demo app folder.")
@click.option("--artifact", "artifacts", multiple=True, metavar="NAME",
              help="Ship this artifact instead of the report's recommendation (once per platform).")
@click.option("--force", is_flag=True, help="Ship an artifact even though its gate failed.")
@click.option("--samples", type=click.IntRange(min=0), default=10, show_default=True,
              help="Test-split images bundled as the app's samples, at their original size with the contract's "
                   "pixels for the app's launch check. Example: --samples 20")
@command_options
def ship_cmd(dist, android, ios, artifacts, force, samples, ui):
    """Copy the artifact that passed its gate, its labels, manifest, preprocessing and samples into the apps.

    The artifact is the report's recommendation per platform (run `mobilepack bench` first) unless
    --artifact names one; an artifact whose gate failed is refused unless --force.

    Example:

        mobilepack ship dist --android android_demo --ios ios_demo
    """
    from convert.errors import UsageError
    from mobilepack.ship import ShipConfig, ship

    apps = {p: d for p, d in (("android", android), ("ios", ios)) if d is not None}
    if not apps:
        raise UsageError("nothing to ship into: give --android android_demo and/or --ios ios_demo")
    ship(dist, ShipConfig(apps=apps, artifacts=tuple(artifacts), force=force, samples=samples), log=ui.log)


@click.command("serve")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--artifact", default=None, metavar="NAME", help="Default artifact for /predict (default: the float one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port; 0 takes a free one and prints it, e.g. --port 0.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Worker threads of the waitress server (each keeps its own interpreters).")
@click.option("--max-pixels", type=int, default=None, metavar="N",
              help="Largest image decoded, in pixels (default 4194304 = 2048x2048); larger get 413, "
                   "e.g. --max-pixels 12000000 for 12-megapixel photos.")
@command_options
def serve_cmd(dist, artifact, host, port, workers, max_pixels, ui):
    """Serve DIST's .tflite artifacts over HTTP: /predict, /healthz, /v1/models, /openapi.json and a test page.

    POST /predict takes JSON {"input": [...]} in the model's input shape ({"inputs": {NAME: [...]}}
    for several inputs) or a multipart image upload (field 'image', preprocessed as the benchmark
    does); ?artifact=NAME picks the artifact.
    The artifacts' bytes are read and sha256-checked once at start and served from memory.

    Example:

        mobilepack serve dist --port 8000 --workers 4
    """
    from mobilepack.serve.server import Listen, serve

    serve(dist, artifact, Listen(host, port, workers), log=click.echo, max_pixels=max_pixels)
