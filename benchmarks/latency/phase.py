"""The latency phase of a bench: every artifact x thread count, `repeat` fresh processes each, interleaved.

Repetitions go A B C, A B C, ... so slow drift of the machine (a neighbour starting, the CPU warming)
hits every artifact alike instead of whichever happened to be measured last. Google's tool, when it
cross-checks a row, runs right after each of our repetitions of that row, so both harnesses sample the
same minutes of the machine: on a 2-core host, 2-thread latency flips between two modes (about x2 apart)
for minutes at a time, whichever harness measures it. Latency is never measured concurrently: one process
at a time.
"""

from __future__ import annotations

import time

from benchmarks.latency.crosscheck import compare, tool_runs
from benchmarks.latency.protocol import LatencyProtocol
from benchmarks.latency.measure import FreshProcessMeter
from benchmarks.latency.repeat import combine

EVALUATOR_NOTE = ("timed through mobilepack's numpy Core ML reference evaluator on this host: "
                  "it checks numerics, it is not device latency")


def measure_all(runtime: dict[str, str], dist, artifacts, config, progress,
                meter: FreshProcessMeter) -> dict[str, dict]:
    """{artifact name: the row's latency fields} for every artifact ({name: the runtime its figures came from}),
    measured `config.repeat` times."""
    plan = [(a, t) for a in artifacts for t in (config.threads if a.target == "tflite" else (None,))]
    reps: dict[tuple[str, int | None], list[dict]] = {(a.name, t): [] for a, t in plan}
    tool: dict[tuple[str, int | None], list[tuple[float, float]]] = {(a.name, t): [] for a, t in plan}
    for rep in range(config.repeat):
        for a, t in plan:
            label = f"{a.name} latency" + (f" @{t}t" if t else "") + (f" #{rep + 1}" if config.repeat > 1 else "")
            _step(progress, label, 0)
            kind = "litert" if a.target == "tflite" else "coreml"
            reps[(a.name, t)].append(meter.measure(kind, a.path(dist), t, None if t else _evaluator_protocol(config),
                                                   pin=config.pin))
            _step(progress, label, 1)
            if a.target == "tflite" and config.crosscheck:
                tool[(a.name, t)].append(_tool_run(meter, a.path(dist), reps[(a.name, t)][-1], label, progress))
    out = {}
    for a in artifacts:
        entries = [combine(reps[(a.name, t)]) for aa, t in plan if aa is a]
        if runtime[a.name] == "coreml-reference":
            for e in entries:  # a numerics check on few runs, never a latency verdict: its spread warns of nothing
                e["unstable"] = False
        checks = ([compare(e, tool[(a.name, e["threads"])], tool_runs(reps[(a.name, e["threads"])][0]["runs"])) for e in entries]
                  if a.target == "tflite" and config.crosscheck else [])
        note = None if a.target == "tflite" else (EVALUATOR_NOTE if runtime[a.name] == "coreml-reference"
                                                  else "timed through Core ML on this Mac")
        out[a.name] = {"latency_ms": entries, "latency_note": note, "memory": entries[0]["memory"], "crosscheck": checks}
    return out


def _evaluator_protocol(config) -> LatencyProtocol:
    """The evaluator is slow on big models; a few runs give its median without dominating the bench."""
    return LatencyProtocol(min_runs=max(5, config.latency.min_runs // 5), min_seconds=0.0, warmup_runs=1,
                           warmup_seconds=0.0)


def _tool_run(meter, path, ours: dict, label: str, progress) -> tuple[float, float]:
    """(median ms, start time) of one process of Google's tool, where the meter measures (here, or a Ray node)."""
    label = label.replace(" latency", " google tool")
    _step(progress, label, 0)
    started = time.time()
    median = meter.tool_median(path, ours)
    _step(progress, label, 1)
    return median, started


def _step(progress, label: str, done: int) -> None:
    if progress:
        progress(label, done, 1)
