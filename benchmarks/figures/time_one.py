"""One bare timing loop in a fresh process: the child that `python -m benchmarks.figures.fidelity --api-gap` starts.

    python -m benchmarks.figures.time_one MODEL.tflite THREADS {interpreter,compiled,compiled-flags0} RUNS

Prints one JSON line: {"ms": median milliseconds per call} (and, for the Interpreter API, "partitions":
how many XNNPack partitions it made of the graph). Its own process because a live interpreter's idle
thread pool slows the next one in the same process, as in `bench`.
"""

from __future__ import annotations

import json
import time

import numpy as np
from benchmarks.figures.common import figure_parser

APIS = ("interpreter", "compiled", "compiled-flags0")


def time_one(path: str, threads: int, api: str, runs: int) -> dict:
    """Median of `runs` bare calls after 20 warm-ups, in this (fresh) process."""
    from collections import Counter

    def median_ms(call) -> float:
        for _ in range(20):
            call()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    if api == "interpreter":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        partitions = Counter(op["op_name"] for op in interp._get_ops_details())["DELEGATE"]
        return {"ms": median_ms(interp.invoke), "partitions": partitions}
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.environment import Environment, EnvironmentOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    flags = 0 if api == "compiled-flags0" else None  # None: LiteRT's defaults; 0: XNNPack's int8 kernels off
    model = CompiledModel.from_file(path, environment=Environment.create(options=EnvironmentOptions()),
                                    options=Options(hardware_accelerators=HardwareAccelerator(HardwareAccelerator.CPU),
                                                    cpu_options=CpuOptions(num_threads=threads, xnnpack_flags=flags)))
    sig = list(model.get_signature_list())[0]
    ins = {n: model.create_input_buffer_by_name(sig, n) for n in model.get_input_tensor_details(sig)}
    outs = {n: model.create_output_buffer_by_name(sig, n) for n in model.get_output_tensor_details(sig)}
    return {"ms": median_ms(lambda: model.run_by_name(sig, ins, outs))}


def main() -> None:
    ap = figure_parser("time_one", __doc__)
    ap.add_argument("model", help="a .tflite file")
    ap.add_argument("threads", type=int)
    ap.add_argument("api", choices=APIS, help="LiteRT's Interpreter API, or its CompiledModel API (xnnpack_flags=0: "
                                              "XNNPack's int8 kernels off)")
    ap.add_argument("runs", type=int, help="timed calls after 20 warm-ups")
    args = ap.parse_args()
    print(json.dumps(time_one(args.model, args.threads, args.api, args.runs)))


if __name__ == "__main__":
    main()
