"""What a bench needs before it uses a Ray cluster: token authentication set up, the user's custom objects shipped."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.errors import ExecutorError


def check_auth_env(environ=None) -> None:
    """Token authentication when joining by address: Ray sends its token only when RAY_AUTH_MODE=token.

    ray.init() turns token mode on by itself only for a cluster it starts or finds locally (`address` None
    or "auto": ray/_private/worker.py, init(), before ensure_token_if_auth_enabled); for an explicit address
    it reads RAY_AUTH_MODE alone, so a RAY_AUTH_TOKEN without it is silently unused and the cluster's GCS
    answers InvalidAuthToken until ray.init gives up (20-30 s later, with a message that does not say why).
    """
    environ = os.environ if environ is None else environ
    token = next((k for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if environ.get(k)), None)
    if token and not environ.get("RAY_AUTH_MODE"):
        raise ExecutorError(f"{token} is set but RAY_AUTH_MODE is not: Ray ignores the token when it joins a cluster "
                            "by address; export RAY_AUTH_MODE=token as well")


def auth_hint(environ=None) -> str:
    environ = os.environ if environ is None else environ
    if (environ.get("RAY_AUTH_MODE") or "").lower() == "token":
        return "check that RAY_AUTH_TOKEN is the head's (`ray get-auth-token` on the head prints it)"
    return ("if the cluster uses token authentication, export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the output of "
            "`ray get-auth-token` on the head>")


def custom_objects_env(specs) -> dict | None:
    """A runtime_env that ships the --custom-objects modules found in the current folder to every Ray worker.

    Locally they are imported from the current folder first (train.loading.import_user_module); a worker has
    no such folder, so each one's file (or package folder) travels as a Ray `py_modules` entry. A module
    installed elsewhere must be installed on every node too, like mobilepack.
    """
    import importlib
    import sys

    cwd, ship = Path.cwd().resolve(), []
    for name in sorted({spec.split(":")[0].split(".")[0] for spec in specs}):
        module = sys.modules.get(name) or importlib.import_module(name)
        where = Path(next(iter(getattr(module, "__path__", [])), None) or module.__file__).resolve()
        if where.is_relative_to(cwd) and str(where) not in ship:
            ship.append(str(where))
    return {"py_modules": ship} if ship else None


def quiet_ray_client() -> None:
    """Keep a Ray Client driver's stderr to bench's own lines.

    A client streams the server's log records to this process at INFO (ray/util/client/worker.py sets the
    level when it connects, so a level set here is overwritten): warnings of Ray's own, such as the
    server's "SIGTERM handler is not set", would appear around bench's one-line errors. A filter stays.
    """
    import logging

    stream = logging.getLogger("ray.util.client.logsclient")
    if not any(isinstance(f, _OnlyErrors) for f in stream.filters):
        stream.addFilter(_OnlyErrors())


class _OnlyErrors:
    @staticmethod
    def filter(record) -> bool:
        import logging

        return record.levelno >= logging.ERROR
