"""Durability: a killed convert, bench or ship leaves the old output or the new one, complete; writes are
fsynced file, rename, folder, in that order; modes come from the umask without touching it."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convert.api import ConvertConfig, convert
from convert.manifest import load_manifest, verify_artifacts
from fs_helpers import digest, staging_left


def _state(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.6, 1.5])
def test_sigkill_mid_convert(tiny_run, tmp_path, delay):
    out = tmp_path / "dist"
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    before = _state(out)
    proc = subprocess.Popen([sys.executable, "-m", "convert", str(tiny_run), "--out", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_once_staging_appears(proc, tmp_path, ".dist.mobilepack-staging-", delay)  # while the run writes
    manifest = load_manifest(out)
    verify_artifacts(manifest, out)  # every file the manifest names is there and whole
    after = _state(out)
    assert after == before or len(after["artifacts"]) == 4
    # The next run clears what the killed one left behind.
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    assert not list(tmp_path.glob(".dist.mobilepack-staging-*"))
    assert sorted(os.listdir(out)) == sorted(["convert_config.json", "labels.txt", "manifest.json",
                                              "model_fp32.tflite", "preprocessing.json", "reference"])


ROOT = Path(__file__).resolve().parents[1]
def _child(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          check=True)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the system calls")
def test_writes_are_synced_file_rename_folder_in_that_order(tmp_path):
    """What a power cut needs: the data on disk before the rename, the rename on disk (folder fsync) after it."""
    code = ("import sys; from pathlib import Path; from train.fsutil import atomic_write_bytes, staged_directory\n"
            "out = Path(sys.argv[1])\n"
            "atomic_write_bytes(out.parent / 'one.bin', b'1')\n"
            "for text in ('old', 'new'):\n"
            "    with staged_directory(out) as s:\n"
            "        (s / 'sub').mkdir(); atomic_write_bytes(s / 'sub' / 'f.txt', text.encode())\n")
    log = tmp_path / "strace.log"
    traced = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e",
                             "trace=openat,fsync,rename,renameat2,unlink,unlinkat", sys.executable, "-c", code,
                             tmp_path / "out"], cwd=ROOT, capture_output=True, text=True)
    if traced.returncode != 0 and "ptrace" in traced.stderr:
        pytest.skip(f"strace cannot trace here: {traced.stderr.strip()[:200]}")
    assert traced.returncode == 0, traced.stderr
    calls = _calls(log.read_text(), str(tmp_path))
    one, parent, staging = str(tmp_path / "one.bin"), ("fsync", str(tmp_path)), f"{tmp_path}/STAGING"
    assert calls[:3] == [("fsync", one + ".tmp"), ("rename", one), parent]
    first = calls.index(("rename", str(tmp_path / "out")))  # no folder yet: a plain rename
    swap = calls.index(("exchange", ""))  # then the atomic swap with the old one
    tree = {("fsync", f"{staging}/sub/f.txt"), ("fsync", f"{staging}/sub"), ("fsync", staging)}
    for start, end in ((0, first), (first + 1, swap)):  # every file and folder of the new tree, before it goes in
        assert tree <= set(calls[start:end])
        assert calls[end - 1] == ("fsync", staging)
    assert calls[first + 1] == parent and calls[swap + 1] == parent  # the rename itself is on disk
    assert [op for op, _ in calls[swap + 2:]] == ["unlink", "unlink"]  # only then the old folder goes


def _calls(trace: str, root: str) -> list[tuple[str, str]]:
    """(operation, path) of the traced calls under `root`; fds are mapped back to the paths they opened.

    Temp and staging names are normalised: '<file>.tmp' and '<root>/STAGING'.
    """
    import re

    fds, calls = {}, []

    def norm(path: str) -> str:
        path = re.sub(r"/\.out\.mobilepack-staging-\d+", "/STAGING", path)
        return re.sub(r"/\.([^/]+)\.[0-9a-f]{8}\.tmp$", r"/\1.tmp", path)

    for line in trace.splitlines():
        if m := re.search(r'openat\(AT_FDCWD, "([^"]+)".* = (\d+)$', line):
            fds[m[2]] = norm(m[1])
        elif (m := re.search(r"fsync\((\d+)\)\s+= 0", line)) and m[1] in fds:
            calls.append(("fsync", fds[m[1]]))
        elif m := re.search(r'rename\("([^"]+)", "([^"]+)"\)', line):
            calls.append(("rename", norm(m[2])))
        elif "renameat2(" in line and "RENAME_EXCHANGE" in line:
            calls.append(("exchange", ""))
        elif m := re.search(r'unlink(?:at)?\((?:\d+|AT_FDCWD), "([^"]+)"', line) or re.search(r'unlink\("([^"]+)"', line):
            calls.append(("unlink", m[1]))
    return [(op, p) for op, p in calls if op in ("exchange", "unlink") or p.startswith(root)]


@pytest.mark.parametrize("umask", [0o027, 0o002], ids=["umask-027", "umask-002"])
def test_modes_follow_the_umask_which_is_never_touched(umask, tmp_path):
    """New files get 0666 and folders 0777 minus the umask, as any program's would; os.umask is never called."""
    code = ("import os, sys; from pathlib import Path\n"
            "os.umask(int(sys.argv[2]))\n"
            "def tripwire(*a): raise AssertionError('os.umask called: it is process-wide and races other threads')\n"
            "os.umask = tripwire\n"
            "from train.fsutil import atomic_write_bytes, staged_directory\n"
            "out = Path(sys.argv[1])\n"
            "atomic_write_bytes(out.parent / 'file.bin', b'x')\n"
            "with staged_directory(out) as s:\n"
            "    atomic_write_bytes(s / 'inner.bin', b'y')\n"
            "print(oct((out.parent / 'file.bin').stat().st_mode & 0o777), oct(out.stat().st_mode & 0o777),"
            " oct((out / 'inner.bin').stat().st_mode & 0o777))\n")
    printed = _child(code, tmp_path / "out", umask).stdout.split()
    assert printed == [oct(0o666 & ~umask), oct(0o777 & ~umask), oct(0o666 & ~umask)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_killed_between_the_fallback_renames_gets_its_old_folder_back(tmp_path):
    """Without an atomic swap, a kill between `out -> old` and `staging -> out` leaves no `out`: the next write
    puts the old folder back before anything else, so a reader never sees a partial folder."""
    from train.fsutil import staged_directory

    out, pid = tmp_path / "dist", _dead_pid()
    old = tmp_path / f".dist.mobilepack-staging-old-{pid}"
    old.mkdir()
    (old / "manifest.json").write_text("old")
    (tmp_path / f".dist.mobilepack-staging-{pid}").mkdir()  # the killed run's complete new folder
    with pytest.raises(RuntimeError):
        with staged_directory(out):
            assert (out / "manifest.json").read_text() == "old"  # back before the new run writes anything
            raise RuntimeError("this run fails too")
    assert (out / "manifest.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["dist"]


@pytest.mark.slow
def test_sigkill_mid_bench_reports_leaves_one_whole_set(benched_fp32, tmp_path):
    """bench swaps its three reports in as one set: after a kill they are all old or all new."""
    from benchmarks.report.write import markdown
    from benchmarks.row import Report
    from train.fsutil import replace_files

    dist = tmp_path / "dist"
    shutil.copytree(benched_fp32, dist)
    before = digest(dist)
    proc = subprocess.Popen([sys.executable, "-m", "mobilepack", "bench", str(dist), "--runs", "2",
                             "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1",
                             "--threads", "1", "--no-crosscheck", "--no-gate", "-q"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_once_staging_appears(proc, tmp_path, ".dist.mobilepack-staging-", delay=0.03)
    after = digest(dist)
    reports = ("report.json", "report.md", "report.html")
    assert {k: v for k, v in after.items() if k not in reports} == {k: v for k, v in before.items() if k not in reports}
    report = json.loads((dist / "report.json").read_text())
    if any(after[r] != before[r] for r in reports):  # the new set: every file from the same run, complete
        assert all(after[r] != before[r] for r in reports)
        assert (dist / "report.md").read_text() == markdown(Report.from_json(report))
        page = (dist / "report.html").read_text()
        assert report["created_at"] in page and page.rstrip().endswith("</html>")
    manifest = load_manifest(dist)
    assert {r["name"]: r["sha256"] for r in report["artifacts"]} == {a.name: a.sha256 for a in manifest.artifacts}
    verify_artifacts(manifest, dist)
    replace_files(dist, {"report.json": (dist / "report.json").read_bytes()})  # the next write clears what was left
    assert staging_left(tmp_path) == []


@pytest.mark.slow
def test_sigkill_mid_ship_leaves_the_old_or_the_new_assets(benched_fp32, tmp_path):
    from click.testing import CliRunner

    from mobilepack.cli.main import cli

    apps = {}
    for name, samples in (("old", 2), ("new", 6)):  # shipped whole, to know both states the kill may leave
        apps[name] = tmp_path / name / "android_demo"
        shutil.copytree(ROOT / "android_demo", apps[name], ignore=shutil.ignore_patterns("mobilepack"))
        result = CliRunner().invoke(cli, ["ship", str(benched_fp32), "--android", str(apps[name]), "--samples",
                                          str(samples), "-q"])
        assert result.exit_code == 0, result.output
    apps["killed"] = tmp_path / "killed" / "android_demo"
    shutil.copytree(apps["old"], apps["killed"])
    assets = Path("app/src/main/assets/mobilepack")
    old, new = digest(apps["old"] / assets), digest(apps["new"] / assets)
    assert old != new
    proc = subprocess.Popen([sys.executable, "-m", "mobilepack", "ship", str(benched_fp32), "--android",
                             str(apps["killed"]), "--samples", "6", "-q"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_once_staging_appears(proc, apps["killed"] / assets.parent, ".mobilepack.mobilepack-staging-", delay=0.02)
    state = digest(apps["killed"] / assets)
    assert state in (old, new)
    manifest = load_manifest(apps["killed"] / assets)
    verify_artifacts(manifest, apps["killed"] / assets)  # the model file matches the sha256 its manifest gives


STAGING_WAIT_S = 600  # a hang guard: the wait ends when the folder appears or the process exits, however slow


def _kill_once_staging_appears(proc, parent: Path, prefix: str, delay: float) -> None:
    """SIGKILL `proc` `delay` s after its staging folder appears in `parent`: while it writes. Not the
    writability probe (`...-probe-...`), made and removed before any work."""
    deadline = time.monotonic() + STAGING_WAIT_S
    while proc.poll() is None and not any(n.startswith(prefix) and "probe" not in n for n in os.listdir(parent)):
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no {prefix}* folder in {parent} within {STAGING_WAIT_S} s: it hangs")
        time.sleep(0.002)
    time.sleep(delay)
    assert proc.poll() is None, "it finished before it could be killed; the test proves nothing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_reports_are_not_swapped_over_a_dist_a_convert_replaced_meanwhile(tmp_path):
    """bench rebuilds the dist to add its reports; it must not swap back the artifacts a convert just wrote."""
    from train.errors import OutputError
    from train.fsutil import replace_files, staged_directory, swap_lock

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "manifest.json").write_text('{"old": true}')
    (dist / "model.tflite").write_bytes(b"old model")
    measured = hashlib.sha256((dist / "manifest.json").read_bytes()).hexdigest()
    with staged_directory(dist) as stage:  # a convert finishing while bench evaluated
        (stage / "manifest.json").write_text('{"new": true}')
        (stage / "model.tflite").write_bytes(b"new model")
    with pytest.raises(OutputError, match="manifest.json: replaced while this command ran"):
        replace_files(dist, {"report.json": b"{}"}, unchanged={"manifest.json": measured})
    assert (dist / "model.tflite").read_bytes() == b"new model" and not (dist / "report.json").exists()
    replace_files(dist, {"report.json": b"{}"}, unchanged={"manifest.json": hashlib.sha256(b'{"new": true}').hexdigest()})
    assert (dist / "report.json").read_bytes() == b"{}" and (dist / "model.tflite").read_bytes() == b"new model"
    # the swap lock is one per folder and reentrant in a process, so replace_files can hold it across its swap
    with swap_lock(dist), swap_lock(dist):
        pass
