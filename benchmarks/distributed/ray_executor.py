"""Accuracy evaluation on Ray: one actor per worker, artifact x shard tasks, outputs back in input order.

Artifacts travel as bytes through the object store, once each, with the sha256 the manifest
recorded; a worker checks it before it loads anything, and keeps the last few models it loaded so
the shards of one artifact that land on it reuse one interpreter. Workers are restarted and their
task retried by Ray when they die (`max_restarts`, `max_task_retries`), so a lost node or a killed
process costs time, not the report.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.errors import ExecutorError
from benchmarks.distributed.executor import RAY_EXTRA, EvalJob, EvalResult, ExecutorSpec, build_runner, shard_bounds
from benchmarks.distributed.ray_setup import auth_hint, check_auth_env, quiet_ray_client

PROBE_TIMEOUT_S = 120  # a worker on a cold node imports Ray and starts Python; more is a stuck cluster
CONNECT_TIMEOUT_S = 3.0
KEEP_LOADED = 2  # models a worker keeps: the one it runs and the one before (shards interleave at the seam)
RUNTIME_PACKAGES = ("mobilepack", "ai-edge-litert", "tensorflow", "keras", "coremltools", "numpy")


def _import_ray(spec: ExecutorSpec):
    # A local cluster (--executor ray without an address) is forked from this process once gRPC is loaded, and
    # gRPC's fork handlers can kill such a child before it execs (connect_hint); grpc reads this at import.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor {spec.describe()} needs Ray, an optional extra: {RAY_EXTRA}") from None
    return ray


def check_reachable(address: str) -> None:
    """A plain TCP connect to the cluster's port, a few seconds at most: ray.init would retry for a minute."""
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    if hostport in ("auto", "local") or ":" not in hostport:
        return  # Ray finds the cluster itself (a running local `ray start`); ray.init says if it cannot
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
        raise ExecutorError(f"--executor {address}: cannot reach a Ray cluster at {host}:{port} ({reason}); "
                            "start it with `ray start --head` on that node, or check the address and firewall") from None


def package_versions() -> dict:
    """The versions a worker's numbers depend on; a worker with others may compute other numbers."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def check_workers(ray, runtime_env: dict | None = None) -> None:
    """One probe per live node: each must have this mobilepack and these runtimes, or the report could differ."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    want = package_versions()
    probe = ray.remote(num_cpus=0)(package_versions)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                          runtime_env=runtime_env).remote() for n in nodes]
    try:
        answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise ExecutorError(f"Ray workers did not answer within {PROBE_TIMEOUT_S} s; check `ray status` "
                            "on the head node") from None
    except ray.exceptions.RayError as exc:
        raise ExecutorError(f"Ray workers cannot run mobilepack ({_first_line(exc)}); install "
                            f"mobilepack=={want['mobilepack']} on every node") from None
    for node, found in zip(nodes, answers):
        for name, mine in want.items():
            if found.get(name) != mine:
                where = node.get("NodeManagerAddress", node["NodeID"][:8])
                have = "no " + name if found.get(name) is None else f"{name} {found[name]}"
                raise ExecutorError(f"Ray worker on {where} has {have}, this machine has {name} {mine}; install "
                                    f"{name}=={mine} on every node so the report matches a local run")


def connect_hint(message: str) -> str:
    """The next step for a failed ray.init, from Ray's message.

    "Starting Ray client server failed": the head's Ray Client proxy forks each client's own server from a process
    whose gRPC threads are busy, and gRPC's fork handlers (on by default, grpcio 1.85) can kill that child before
    it execs (grpc/grpc#43055): its ray_client_server_230NN.err stays empty and the kernel logs a segfault in a
    cygrpc thread. Forking beside busy gRPC threads killed 2-3% of children here (24 and 30 of 1,000, 6 and 8 of
    300; AMD EPYC), and none of 2,300 with GRPC_ENABLE_FORK_SUPPORT=false in the forking process's environment.
    """
    if "Starting Ray client server failed" in message:
        return ("the head's Ray Client proxy lost the process it started for this client, most likely gRPC's fork "
                "crash (grpc/grpc#43055): run again, and start the head with GRPC_ENABLE_FORK_SUPPORT=false "
                "in its environment (`GRPC_ENABLE_FORK_SUPPORT=false ray start --head ...`)")
    return f"check the address; {auth_hint()}"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def own_error(exc: BaseException) -> BaseException | None:
    """The error a Ray task raised when it is one of mobilepack's own (train, convert, benchmarks), to raise
    here as a local run would; None for anything else, which the caller turns into one line."""
    cause = getattr(exc, "cause", None)
    return cause if cause is not None and type(cause).__module__.split(".")[0] in ("train", "benchmarks", "convert") \
        else None


