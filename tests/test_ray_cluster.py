"""bench on a real two-node Ray cluster started by `ray start`, with token authentication on, joined by a second
driver (a `mobilepack bench` process) by address (RAY_ADDRESS) and through Ray Client (ray://HOST:PORT);
--latency-on the second node; a model with a custom layer evaluated on the workers.

One cluster serves the module: a head with 2 CPUs and a node with 1 CPU labelled mobilepack-test=latency, both
on this machine, each a `ray start --block` process; teardown kills exactly their process trees.
"""

import json
import os
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    common = {"cwd": tmp, "env": env, "stderr": subprocess.STDOUT, "start_new_session": True}
    head = subprocess.Popen([RAY, "start", "--head", "--block", "--num-cpus", "2", "--port", str(gcs),
                             "--ray-client-server-port", str(client), "--temp-dir", str(sessions),
                             "--include-dashboard", "false", "--disable-usage-stats"],
                            stdout=open(tmp / "head.log", "w"), **common)
    node = subprocess.Popen([RAY, "start", "--block", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "1",
                             "--labels", LABEL], stdout=open(tmp / "node.log", "w"), **common)
    procs = [node, head]
    try:
        deadline = time.monotonic() + 90
        while True:  # both nodes registered: `ray status` lists them
            status = subprocess.run([RAY, "status", "--address", f"127.0.0.1:{gcs}"], env=env, capture_output=True,
                                    text=True, timeout=60)
            if status.stdout.count(" node_") >= 2:
                break
            assert time.monotonic() < deadline, (status.stdout + status.stderr)[-2000:]
            assert head.poll() is None and node.poll() is None, (tmp / "head.log").read_text()[-2000:]
            time.sleep(1)
        yield SimpleNamespace(env=env, gcs=f"127.0.0.1:{gcs}", client=f"ray://127.0.0.1:{client}", home=tmp)
    finally:
        pids = [p for proc in procs for p in [proc.pid, *_descendants(proc.pid)]]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(sessions, ignore_errors=True)


def _bench(cluster, dist, *args, env=None, cwd=None):
    """`mobilepack bench` as its own process: a second driver of the cluster, as a user would run it."""
    env = dict(cluster.env, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "mobilepack", "bench", str(dist), "--threads", "1", "--runs", "5",
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
    assert result.exit_code == 0, result.stderr[-3000:]
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

    schema = json.loads((Path(__file__).parent.parent / "benchmarks" / "report.schema.json").read_text())
    jsonschema.validate(report, schema)


def test_second_driver_joins_through_ray_client(cluster, tiny_benched, tmp_path, arm64_home):
    local = json.loads((tiny_benched / "report.json").read_text())
    dist = tmp_path / "dist"
    shutil.copytree(tiny_benched, dist)
    start = time.perf_counter()
    result = _bench(cluster, dist, "--executor", cluster.client, env={"MOBILEPACK_ARM64_HOME": str(arm64_home)})
    print(f"bench through ray://: {time.perf_counter() - start:.1f} s")
    assert result.exit_code == 0, result.stderr[-3000:]
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
    local = run("bench", dist, "--threads", "1", "--runs", "5", "--repeat", "1", "--no-crosscheck", "--arm64-samples", "16",
                "-q", *args)
    assert local.exit_code == 0, local.output + local.stderr
    local_report = json.loads((dist / "report.json").read_text())
    result = _bench(cluster, dist, "--executor", cluster.client, *args, cwd=tmp_path)
    assert result.exit_code == 0, result.stderr[-3000:]
    remote = json.loads((dist / "report.json").read_text())
    assert remote["executor"]["name"] == "ray" and remote["reference"]["accuracy"] is not None
    assert report_differences(local_report, remote) == []
