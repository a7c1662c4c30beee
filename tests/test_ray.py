"""bench --executor ray on a real local Ray runtime (ray.init(num_cpus=2)): the same report, faults, bad input.

One Ray runtime serves the whole module; the executor joins it (as it joins a cluster) and leaves it running.
"""

import json
import math
import os
import shutil
import signal
import socket
import sys
import time

import numpy as np
import pytest

from benchmarks.arm64.column import Arm64Options
from benchmarks.bench import BenchConfig, run_bench
from benchmarks.errors import ExecutorError
from benchmarks.distributed.executor import EvalJob, ExecutorSpec, LocalExecutor, parse_executor, shard_bounds
from benchmarks.distributed.ray_executor import RayExecutor, _load, check_workers
from cli_helpers import assert_one_line_error, record_bad_input, run
from convert.manifest import load_manifest
from train.loading import sha256_file

# Where the two reports may differ: when and where they were made, and what was timed (latency is measured
# in fresh processes every run, so it is never the same twice). Everything else must be equal, bit for bit.
TIMING_KEYS = {"created_at", "executor", "latency_ms", "memory", "crosscheck", "gmacs_per_s", "arena_bytes",
               "stability", "pass_seconds", "emulation_seconds"}


def report_differences(a, b, path="", skip=TIMING_KEYS) -> list[str]:
    """Every field where two reports differ, outside the timing ones; floats compared exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b) if k not in skip]
        for k in sorted(set(a) & set(b) - skip):
            out += report_differences(a[k], b[k], f"{path}.{k}", skip)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in report_differences(x, y, f"{path}[{i}]", skip)]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} vs {b!r}"]


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    import ray

    # Started outside the repository, as on a cluster node: workers find mobilepack where it is installed,
    # not through the driver's working folder (Ray puts it first on a worker's sys.path).
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:
        os.chdir(here)
    yield ray
    ray.shutdown()


def test_shards_start_on_batch_boundaries():
    for count, batch, workers, size in [(359, 32, 2, None), (1, 32, 2, None), (5000, 32, 2, None), (100, 7, 3, 10)]:
        bounds = shard_bounds(count, batch, workers, size)
        assert bounds[0][0] == 0 and bounds[-1][1] == count
        assert all(b[0] == a[1] for a, b in zip(bounds, bounds[1:]))  # contiguous, in input order
        assert all(start % batch == 0 for start, _ in bounds)


def test_ray_report_equals_local_report(ray_runtime, tiny_benched, tmp_path, fast_latency, arm64_home):
    """The identity the issue asks for: every figure of a Ray run equals the local run's, bit for bit."""
    local = json.loads((tiny_benched / "report.json").read_text())
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    spec = ExecutorSpec("ray", workers=2, shard_size=64)  # several shards per artifact, so order matters
    start = time.perf_counter()
    remote = run_bench(dist, BenchConfig(threads=(1,), latency=fast_latency, crosscheck=False, repeat=1, executor=spec,
                                         arm64=Arm64Options(samples=16, home=arm64_home)), log=lambda m: None)
    print(f"ray bench of tiny_dist: {time.perf_counter() - start:.1f} s")
    assert local["executor"]["name"] == "local" and remote["executor"]["name"] == "ray"
    artifacts = len(load_manifest(dist).artifacts)
    shards = len(shard_bounds(local["dataset"]["count"], 32, 2, 64))
    assert remote["executor"]["workers"] == 2 and remote["executor"]["shards"] == (artifacts + 1) * shards
    assert report_differences(local, remote) == []
    assert json.loads((dist / "report.json").read_text())["executor"]["name"] == "ray"
    # The comparison is able to fail: one number one ulp off anywhere in the report is found.
    for where in (lambda r: r["artifacts"][-1]["outputs"][0], lambda r: r["reference"]):
        changed = json.loads(json.dumps(remote))
        entry = where(changed)
        key = next(k for k, v in entry.items() if isinstance(v, float))
        entry[key] = math.nextafter(entry[key], math.inf)
        assert len(report_differences(local, changed)) == 1


def _jobs(dist, names=None):
    manifest = load_manifest(dist)
    return [EvalJob(a.name, a.target, a.path(dist), a.sha256, num_threads=1, input_names=["input"])
            for a in manifest.artifacts if names is None or a.name in names]


