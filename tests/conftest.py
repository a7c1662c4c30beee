"""Shared tiny, seeded, real artifacts: a 16 px digits run, its TFLite dist, a tensor model."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests start local Ray runtimes from this process (test_ray.py); gRPC's fork handlers can kill a child forked
# beside its busy threads before it execs (benchmarks/distributed/ray_executor.py, connect_hint). Read when grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import numpy as np
import pytest

from benchmarks.latency.protocol import LatencyProtocol

import cli_helpers


@pytest.fixture(autouse=True)
def _bad_input_case(request):
    """Tell the bad-input recorder (cli_helpers.record_bad_input) which test is running and how it is marked."""
    marker = request.node.get_closest_marker("bad_input")
    cli_helpers.CURRENT.update(test=request.node.nodeid, marker=(marker.args or ["?"])[0] if marker else None, checks=0)
    yield
    cli_helpers.CURRENT.update(test=None, marker=None, checks=0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A passing bad_input test that recorded no check of its own counts as one case of its marker's surface."""
    report = (yield).get_result()
    if report.when == "call" and report.passed and cli_helpers.CURRENT["marker"] and not cli_helpers.CURRENT["checks"]:
        cli_helpers.record_bad_input(cli_helpers.CURRENT["marker"], "the test itself")


# Files that take minutes run first. xdist (--dist loadfile) hands out whole files in collection order
# (pyproject's --no-loadscope-reorder; by default it sorts files by test count, which put the one-test
# README tour, 220 s, last and left the other worker idle while it ran); the longest first keeps both
# workers busy to the end.
LONGEST_FIRST = ("test_readme.py", "test_ray_cluster.py", "test_zoo_sequence.py", "test_zoo_vision_cnn.py",
                 "test_folder_pipeline.py", "test_report_html.py", "test_zoo_vision_blocks.py", "test_ray_budget.py")


def pytest_collection_modifyitems(items):
    first = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: the rest keep their order


# The emulated ARM64 runtime `make test` prepares (its cache folder), taken before the session
# hides it: a bench under emulation costs 5-20 s, so only the benches that check the ARM64 column
# (tiny_benched and tests/test_arm64.py) name it; every other bench reports the column as skipped.
ARM64_HOME = None


@pytest.fixture(scope="session", autouse=True)
def _arm64_only_where_named(tmp_path_factory):
    global ARM64_HOME
    from benchmarks.arm64.runtime import default_home

    ARM64_HOME = default_home()
    saved = os.environ.get("MOBILEPACK_ARM64_HOME")
    os.environ["MOBILEPACK_ARM64_HOME"] = str(tmp_path_factory.mktemp("no-arm64-runtime"))
    yield
    if saved is None:
        os.environ.pop("MOBILEPACK_ARM64_HOME", None)
    else:
        os.environ["MOBILEPACK_ARM64_HOME"] = saved


@pytest.fixture(scope="session")
def arm64_home(_arm64_only_where_named):
    """The real emulated runtime (set up once into its cache folder; nothing to do when it is there)."""
    from benchmarks.arm64.runtime import setup

    setup(ARM64_HOME, log=lambda m: None)
    return ARM64_HOME


@pytest.fixture(scope="session")
def kotlin_jar(tmp_path_factory):
    """The Android app's pure-Kotlin code and its JVM checks, compiled once (kotlinc takes ~20 s)."""
    from mobilepack.golden import compile_kotlin_checks

    jar = tmp_path_factory.mktemp("kotlin") / "checks.jar"
    try:
        build = compile_kotlin_checks(jar)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    assert build.returncode == 0, build.stderr
    return jar


@pytest.fixture(scope="session")
def fast_latency():
    """Enough runs to exercise the protocol; real figures come from the benchmarks/figures/ scripts."""
    return LatencyProtocol(min_runs=5, min_seconds=0.0, warmup_runs=1, warmup_seconds=0.0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("run") / "digits16"
    train(TrainConfig(img_size=16, epochs=3, seed=1), out, log=lambda m: None, verbose=0)
    return out


@pytest.fixture(scope="session")
def tiny_dist(tiny_run, tmp_path_factory):
    from convert.api import ConvertConfig, convert

    out = tmp_path_factory.mktemp("dist") / "dist"
    convert(tiny_run, out, ConvertConfig(), log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def tiny_benched(tiny_dist, fast_latency, arm64_home, tmp_path_factory):
    """A copy of tiny_dist with the report.json `bench` writes for it (one repetition, one thread, the ARM64
    column on 16 inputs). Read only."""
    import shutil

    from benchmarks.arm64.column import Arm64Options
    from benchmarks.bench import BenchConfig, run_bench

    dist = tmp_path_factory.mktemp("benched") / "dist"
    shutil.copytree(tiny_dist, dist)
    run_bench(dist, BenchConfig(threads=(1,), latency=fast_latency, crosscheck=False, repeat=1,
                                arm64=Arm64Options(samples=16, home=arm64_home)), log=lambda m: None)
    return dist


@pytest.fixture(scope="session")
def benched_fp32(tiny_run, tmp_path_factory):
    """One fp32 .tflite, converted and benched (report.json/md/html): a previous output to break. Copy it."""
    from click.testing import CliRunner

    from convert.api import ConvertConfig, convert
    from mobilepack.cli.main import cli

    dist = tmp_path_factory.mktemp("benched") / "dist"
    convert(tiny_run, dist, ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    result = CliRunner().invoke(cli, ["bench", str(dist), "--runs", "2",
                                      "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--threads", "1",
                                      "--no-crosscheck", "--no-gate", "-q"])
    assert result.exit_code == 0, result.output
    return dist


@pytest.fixture(scope="session")
def tensor_model(tmp_path_factory):
    """A non-image model: 8 features -> 4 classes, random seeded weights."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8,), name="features")
    x = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    path = tmp_path_factory.mktemp("tensor") / "tabular.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="session")
def lambda_model(tmp_path_factory):
    import keras

    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    outputs = keras.layers.Dense(2)(x)
    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="session")
def outlier_run(tiny_run, tmp_path_factory):
    """tiny_run with a hostile weight (train.parity_models.outlier_run): its strongest channel after relu2 is
    scaled by 1000 and back, so plain int8 erases every other channel there and loses tens of pp on digits on
    every CPU, while its float function is tiny_run's. A gate failure forced by design, not by where training
    happened to land."""
    from train.parity_models import outlier_run as make

    return make(tiny_run, tmp_path_factory.mktemp("outlier") / "run")


@pytest.fixture(scope="session")
def outlier_dist(outlier_run, tmp_path_factory):
    """outlier_run's TFLite variants (fp32, fp16, dynamic, int8): model_int8 fails its gate by far. Copy it."""
    from convert.api import ConvertConfig, convert

    out = tmp_path_factory.mktemp("outlier_dist") / "dist"
    convert(outlier_run, out, ConvertConfig(), log=lambda m: None)
    return out


@pytest.fixture
def features_npy(tmp_path):
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32))
    return path
