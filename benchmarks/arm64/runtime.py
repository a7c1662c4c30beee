"""`mobilepack arm64 setup`: LiteRT's aarch64 build under qemu-user, in a cache folder.

What a phone runs is LiteRT's ARM64 kernels. They run here under `qemu-aarch64-static` with an
aarch64 CPython 3.11 taken from Debian's arm64 packages and the aarch64 `ai-edge-litert` wheel.
Measured traps this module exists to avoid:

- LiteRT's CPU detection reads /proc/cpuinfo; under qemu it sees the host's x86 file and
  segfaults. The sysroot (qemu's -L) carries an ARM cpuinfo whose CPU part matches the pinned
  -cpu model; a mismatch gives SIGILL.
- `-cpu max` computes wrong int8 results; `cortex-a76` matches x86 bit for bit through XNNPack.
  Cortex-A76 also has FEAT_FP16, the fp16 arithmetic phones use for fp16 inference.

The Debian packages come through a private apt configuration (own state, cache and sources
list), never `dpkg --add-architecture` on the host. The runtime is built in a staging folder and
renamed into place with a stamp, so an interrupted setup is detected and redone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from train.errors import MobilepackError

CPU_MODEL = "cortex-a76"
CPU_PART = "0xd0b"  # Cortex-A76's MIDR part number: what LiteRT's cpuinfo parser expects for -cpu cortex-a76
DEBIAN_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6")  # apt resolves the rest
WHEELS = ("ai-edge-litert==2.3.0", "numpy==2.4.6")  # the same LiteRT and numpy as the host venv
LAYOUT = "1"  # bump when the folder layout changes: a stamp of another layout is redone
STAMP = "ready.json"
QEMU = "qemu-aarch64-static"


class Arm64SetupError(MobilepackError):
    """The emulated ARM64 runtime cannot be prepared or does not start."""


def default_home() -> Path:
    """$MOBILEPACK_ARM64_HOME, else ~/.cache/mobilepack/arm64 (outside the repo: 250-600 MB)."""
    env = os.environ.get("MOBILEPACK_ARM64_HOME")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mobilepack" / "arm64"


def pins() -> dict:
    return {"layout": LAYOUT, "cpu": CPU_MODEL, "cpu_part": CPU_PART, "debian_packages": list(DEBIAN_PACKAGES),
            "wheels": list(WHEELS), "python": "3.11"}


def runtime_dir(home: Path) -> Path:
    return Path(home) / "runtime"


def read_stamp(home: Path) -> dict | None:
    """The stamp of a finished setup with today's pins, else None (missing, interrupted or outdated)."""
    try:
        stamp = json.loads((runtime_dir(home) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if stamp.get("pins") == pins() else None


def cpuinfo_text(cores: int = 4) -> str:
    """An aarch64 /proc/cpuinfo of Cortex-A76 cores, as the kernel prints it."""
    block = ("processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
             "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: 0x4\nCPU part\t: {CPU_PART}\nCPU revision\t: 1\n\n")
    return "".join(block.format(n=n) for n in range(cores))


def setup(home: Path | None = None, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Prepare the runtime under `home` (idempotent); returns its folder."""
    home = Path(home or default_home())
    final = runtime_dir(home)
    if not force and read_stamp(home):
        log(f"arm64 runtime ready in {final} (nothing to do)")
        return final
    qemu = shutil.which(QEMU)
    if not qemu:
        raise Arm64SetupError(f"{QEMU} not found: install it with `apt-get install qemu-user-static` "
                              "(or `make system-deps`), then run `mobilepack arm64 setup` again")
    home.mkdir(parents=True, exist_ok=True)
    staging = home / "runtime.partial"
    if staging.exists():
        log(f"a previous setup was interrupted ({staging}); starting it again")
        shutil.rmtree(staging)
    if final.exists():
        log(f"{final} is incomplete or outdated; rebuilding it")
    staging.mkdir()
    debs = _download_debs(staging, home / "apt", log)
    _unpack(debs, staging / "sysroot", log)
    _install_wheels(staging / "site", log)
    proc = staging / "sysroot" / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text(cpuinfo_text())
    versions = _smoke_test(qemu, staging, log)
    (staging / STAMP).write_text(json.dumps({"pins": pins(), "versions": versions, "debs": sorted(p.name for p in debs)},
                                            indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    log(f"arm64 runtime ready in {final}")
    return final


def _host_mirror() -> tuple[str, str]:
    """The host's Debian mirror and release (the per-project sources list points at the same mirror)."""
    uri = "http://deb.debian.org/debian"
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        m = (re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M)
             or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s", text, re.M))
        if m:
            uri = m.group(1)
            break
    codename = "bookworm"
    try:
        m = re.search(r"^VERSION_CODENAME=(\w+)", Path("/etc/os-release").read_text(), re.M)
        codename = m.group(1) if m else codename
    except OSError:
        pass
    return uri, codename


def _apt_config(apt: Path) -> Path:
    """A private apt configuration: arm64 only, own state and cache, own sources list."""
    uri, codename = _host_mirror()
    for sub in ("state/lists/partial", "cache/archives/partial", "etc"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "state" / "status").touch()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (apt / "etc" / "sources.list").write_text(f"deb [arch=arm64 signed-by={keyring}] {uri} {codename} main\n")
    conf = apt / "etc" / "apt.conf"
    conf.write_text("\n".join([
        'APT::Architecture "arm64";', 'APT::Architectures { "arm64"; };',
        f'Dir::State "{apt}/state";', f'Dir::State::status "{apt}/state/status";',
        f'Dir::Cache "{apt}/cache";', f'Dir::Etc::SourceList "{apt}/etc/sources.list";',
        f'Dir::Etc::SourceParts "{apt}/etc/none";', f'Dir::Etc::Preferences "{apt}/etc/none";',
        f'Dir::Etc::PreferencesParts "{apt}/etc/none";', 'APT::Install-Recommends "false";',
        'Debug::NoLocking "true";', ""]))
    return conf


def _run(cmd: list[str], what: str, env: dict | None = None, timeout: int = 900) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except FileNotFoundError as exc:
        raise Arm64SetupError(f"{what}: {cmd[0]} not found; install it (Debian: apt-get install {cmd[0]})") from exc
    except subprocess.TimeoutExpired as exc:
        raise Arm64SetupError(f"{what}: no result after {timeout} s; check the network and run setup again") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        raise Arm64SetupError(f"{what} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}; "
                              "run `mobilepack arm64 setup` again once fixed")
    return proc.stdout


def _download_debs(staging: Path, apt: Path, log) -> list[Path]:
    conf = _apt_config(apt)
    env = dict(os.environ, APT_CONFIG=str(conf), DEBIAN_FRONTEND="noninteractive")
    log("arm64 setup 1/4: reading the Debian arm64 package index")
    _run(["apt-get", "-q", "update"], "apt-get update (arm64 index)", env)
    log(f"arm64 setup 2/4: downloading {', '.join(DEBIAN_PACKAGES)} and their dependencies (arm64)")
    _run(["apt-get", "-q", "-y", "--download-only", "install", *DEBIAN_PACKAGES], "apt-get download (arm64)", env)
    archives = apt / "cache" / "archives"
    debs = sorted(archives.glob("*_arm64.deb")) + sorted(archives.glob("*_all.deb"))
    if not debs:
        raise Arm64SetupError(f"apt downloaded no arm64 packages into {apt}/cache/archives; check the mirror")
    return debs


def _unpack(debs: list[Path], sysroot: Path, log) -> None:
    log(f"arm64 setup 3/4: unpacking {len(debs)} packages into {sysroot}")
    sysroot.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(sysroot)], f"unpacking {deb.name}")


def _install_wheels(site: Path, log) -> None:
    log(f"arm64 setup 4/4: fetching the aarch64 wheels {', '.join(WHEELS)}")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(site),
          "--platform", "manylinux_2_27_aarch64", "--python-version", "3.11", "--implementation", "cp",
          "--abi", "cp311", "--only-binary=:all:", *WHEELS], "pip (aarch64 wheels)")


def qemu_command(root: Path, qemu: str = QEMU) -> tuple[list[str], dict]:
    """The command line and environment that run the aarch64 python of the runtime in `root`."""
    sysroot = root / "sysroot"
    env = {"PYTHONPATH": str(root / "site"), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": str(root), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    return [qemu, "-cpu", CPU_MODEL, "-L", str(sysroot), str(sysroot / "usr" / "bin" / "python3.11")], env


def _smoke_test(qemu: str, root: Path, log) -> dict:
    cmd, env = qemu_command(root, qemu)
    code = ("import json, platform, numpy, ai_edge_litert, importlib.metadata as m; print(json.dumps("
            "{'machine': platform.machine(), 'python': platform.python_version(), 'numpy': numpy.__version__, "
            "'ai_edge_litert': m.version('ai-edge-litert')}))")
    out = _run([*cmd, "-c", code], "starting the emulated python", env, timeout=300)
    versions = json.loads(out.strip().splitlines()[-1])
    log(f"emulated {versions['machine']} python {versions['python']}, ai-edge-litert {versions['ai_edge_litert']}, "
        f"numpy {versions['numpy']}")
    return versions
