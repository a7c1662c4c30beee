"""bench on a real two-node Ray cluster started by `ray start`, with token authentication on, joined by a second
driver (a `mobilepack bench` process) by address (RAY_ADDRESS) and through Ray Client (ray://HOST:PORT);
--latency-on the second node; a model with a custom layer evaluated on the workers.

One cluster serves the module: a head with 2 CPUs and a node with 1 CPU labelled mobilepack-test=latency, both
on this machine, each a `ray start --block` process; teardown kills exactly their process trees. A bench that
fails shows the tails of Ray's logs (cluster.explain): the session folder that holds them is deleted at
teardown (MP_KEEP_RAY_LOGS=DIR copies it out first).
"""

import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run
from test_ray import TIMING_KEYS, report_differences

LABEL = "mobilepack-test=latency"
RAY = str(Path(sys.executable).parent / "ray")


START_WAIT_S = 300  # two `ray start`s on a busy 2-core machine: ~30 s idle, minutes beside a TensorFlow conversion


def _free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range and outside Ray's own ranges (workers
    10002-19999, Ray Client specific servers 23000-23999). A bind-to-0 port is an ephemeral one: between this
    check and `ray start`'s bind, any process's next outgoing connection may be given it."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(24000, min(ephemeral, 32768)), 200):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # Ray binds every interface
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 24000-{min(ephemeral, 32768)}")


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def _ray_logs(sessions: Path, home: Path, lines: int = 25) -> str:
    """The tails of what says why a bench through the cluster failed: each Ray Client server's log (the proxy's,
    and each client's own server, whose .err says why it exited), both `ray start`s' output, and the error lines
    of the drivers' core-worker logs (a signal received, a lost GCS)."""
    folders = list(sessions.glob("session_[0-9]*/logs"))  # not session_latest, a link to the same folder
    out = []
    for path in [*sorted(p for d in folders for p in d.glob("ray_client_server*")), home / "head.log",
                 home / "node.log", *sorted(p for d in folders for p in d.glob("python-core-driver-*"))]:
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        if path.name.startswith("python-core-driver-"):
            text = [ln for ln in text if re.match(r"\[[^]]* [EF] \d+ \d+\]", ln)]
        if text:
            out += [f"--- {path.name}, last {min(lines, len(text))} lines:", *text[-lines:]]
    return "\n".join(out) or f"(no Ray logs in {sessions})"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    # Ray's session folder holds Unix sockets, whose paths may not exceed 107 bytes: pytest-xdist's temp paths do.
    sessions = Path(tempfile.mkdtemp(prefix="mpray-", dir="/tmp"))
    # Its own HOME: no ~/.ray/auth_token of this machine's user is found, only the token given here.
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), HOME=str(tmp))
    gcs, client = _free_port(), _free_port()
    # GRPC_ENABLE_FORK_SUPPORT=false: the head's Ray Client proxy forks each client's server from a busy gRPC
    # process, and gRPC's fork handlers kill ~3% of such children before they exec; the bench then fails with
    # "Starting Ray client server failed" (benchmarks/distributed/ray_executor.py, connect_hint, has the evidence).
    common = {"cwd": tmp, "env": dict(env, GRPC_ENABLE_FORK_SUPPORT="false"), "stderr": subprocess.STDOUT,
              "start_new_session": True}
    head = subprocess.Popen([RAY, "start", "--head", "--block", "--num-cpus", "2", "--port", str(gcs),
                             "--ray-client-server-port", str(client), "--temp-dir", str(sessions),
                             "--include-dashboard", "false", "--disable-usage-stats"],
                            stdout=open(tmp / "head.log", "w"), **common)
    node = subprocess.Popen([RAY, "start", "--block", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "1",
                             "--labels", LABEL], stdout=open(tmp / "node.log", "w"), **common)
    procs = [node, head]
    try:
        deadline = time.monotonic() + START_WAIT_S
        while True:  # ready: `ray status` lists both nodes, and the Ray Client port answers
            try:
                status = subprocess.run([RAY, "status", "--address", f"127.0.0.1:{gcs}"], env=env,
                                        capture_output=True, text=True, timeout=120)
                said = status.stdout + status.stderr
            except subprocess.TimeoutExpired:
                said = "`ray status` did not answer within 120 s"
            if said.count(" node_") >= 2 and _answers(client):
                break
            assert head.poll() is None and node.poll() is None, \
                f"`ray start` exited: head {head.poll()}, node {node.poll()}\n{_ray_logs(sessions, tmp)}"
            assert time.monotonic() < deadline, (
                f"cluster not ready within {START_WAIT_S} s (Ray Client port answers: {_answers(client)})\n"
                f"{said[-2000:]}\n{_ray_logs(sessions, tmp)}")
            time.sleep(1)

        def explain(result) -> str:
            """A failed bench's assertion message: its exit code and output, then Ray's logs."""
            return (f"exit {result.exit_code}\n--- stderr:\n{result.stderr[-3000:]}\n--- stdout:\n"
                    f"{result.output[-1500:]}\n{_ray_logs(sessions, tmp)}")

        yield SimpleNamespace(env=env, gcs=f"127.0.0.1:{gcs}", client=f"ray://127.0.0.1:{client}", home=tmp,
                              explain=explain)
    finally:
        pids = [p for proc in procs for p in [proc.pid, *_descendants(proc.pid)]]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=30)
        if os.environ.get("MP_KEEP_RAY_LOGS"):
            shutil.copytree(sessions, os.environ["MP_KEEP_RAY_LOGS"] + f"/{os.getpid()}", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock", "sockets"), symlinks=True)
        shutil.rmtree(sessions, ignore_errors=True)


def _bench(cluster, dist, *args, env=None, cwd=None):
    """`mobilepack bench` as its own process: a second driver of the cluster, as a user would run it."""
    env = dict(cluster.env, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "mobilepack", "bench", str(dist), "--threads", "1", "--runs", "5",
                           "--min-seconds", "0", "--warmup-seconds", "0",
                           "--repeat", "1", "--no-crosscheck", "--arm64-samples", "16", "-q", *map(str, args)],
                          env=env, cwd=cwd or cluster.home, capture_output=True, text=True, timeout=600)
    return SimpleNamespace(exit_code=proc.returncode, output=proc.stdout, stderr=proc.stderr)