def artifact_bytes(path: Path) -> bytes:
    """A file's bytes, or a folder (.mlpackage) as an uncompressed tar in sorted order."""
    path = Path(path)
    if not path.is_dir():
        return path.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            tar.add(f, arcname=f"{path.name}/{f.relative_to(path).as_posix()}", recursive=False)
    return buf.getvalue()


class EvalWorker:
    """Runs shards; loads each model once (checked against its sha256) and keeps the last KEEP_LOADED."""

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._loaded: OrderedDict = OrderedDict()  # key -> (runner, temp folder or None)

    def pid(self) -> int:
        return os.getpid()

    def where(self) -> tuple[str, int]:
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(self, tag, job: EvalJob, blob_holder: list, inputs: list[np.ndarray], bounds: tuple[int, int],
            batch_size: int) -> tuple[object, tuple[str, str | None], list[np.ndarray], float]:
        """(tag, runtime, outputs, seconds this worker spent on the shard [start, stop) of the inputs): the rest
        of the wall time is Ray's."""
        start, stop = bounds
        import time

        from benchmarks.runners import predict_batched

        began = time.perf_counter()
        runner = self._runner(job, blob_holder[0])
        out = predict_batched(runner, [x[start:stop] for x in inputs], batch_size)
        return tag, (runner.runtime, getattr(runner, "precision", None)), out, time.perf_counter() - began

    def _runner(self, job: EvalJob, blob_ref):
        key = (job.sha256, job.target, job.num_threads)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key][0]
        import ray

        self._loaded[key] = _load(job, ray.get(blob_ref))
        while len(self._loaded) > KEEP_LOADED:
            _, (_, folder) = self._loaded.popitem(last=False)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        return self._loaded[key][0]


def _load(job: EvalJob, blob: bytes):
    """A runner from bytes that arrived through the object store, after checking them."""
    if job.target == "tflite":
        _check(job, hashlib.sha256(blob).hexdigest())
        return build_runner(job, content=blob), None
    folder = Path(tempfile.mkdtemp(prefix="mobilepack-ray-"))
    path = materialize(job, blob, folder)
    if job.target == "keras":  # Keras reads the whole file into memory: the copy can go
        runner = build_runner(job, path=path)
        shutil.rmtree(folder, ignore_errors=True)
        return runner, None
    return build_runner(job, path=path), folder  # Core ML may read its weights lazily: keep them


def materialize(job: EvalJob, blob: bytes, folder: Path) -> Path:
    """The artifact written into `folder` from its bytes (an .mlpackage from its tar), checked against its sha256."""
    from train.loading import sha256_file

    if job.path.suffix == ".mlpackage":
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(folder, filter="data")
    else:
        (folder / job.path.name).write_bytes(blob)
    path = folder / job.path.name
    _check(job, sha256_file(path) if path.is_dir() else hashlib.sha256(blob).hexdigest())
    return path


def _check(job: EvalJob, got: str) -> None:
    if got != job.sha256:
        raise ExecutorError(f"{job.name}: the bytes a Ray worker received hash to {got[:12]}..., the manifest says "
                            f"{job.sha256[:12]}...; re-run bench (the object store or the network damaged them)")


