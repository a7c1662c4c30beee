"""bench --latency-on NODE: every latency measured on one chosen Ray node, one at a time, in fresh processes there.

The node is found before any slow work: by its IP, its node ID (or a unique prefix of it), or a label
`key=value` that `ray start --labels` gave it. After evaluation this bench's workers are killed, and one
meter actor asks for every CPU the node has, so Ray schedules no other task there while it measures; it
first waits until the killed workers' processes on that node have exited. It then does what a local bench
does on this machine: the Keras reference in its own process, each artifact in a fresh
`python -m benchmarks.latency.measure` process (benchmarks/latency/measure.py), Google's tool for the cross-check. The
artifacts arrive as bytes with the manifest's sha256, checked before anything runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.errors import ExecutorError
from benchmarks.latency.protocol import LatencyProtocol, runner_latency
from benchmarks.latency.machine import machine_info
from benchmarks.latency.measure import FreshProcessMeter

NODE_WAIT_S = 120  # for the node's CPUs to come free: longer means other Ray work holds them
EXIT_WAIT_S = 30  # for a killed worker's process to be gone


def find_latency_node(executor, spec: str | None) -> dict | None:
    """The live Ray node --latency-on names (None: measure on this machine); one line listing the nodes if none."""
    if not spec:
        return None
    if executor.name != "ray":
        raise ExecutorError(f"--latency-on {spec}: needs a Ray cluster to find the node in; add --executor ray "
                            "(RAY_ADDRESS) or --executor ray://HOST:PORT")
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if "=" in spec:
        key, _, value = (p.strip() for p in spec.partition("="))
        match, what = [n for n in nodes if (n.get("Labels") or {}).get(key) == value], f"labelled {key}={value}"
    else:
        match = [n for n in nodes if spec in (n.get("NodeManagerAddress"), n.get("NodeManagerHostname"))]
        match = match or [n for n in nodes if n["NodeID"].startswith(spec.lower())]
        what = "at that address or with that node ID"
    if len(match) == 1:
        return match[0]
    if match:
        raise ExecutorError(f"--latency-on {spec}: {len(match)} live nodes match ({'; '.join(map(describe, match))}); "
                            "give a node ID (or a unique prefix) or a label key=value")
    raise ExecutorError(f"--latency-on {spec}: no live Ray node {what}; live nodes: {'; '.join(map(describe, nodes))}")


def describe(node: dict) -> str:
    labels = user_labels(node)
    return (f"{node['NodeID'][:12]} at {node.get('NodeManagerAddress')}, {int(node['Resources'].get('CPU', 0))} CPU"
            + "".join(f", {k}={v}" for k, v in sorted(labels.items())))


def user_labels(node: dict) -> dict:
    """The labels `ray start --labels` gave a node, without Ray's own (ray.io/...)."""
    return {k: v for k, v in (node.get("Labels") or {}).items() if not k.startswith("ray.io/")}


def latency_meter(node: dict | None, executor, jobs, inputs, protocol: LatencyProtocol, names):
    """Where latency is measured: this machine once the executor is closed, or the node once its workers are gone."""
    if node is None:
        executor.close()  # idle Ray processes are contention too: gone before any latency is measured
        return FreshProcessMeter(list(inputs), protocol, names)
    return NodeLatency(node, executor.release(), jobs, inputs, protocol, names)