def test_second_driver_joins_by_address_and_measures_latency_on_a_labelled_node(cluster, tiny_benched, tmp_path,
                                                                                arm64_home):
    """RAY_ADDRESS=HOST:PORT --executor ray, latency on the 1-CPU node: the report equals a local run's."""
    local = json.loads((tiny_benched / "report.json").read_text())
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    start = time.perf_counter()
    result = _bench(cluster, dist, "--executor", "ray", "--latency-on", LABEL,
                    env={"RAY_ADDRESS": cluster.gcs, "MOBILEPACK_ARM64_HOME": str(arm64_home)})
    print(f"bench by address, latency on a node: {time.perf_counter() - start:.1f} s")
    assert result.exit_code == 0, cluster.explain(result)
    report = json.loads((dist / "report.json").read_text())
    assert report["executor"]["address"] == cluster.gcs and report["executor"]["workers"] == 3
    assert report_differences(local, report, skip=TIMING_KEYS | {"machine"}) == []
    node = report["machine"]["node"]
    assert node["labels"] == {"mobilepack-test": "latency"} and report["machine"]["cpu"] == local["machine"]["cpu"]
    # Three workers on three CPUs: one evaluated on the 1-CPU node; the meter saw it exit before measuring.
    assert len(node["evaluation_workers_exited"]) == 1
    assert not Path(f"/proc/{node['evaluation_workers_exited'][0]}").exists()
    measured = [e["pid"] for a in report["artifacts"] for e in a["latency_ms"]]
    assert node["evaluation_workers_exited"][0] not in measured
    assert f"latency measured on Ray node {node['id'][:12]}" in (dist / "report.md").read_text()
    import jsonschema

    schema = json.loads((Path(__file__).parent.parent / "benchmarks" / "report" / "report.schema.json").read_text())
    jsonschema.validate(report, schema)


