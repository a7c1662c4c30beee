"""convert --max-drop --executor ray: candidates converted and judged concurrently on a real local Ray runtime.

The result must be a local run's: the same artifacts (same sha256), the same search trail, the same log
lines, the same files, the same error. One Ray runtime serves the module, as in test_ray.py.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, run
from convert.manifest import load_manifest
from test_ray import ray_runtime  # noqa: F401  the module's Ray runtime (ray.init(num_cpus=2))

# The outlier run (tests/conftest.py): plain int8 loses tens of pp on any CPU, so the tflite family always needs
# more than one rung, and its later rungs are the healthy tiny_run's.
FAMILIES = ["--target", "tflite,coreml", "--coreml-format", "mlprogram,neuralnetwork", "--max-drop", "5"]


def _search(out: Path, result) -> dict:
    """What a run leaves: its artifacts (sha256, search trail), every file, and its log lines."""
    assert result.exit_code == 0, result.output + result.stderr
    return {"artifacts": [(a.name, a.sha256, a.notes["search"]) for a in load_manifest(out).artifacts],
            "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != "manifest.json"),
            "log": result.output.replace(str(out), "OUT").splitlines()}


@pytest.fixture(scope="module")
def local_search(outlier_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "dist"
    start = time.perf_counter()
    searched = _search(out, run("convert", outlier_run, *FAMILIES, "--executor", "local", "--out", out))
    print(f"local budget search of the outlier run: {time.perf_counter() - start:.1f} s")
    [tflite] = [trail for _, _, trail in searched["artifacts"] if trail[0]["candidate"] == "int8"]
    assert len(tflite) > 1 and not tflite[0]["within_budget"], tflite  # forced by the outlier, on every CPU
    return searched


def test_ray_budget_search_equals_a_local_one(ray_runtime, outlier_run, local_search, tmp_path):  # noqa: F811
    out = tmp_path / "dist"
    start = time.perf_counter()
    remote = _search(out, run("convert", outlier_run, *FAMILIES, "--executor", "ray", "--out", out))
    print(f"ray budget search of the outlier run: {time.perf_counter() - start:.1f} s")
    assert remote["artifacts"] == local_search["artifacts"]  # sha256 and every figure of the trail
    assert remote["files"] == local_search["files"]  # no candidate a local run would have deleted
    assert remote["log"] == local_search["log"]


def _descendants_titled(title: str) -> list[int]:
    """Processes of this test's Ray runtime (descendants of this process) whose title starts with `title`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            pid = int(entry)
            while pid > 1 and pid != os.getpid():
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if pid == os.getpid() and cmd.startswith(title):
            found.append(int(entry))
    return found


def test_worker_killed_mid_conversion_is_retried_and_changes_nothing(ray_runtime, outlier_run, local_search,  # noqa: F811
                                                                     tmp_path):
    """SIGKILL a worker while it converts a candidate: Ray restarts it and redoes that candidate."""
    killed, finished = [], threading.Event()

    def kill_one_busy_worker():
        # Until the search ends, however long a busy machine makes it: a fixed deadline could end first.
        while not killed and not finished.is_set():
            busy = _descendants_titled("ray::SearchWorker.run")  # Ray's title while the worker runs a call
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.1)  # a call converts a candidate (seconds); a scan of /proc costs ~10 ms of CPU here

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    out = tmp_path / "dist"
    # One family (tflite, which needs several rungs), to keep the test short; families are searched independently.
    result = run("convert", outlier_run, "--target", "tflite", "--max-drop", "5", "--executor", "ray", "--out", out)
    finished.set()
    killer.join(timeout=30)
    remote = _search(out, result)
    assert killed, "no worker was seen converting"
    [tflite] = [a for a in local_search["artifacts"] if a[2][0]["candidate"] == "int8"]
    assert remote["artifacts"] == [tflite]


@pytest.mark.bad_input("cli")
def test_failing_search_on_ray_says_what_a_local_one_says(ray_runtime, tiny_run, tmp_path):  # noqa: F811
    """Both families miss; the local run stops at the first one, so must the Ray run, with the same line."""
    args = ["--target", "coreml", "--coreml-format", "mlprogram,neuralnetwork", "--quant", "fp16", "--min-sqnr", "200"]
    said = {}
    for executor in ("local", "ray"):
        result = run("convert", tiny_run, *args, "--executor", executor, "--out", tmp_path / executor)
        assert_one_line_error(result, 1, "mlprogram: no candidate stays within SQNR >= 200 dB", "fp16: SQNR ")
        assert not (tmp_path / executor).exists()
        said[executor] = result.stderr
    assert said["ray"] == said["local"]