class NodeMeter:
    """On the node: FreshProcessMeter's measurements, the reference's latency, Google's tool, its machine."""

    def __init__(self, inputs, protocol: dict, names):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._inputs, self._protocol = inputs, LatencyProtocol(**protocol)
        self._meter = FreshProcessMeter(inputs, self._protocol, names)
        self._folder = Path(tempfile.mkdtemp(prefix="mobilepack-latency-"))
        self._paths: dict = {}

    def ready(self, node: dict, workers: list[tuple[str, int]]) -> dict:
        """This node's machine block, once every evaluation worker that ran here has exited."""
        import ray

        here = ray.get_runtime_context().get_node_id()
        pids = [pid for node_id, pid in workers if node_id == here]
        deadline = time.monotonic() + EXIT_WAIT_S
        while any(_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise ExecutorError(f"evaluation workers {pids} on Ray node {here[:12]} did not exit within "
                                    f"{EXIT_WAIT_S} s; latency would be measured beside them")
            time.sleep(0.1)
        labels = user_labels(node)
        return {**machine_info(), "node": {"id": here, "address": node.get("NodeManagerAddress"), "labels": labels,
                                           "evaluation_workers_exited": pids}}

    def measure(self, job, blob_holder: list, kind: str, threads, protocol: dict | None, pin: bool) -> dict:
        return self._meter.measure(kind, self._path(job, blob_holder), threads,
                                   LatencyProtocol(**protocol) if protocol else None, pin)

    def tool_median(self, job, blob_holder: list, ours: dict) -> float:
        return self._meter.tool_median(self._path(job, blob_holder), ours)

    def reference_latency(self, job, blob_holder: list) -> dict:
        from benchmarks.distributed.executor import build_runner

        runner = build_runner(job, path=self._path(job, blob_holder))
        return runner_latency(runner, self._inputs, self._protocol).to_dict()

    def close(self) -> None:
        self._meter.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _path(self, job, blob_holder: list) -> Path:
        if job.sha256 not in self._paths:
            import ray

            from benchmarks.distributed.ray_executor import materialize

            folder = self._folder / str(len(self._paths))
            folder.mkdir()
            self._paths[job.sha256] = materialize(job, ray.get(blob_holder[0]), folder)
        return self._paths[job.sha256]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has exited; only its entry is left
    except OSError:
        return False


class NodeLatency:
    """FreshProcessMeter's interface (measure, tool_median, reference_latency, machine, close), on one Ray node."""

    def __init__(self, node: dict, workers, jobs, inputs, protocol: LatencyProtocol, names):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from benchmarks.distributed.ray_executor import artifact_bytes

        self._ray = ray
        self._jobs = {Path(j.path).resolve(): j for j in jobs}
        self._blobs = {j.sha256: [ray.put(artifact_bytes(j.path))] for j in jobs}
        cpus = node["Resources"].get("CPU", 1)
        actor = ray.remote(NodeMeter).options(
            num_cpus=cpus, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
        self._actor = actor.remote([x[:1] for x in inputs], asdict(protocol), names)
        try:
            self.machine = ray.get(self._actor.ready.remote(node, workers), timeout=NODE_WAIT_S)
        except ray.exceptions.GetTimeoutError:
            self.close(clean=False)  # never placed: nothing on the node to clean, and no one to ask
            raise ExecutorError(f"--latency-on: node {describe(node)} did not free its {cpus:g} CPU(s) for this bench "
                                f"within {NODE_WAIT_S} s (other Ray work holds them); wait, or choose another node") from None
        except ray.exceptions.RayTaskError as exc:
            self.close()
            raise _cause(exc) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def measure(self, kind: str, path, threads, protocol: LatencyProtocol | None = None, pin: bool = False) -> dict:
        job = self._jobs[Path(path).resolve()]
        return self._get(self._actor.measure.remote(job, self._blobs[job.sha256], kind, threads,
                                                    asdict(protocol) if protocol else None, pin))

    def tool_median(self, path, ours: dict) -> float:
        job = self._jobs[Path(path).resolve()]
        return self._get(self._actor.tool_median.remote(job, self._blobs[job.sha256], ours))

    def reference_latency(self, job) -> dict:
        from dataclasses import replace

        return self._get(self._actor.reference_latency.remote(replace(job, local_runner=None), self._blobs[job.sha256]))

    def close(self, clean: bool = True) -> None:
        if getattr(self, "_actor", None) is not None:
            try:
                if clean:  # its temp folders on the node
                    self._ray.get(self._actor.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead actor has nothing left to clean
                pass
            self._ray.kill(self._actor)
            self._actor = None

    def _get(self, ref):
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None


def _cause(exc):
    """The mobilepack error a node raised, as it was raised there; anything else as one line."""
    from benchmarks.distributed.ray_executor import _first_line, own_error

    if (cause := own_error(exc)) is not None:
        return cause
    return ExecutorError(f"--latency-on: the measurement on the Ray node failed: {_first_line(exc)}")