def test_second_driver_joins_through_ray_client(cluster, tiny_benched, tmp_path, arm64_home):
    local = json.loads((tiny_benched / "report.json").read_text())
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    start = time.perf_counter()
    result = _bench(cluster, dist, "--executor", cluster.client, env={"MOBILEPACK_ARM64_HOME": str(arm64_home)})
    print(f"bench through ray://: {time.perf_counter() - start:.1f} s")
    assert result.exit_code == 0, cluster.explain(result)
    report = json.loads((dist / "report.json").read_text())
    assert report["executor"]["address"] == cluster.client
    assert report_differences(local, report) == [] and "node" not in report["machine"]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("node, fragment", [
    pytest.param("gpu=none", "no live Ray node labelled gpu=none; live nodes: ", id="unknown-label"),
    pytest.param("{ip}", "2 live nodes match", id="address-of-two-nodes"),  # both nodes run on this machine
])
def test_latency_on_a_node_that_is_not_one_lists_the_live_nodes(cluster, tiny_benched, tmp_path, node, fragment):
    from ray.util import get_node_ip_address

    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    before = (dist / "report.json").read_bytes()
    node = node.format(ip=get_node_ip_address())
    result = _bench(cluster, dist, "--executor", cluster.client, "--latency-on", node)
    assert f"--latency-on {node}: {fragment}" in result.stderr, cluster.explain(result)  # not a failed connection
    assert_one_line_error(result, 2, f"--latency-on {node}: {fragment}", "mobilepack-test=latency")
    assert (dist / "report.json").read_bytes() == before


@pytest.mark.bad_input("cli")
def test_a_token_without_token_mode_is_refused_before_connecting(tiny_benched, tmp_path, monkeypatch):
    """Ray would not send it (an explicit address never turns token mode on) and time out 20-30 s later."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert_one_line_error(run("bench", tiny_benched, "--executor", "ray://127.0.0.1:1"), 2,
                          "RAY_AUTH_TOKEN is set but RAY_AUTH_MODE is not", "export RAY_AUTH_MODE=token")


@pytest.mark.bad_input("cli")
def test_latency_on_needs_a_ray_executor(tiny_benched):
    assert_one_line_error(run("bench", tiny_benched, "--latency-on", LABEL), 2, "needs a Ray cluster")


CUSTOM_LAYER = '''
import keras


@keras.saving.register_keras_serializable(package="mptest")
class Scale(keras.layers.Layer):
    """A learned per-feature scale: a layer Keras cannot rebuild without this module."""

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer=keras.initializers.Constant(1.5))

    def call(self, x):
        return x * self.scale
'''


def test_custom_layer_benches_on_ray_workers_as_locally(cluster, tmp_path, monkeypatch):
    """--custom-objects mp_scale_layer:Scale, the module in the current folder: shipped to the workers."""
    import keras

    from convert.api import ConvertConfig, convert

    (tmp_path / "mp_scale_layer.py").write_text(CUSTOM_LAYER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from mp_scale_layer import Scale

    keras.utils.set_random_seed(4)
    inputs = keras.Input((8,), name="features")
    outputs = keras.layers.Dense(4, activation="softmax")(Scale()(keras.layers.Dense(16, activation="relu")(inputs)))
    keras.Model(inputs, outputs).save(tmp_path / "scaled.keras")
    dist = tmp_path / "dist"
    convert(tmp_path / "scaled.keras", dist, ConvertConfig(targets=("tflite",), quantizations=("fp32",),
                                                           custom_objects=("mp_scale_layer:Scale",)), log=lambda m: None)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "val.npz", x=rng.normal(size=(96, 8)).astype(np.float32), y=rng.integers(0, 4, 96))
    args = ["--data", tmp_path / "val.npz", "--custom-objects", "mp_scale_layer:Scale", "--no-arm64", "--no-gate"]
    local = run("bench", dist, "--threads", "1", "--runs", "5",
                "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-crosscheck", "--arm64-samples", "16",
                "-q", *args)
    assert local.exit_code == 0, local.output + local.stderr
    local_report = json.loads((dist / "report.json").read_text())
    result = _bench(cluster, dist, "--executor", cluster.client, *args, cwd=tmp_path)
    assert result.exit_code == 0, cluster.explain(result)
    remote = json.loads((dist / "report.json").read_text())
    assert remote["executor"]["name"] == "ray" and remote["reference"]["accuracy"] is not None
    assert report_differences(local_report, remote) == []