class RayExecutor:
    """Artifact x shard tasks on an actor pool; one runtime for the whole bench."""

    name = "ray"

    def __init__(self, ray, spec: ExecutorSpec, started: bool):
        self._ray, self.spec, self._started = ray, spec, started
        self.address = spec.address
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.workers = spec.workers or max(1, cpus)
        if self.workers > cpus:
            self.close()
            raise ExecutorError(f"--eval-workers {self.workers}: the Ray cluster has {cpus} CPU(s); give at most "
                                f"{cpus}, e.g. --eval-workers {max(1, cpus)}")
        # Started at the first evaluation: until then the CPUs stay free (the budget search on Ray uses its own workers).
        self._actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(EvalWorker)
        self._actors = []
        self.shards = 0
        self.busy_s = 0.0  # worker time spent loading and predicting, summed over shards (for the overhead figure)

    @classmethod
    def connect(cls, spec: ExecutorSpec, runtime_env: dict | None = None) -> "RayExecutor":
        """Ray importable, the cluster reachable, its workers on this mobilepack: all before any slow work.

        `runtime_env` becomes the job's (ray.init): Ray uploads local py_modules only at the job level.
        """
        ray = _import_ray(spec)
        if spec.address:
            check_auth_env()
            check_reachable(spec.address)
        started = not ray.is_initialized()
        if started:
            # Ray Client (ray://) forwards these to the server's ray.init, and says so at INFO: ERROR hides that too.
            quiet = {"log_to_driver": False, "logging_level": "ERROR"}
            if (spec.address or "").startswith("ray://"):
                quiet_ray_client()
            else:
                quiet["include_dashboard"] = False
            try:  # the job's runtime_env (the --custom-objects modules) reaches every worker, the latency node's too
                ray.init(address=spec.address, runtime_env=runtime_env, **quiet)
            except Exception as exc:  # Ray's own connection and version errors: one line
                raise ExecutorError(f"--executor {spec.describe()}: Ray could not connect: {_first_line(exc)}; "
                                    f"{connect_hint(str(exc))}") from None
        elif runtime_env:
            raise ExecutorError("--custom-objects on Ray: this process joined Ray before bench did, so bench cannot "
                                "ship the modules; install them on every node, or let bench connect")
        try:
            check_workers(ray)
        except ExecutorError:
            if started:
                ray.shutdown()
            raise
        return cls(ray, spec, started)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        for a in getattr(self, "_actors", []):
            self._ray.kill(a)
        self._actors = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()

    def _pool(self) -> list:
        if not self._actors:
            self._actors = [self._actor.remote() for _ in range(self.workers)]
        return self._actors

    def release(self) -> list[tuple[str, int]]:
        """Kill the evaluation workers, keep the connection (latency on a node follows); where each one ran."""
        where = self._ray.get([a.where.remote() for a in self._actors])
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
        return where

    def pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self._pool()])

    def evaluate(self, jobs: list[EvalJob], inputs: list[np.ndarray], batch_size: int,
                 progress=None) -> list[EvalResult]:
        ray = self._ray
        from ray.util import ActorPool

        count = len(inputs[0])
        bounds = shard_bounds(count, batch_size, self.workers, self.spec.shard_size)
        inputs_ref = ray.put(list(inputs))  # once: every shard reads its slice from the object store
        blobs = [[ray.put(artifact_bytes(job.path))] for job in jobs]  # nested: fetched only by a worker that loads
        tasks = [(j, s) for j in range(len(jobs)) for s in range(len(bounds))]  # artifact-major: loads are reused
        sent = [replace(job, local_runner=None) for job in jobs]
        pool = ActorPool(self._pool())
        parts: dict = {}
        done = [0] * len(jobs)
        try:
            # Unordered: a worker takes the next shard as soon as it is free; the tag puts every shard in its place.
            for (j, s), kind, out, busy in pool.map_unordered(
                    lambda actor, t: actor.run.remote(t, sent[t[0]], blobs[t[0]], inputs_ref, bounds[t[1]], batch_size),
                    tasks):
                parts[j, s] = (kind, out)  # kind: (runtime, precision)
                self.busy_s += busy
                done[j] += bounds[s][1] - bounds[s][0]
                if progress:
                    progress(jobs[j].name, done[j], count)
        except ray.exceptions.RayTaskError as exc:
            if (cause := own_error(exc)) is not None:
                raise cause from None
            raise ExecutorError(f"a Ray worker failed: {_first_line(exc)}; run with --executor local to see it "
                                "here") from None
        self.shards += len(tasks)
        results = []
        for j in range(len(jobs)):
            (runtime, precision), first = parts[j, 0]
            outputs = [np.concatenate([parts[j, s][1][k] for s in range(len(bounds))]) for k in range(len(first))]
            results.append(EvalResult(runtime, outputs, precision))
        return results