def test_killed_worker_is_retried_and_changes_nothing(ray_runtime, tiny_dist):
    """SIGKILL one worker while it runs a shard: Ray restarts it, retries the shard, the outputs are the same."""
    jobs = _jobs(tiny_dist)[:2]
    inputs = [np.random.default_rng(3).uniform(0, 255, (3000, 16, 16, 3)).astype(np.float32)]
    expected = LocalExecutor().evaluate(jobs, inputs, 32)
    with RayExecutor.connect(ExecutorSpec("ray", workers=2, shard_size=128)) as executor:
        before = executor.pids()
        killed = []

        def kill_once(name, done, count):  # after the first shard comes back, both workers hold a shard
            if not killed:
                os.kill(before[1], signal.SIGKILL)
                killed.append(before[1])

        results = executor.evaluate(jobs, inputs, 32, kill_once)
        after = executor.pids()
    assert killed and before[1] not in after and before[0] in after  # restarted, not just finished
    for got, want in zip(results, expected):
        assert got.runtime == want.runtime
        assert all(np.array_equal(g, w) for g, w in zip(got.outputs, want.outputs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("args, fragment", [
    pytest.param(["--executor", "spark"], "unknown executor; valid: local, ray", id="executor-unknown"),
    pytest.param(["--executor", "ray://nohost"], "ray://HOST:PORT", id="executor-address-without-port"),
    pytest.param(["--eval-workers", "2"], "needs --executor ray", id="eval-workers-without-ray"),
    pytest.param(["--executor", "ray", "--eval-workers", "0"], ">= 1", id="eval-workers-zero"),
    pytest.param(["--executor", "ray://127.0.0.1:{port}"], "cannot reach a Ray cluster at 127.0.0.1", id="cluster-unreachable"),
])
def test_bad_executor_is_one_line_before_any_work(tiny_benched, tmp_path, monkeypatch, args, fragment):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    before = (dist / "report.json").read_bytes()
    loaded = []

    def load_keras_model(path, **kwargs):  # the first slow step of a bench; stop there if it is reached
        loaded.append(path)
        raise RuntimeError("bench reached the model")

    # "Before any work" checked as such, not as a wall-clock bound (15 s failed beside a TensorFlow conversion)
    monkeypatch.setattr("benchmarks.bench.load_keras_model", load_keras_model)
    result = run("bench", dist, *[a.format(port=_free_port()) for a in args])
    assert not loaded, f"bench loaded {loaded} before refusing {args}"
    assert_one_line_error(result, 2, fragment)
    assert (dist / "report.json").read_bytes() == before


@pytest.mark.bad_input("cli")
def test_executor_ray_without_ray_names_the_extra(tiny_benched, tmp_path, monkeypatch):
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    before = (dist / "report.json").read_bytes()
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does for a package that is not installed
    assert_one_line_error(run("bench", dist, "--executor", "ray"), 2, "pip install 'mobilepack[ray]'")
    assert (dist / "report.json").read_bytes() == before


@pytest.mark.bad_input("api")
def test_workers_with_another_mobilepack_are_refused(ray_runtime, tmp_path):
    """A worker whose Python finds mobilepack 0.0.1 first (a real worker process, another sys.path)."""
    info = tmp_path / "site" / "mobilepack-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mobilepack\nVersion: 0.0.1\n")
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(info.parent), os.environ.get("PYTHONPATH", "")])}}
    with pytest.raises(ExecutorError, match=r"has mobilepack 0\.0\.1, this machine has mobilepack 0\.1\.0") as exc:
        check_workers(ray_runtime, env)
    assert "\n" not in str(exc.value)
    record_bad_input("api", str(exc.value)[:120])


def test_worker_refuses_bytes_that_do_not_match_the_manifest(tiny_dist):
    job = _jobs(tiny_dist)[0]
    blob = job.path.read_bytes()
    with pytest.raises(ExecutorError, match="the manifest says"):
        _load(job, blob[:-1] + bytes([blob[-1] ^ 1]))
    assert _load(job, blob)[0].runtime == "litert" and sha256_file(job.path) == job.sha256


@pytest.mark.bad_input("api")
def test_executor_values():
    assert parse_executor("local") == ExecutorSpec("local")
    assert parse_executor("ray", environ={}) == ExecutorSpec("ray")
    assert parse_executor("ray", 2, environ={"RAY_ADDRESS": "ray://h:10001"}) == ExecutorSpec("ray", "ray://h:10001", 2)
    with pytest.raises(ExecutorError, match="unknown executor"):
        parse_executor("dask")


def test_a_lost_ray_client_server_names_the_head_side_fix():
    """Ray's own message when the head's proxy lost this client's server (seen beside a CPU hog, a gRPC fork
    crash on the head: benchmarks/distributed/ray_executor.py, connect_hint) gets its fix, not the address/token advice."""
    from benchmarks.distributed.ray_executor import connect_hint

    lost = ("Initialization failure from server:\nTraceback (most recent call last):\n  File \".../proxier.py\", "
            "line 773, in Datapath\nRuntimeError: Starting Ray client server failed. See "
            "ray_client_server_23000.err for detailed logs.")
    assert "GRPC_ENABLE_FORK_SUPPORT=false ray start --head" in connect_hint(lost)
    assert "run again" in connect_hint(lost) and "address" not in connect_hint(lost)
    assert connect_hint("Connection refused").startswith("check the address")


@pytest.mark.bad_input("cli")
def test_executor_without_a_budget_is_refused(tiny_run, tmp_path):
    assert_one_line_error(run("convert", tiny_run, "--executor", "ray", "--out", tmp_path / "o"), 2, "add --max-drop")
    assert not (tmp_path / "o").exists()


def test_core_ml_folders_travel_as_bytes_and_give_the_local_outputs(ray_runtime, tiny_run, tmp_path):
    """An .mlpackage is a folder: it goes to the worker as a tar, is checked against its sha256, and runs the same."""
    from convert.api import ConvertConfig, convert

    manifest = convert(tiny_run, tmp_path / "cm", ConvertConfig(targets=("coreml",), quantizations=("fp16",)),
                       log=lambda m: None)
    jobs = [EvalJob(a.name, a.target, a.path(tmp_path / "cm"), a.sha256) for a in manifest.artifacts]
    assert jobs[0].path.is_dir()
    inputs = [np.random.default_rng(5).uniform(0, 255, (160, 16, 16, 3)).astype(np.float32)]
    expected = LocalExecutor().evaluate(jobs, inputs, 32)
    with RayExecutor.connect(ExecutorSpec("ray", workers=2, shard_size=32)) as executor:
        results = executor.evaluate(jobs, inputs, 32)
    for got, want in zip(results, expected):
        assert (got.runtime, got.precision) == (want.runtime, want.precision) == ("coreml-reference", "gpu/ane")
        assert all(np.array_equal(g, w) for g, w in zip(got.outputs, want.outputs))
