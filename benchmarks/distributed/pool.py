"""Which executor a bench or a budget search gets: the local one, or Ray's after checking the cluster.

The one module that knows both implementations; executor.py (the interface and the local executor)
and ray_executor.py import neither this nor each other's users.
"""

from __future__ import annotations

from benchmarks.distributed.executor import ExecutorSpec, LocalExecutor


def open_executor(spec: ExecutorSpec, custom_objects: tuple[str, ...] = ()):
    """The executor for a spec; a Ray one checks the cluster first (reachable, same mobilepack), before slow work.

    `custom_objects` (--custom-objects specs) are the modules Ray workers must import to load the Keras model.
    """
    if spec.kind == "local":
        return LocalExecutor()
    from benchmarks.distributed.ray_executor import RayExecutor
    from benchmarks.distributed.ray_setup import custom_objects_env

    return RayExecutor.connect(spec, custom_objects_env(custom_objects))
