"""Runs under the emulated aarch64 python: numpy and ai_edge_litert only, nothing of mobilepack.

    python3.11 child.py REQUEST.json

The request lists jobs: a .tflite, its input tensors as .npy files (already quantized by the host,
keyed by tensor index), the output tensor indices, a batch size and a folder for the raw outputs.
Raw outputs go back as .npy so the host compares integer outputs bit for bit. Each job's invoke
time is written too; it is emulator time, a cost, never a latency.
"""

import json
import platform
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def run_job(job: dict) -> dict:
    interp = Interpreter(model_path=job["model"], num_threads=job.get("threads", 1))
    inputs = {int(k): np.load(v, allow_pickle=False) for k, v in job["inputs"].items()}
    n = len(next(iter(inputs.values())))
    batch = min(job["batch"], n)
    chunks, sized, invoke_s = {i: [] for i in job["outputs"]}, None, 0.0
    for start in range(0, n, batch):
        part = {i: x[start:start + batch] for i, x in inputs.items()}
        size = len(next(iter(part.values())))
        if size != sized:  # resize only when the batch changes (the last one may be shorter)
            for i, x in part.items():
                interp.resize_tensor_input(i, list(x.shape))
            interp.allocate_tensors()
            sized = size
        for i, x in part.items():
            interp.set_tensor(i, x)
        t0 = time.perf_counter()
        interp.invoke()
        invoke_s += time.perf_counter() - t0
        for i in job["outputs"]:
            chunks[i].append(interp.get_tensor(i).copy())
    files = {}
    for i, parts in chunks.items():
        files[str(i)] = f"{job['out']}/out_{i}.npy"
        np.save(files[str(i)], np.concatenate(parts))
    return {"outputs": files, "invoke_seconds": invoke_s}


def main(argv) -> int:
    with open(argv[0]) as f:
        request = json.load(f)
    results = {"machine": platform.machine(), "jobs": {}}  # the host checks it ran on aarch64, not x86
    for job in request["jobs"]:
        try:
            results["jobs"][job["name"]] = run_job(job)
        except Exception as exc:  # one artifact the ARM build refuses must not hide the others' figures
            first = (str(exc).strip().splitlines() or [""])[0]
            results["jobs"][job["name"]] = {"error": f"{type(exc).__name__}: {first}"}
    with open(request["result"], "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
