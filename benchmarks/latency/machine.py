"""Where a figure was measured. Host latency is not phone latency; the report says so."""

from __future__ import annotations

import os
import platform
import sys

HOST_NOTE = ("Latencies were measured on this host's CPU with LiteRT's CPU kernels; they are not phone "
             "latencies. Quantization often does not speed up x86 hosts while it usually does on phones.")
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")


def machine_info() -> dict:
    from convert.manifest import tool_versions

    model, flags = _cpu()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "vector_extensions": [f for f in _FLAGS if f in flags],
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "packages": tool_versions(),
        "note": HOST_NOTE,
    }


def _cpu() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
                if model and flags and key == "":
                    break
    except OSError:
        pass
    return model, flags
