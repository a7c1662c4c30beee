"""Load on `mobilepack serve`: a soak of mixed requests from concurrent clients, then schemathesis.

    python -m benchmarks.figures.serve_load [--dist dist] [--clients 8] [--seconds 60] [--warmup 10]
                                            [--requests N] [--workers 4] [--fuzz-examples 100]

Starts `python -m mobilepack serve DIST --port 0` in its own process on loopback, so its RSS is
the server's alone. Each client sends, interleaved, valid JSON tensors and PNG uploads of the
held-out test split of the run the dist was converted from (each must get 200 and the prediction
LiteRT gives from the bytes the server reports serving) and bad requests of every kind, oversized
ones included (each must get its documented 4xx). After --warmup seconds of that load, the soak
runs --seconds more; --requests N runs N requests instead, without warm-up (a quick check).

Prints requests/s, p50/p99 latency, the 4xx and 5xx counts, per kind; the server's RSS at start,
after warm-up and at the end; then schemathesis against the same server: the number of generated
requests and failures. Exits 1 on any error on a valid request, any 5xx, a bad request answered
with another status, RSS growing over 10% after warm-up, or a schemathesis failure. Stops the
server itself (SIGINT, as Ctrl-C does).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.figures import serve_mix
from benchmarks.figures.common import figure_parser

RSS_GROWTH_LIMIT = 0.10


def start_server(dist: Path, workers: int, log) -> tuple[subprocess.Popen, str]:
    """`mobilepack serve` on a free loopback port; its URL from the line it prints.

    stderr goes to `log`, a file: a pipe nobody reads would fill with waitress's queue warnings
    under load and stall the server.
    """
    command = [sys.executable, "-m", "mobilepack", "serve", str(dist), "--port", "0", "--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        log.seek(0)
        sys.exit(f"mobilepack serve did not start: {line}{log.read()}")
    return proc, "http://" + line.split("http://", 1)[1].split()[0]


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send(url: str, req: serve_mix.Request) -> tuple[int, bytes]:
    http = urllib.request.Request(url + req.path, data=req.body, headers={"Content-Type": req.content_type})
    try:
        with urllib.request.urlopen(http, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:  # refused, reset: counted as a failure of the server
        return 0, str(exc).encode()


class Tally:
    """Per-kind counts and latencies of the measured requests; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter] = defaultdict(Counter)
        self.wrong: list[str] = []  # a valid request not answered right, a bad one with another status

    def add(self, req: serve_mix.Request, status: int, body: bytes, ms: float) -> None:
        group = req.kind if req.kind in ("json", "upload") else "bad"
        problem = None
        if status != req.status:
            problem = f"{req.kind}: {status} instead of {req.status}: {body[:200]!r}"
        elif req.want is not None and json.loads(body)["prediction"] != req.want:
            problem = f"{req.kind}: prediction differs from LiteRT's {req.want}: {body[:200]!r}"
        with self.lock:
            self.ms[group].append(ms)
            self.status[group][status] += 1
            if problem:
                self.wrong.append(problem)


def load(url: str, mix, clients: int, until: float | None, requests: int | None, tally: Tally | None) -> int:
    """`clients` threads sending the interleaved mix until the deadline or the request count; returns sent."""
    counter, lock = iter(range(requests if requests is not None else 2**62)), threading.Lock()
    sent = 0

    def client() -> None:
        nonlocal sent
        while until is None or time.perf_counter() < until:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            req = serve_mix.schedule(*mix, k)
            t0 = time.perf_counter()
            status, body = send(url, req)
            if tally is not None:
                tally.add(req, status, body, (time.perf_counter() - t0) * 1e3)
            with lock:
                sent += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent


def report(tally: Tally, wall: float, clients: int, workers: int, rss: dict[str, float], gate_rss: bool) -> bool:
    """Prints the soak's figures; True when it met every goal."""
    n = sum(len(v) for v in tally.ms.values())
    everything = np.concatenate([np.asarray(v) for v in tally.ms.values()])
    print(f"{n} requests in {wall:.0f} s from {clients} clients, {workers} server threads: {n / wall:.0f} requests/s, "
          f"p50 {np.percentile(everything, 50):.1f} ms, p99 {np.percentile(everything, 99):.1f} ms "
          f"(loopback on this host, {os.cpu_count()} cores)")
    for group in ("json", "upload", "bad"):
        ms = np.asarray(tally.ms[group])
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(tally.status[group].items()))
        print(f"  {group:<7} {len(ms):>6} requests  p50 {np.percentile(ms, 50):7.1f} ms  p99 "
              f"{np.percentile(ms, 99):7.1f} ms  statuses {codes}")
    every = sum(tally.status.values(), Counter())
    n4xx = sum(c for s, c in every.items() if 400 <= s < 500)
    n5xx = sum(c for s, c in every.items() if s >= 500 or s == 0)
    valid_errors = sum(1 for w in tally.wrong if w.startswith(("json:", "upload:")))
    print(f"4xx {n4xx}, 5xx or no answer {n5xx}; errors on valid requests {valid_errors}; bad requests "
          f"answered otherwise than documented {len(tally.wrong) - valid_errors}")
    for problem in tally.wrong[:5]:
        print(f"  {problem}")
    growth = rss["end"] / rss["warm"] - 1
    print(f"server RSS: {rss['start']:.1f} MiB at start, {rss['warm']:.1f} MiB after warm-up, {rss['end']:.1f} MiB "
          f"at the end: {growth:+.1%} after warm-up (goal <= {RSS_GROWTH_LIMIT:.0%}{'' if gate_rss else ', not gated without warm-up'})")
    return not tally.wrong and n5xx == 0 and (growth <= RSS_GROWTH_LIMIT or not gate_rss)


def fuzz(url: str, examples: int) -> bool:
    """schemathesis against /openapi.json: `examples` positive and as many negative cases."""
    try:
        import schemathesis
        from hypothesis import HealthCheck, given, settings
    except ImportError:
        print("schemathesis: not installed; pip install -e '.[test]' (or give --fuzz-examples 0)")
        return False
    for media, fmt in (("image/png", "PNG"), ("image/jpeg", "JPEG")):
        schemathesis.openapi.media_type(media, _images(fmt))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    statuses, failures = Counter(), []
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=schema.as_strategy(generation_mode=mode))
        def run(case):
            try:
                response = case.call(timeout=60)
                statuses[response.status_code] += 1
                case.validate_response(response)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - count every failure, report the first
                failures.append(f"{mode.value} {case.operation.label}: {str(exc).strip()[:600]}")

        run()
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    print(f"schemathesis: {sum(statuses.values())} generated requests, {len(failures)} failures (statuses {codes})")
    for failure in failures[:3]:
        print(f"  {failure}")
    return not failures


def _images(fmt: str):
    """Small real images within the aspect limit: positive multipart cases the server must accept."""
    from hypothesis import strategies as st

    @st.composite
    def images(draw) -> bytes:
        w = draw(st.integers(1, 48))
        h = draw(st.integers(max(1, -(-w // 20)), min(48, w * 20)))
        pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (h, w, 3), np.uint8)
        return serve_mix.png(pixels) if fmt == "PNG" else _jpeg(pixels)

    return images()


def _jpeg(pixels) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def main() -> None:
    ap = figure_parser("serve_load", __doc__)
    ap.add_argument("--dist", type=Path, default=Path("dist"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the soak after warm-up")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of the same load before the soak")
    ap.add_argument("--requests", type=int, default=None, help="send N requests instead, without warm-up")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--fuzz-examples", type=int, default=100, help="per generation mode; 0 skips schemathesis")
    args = ap.parse_args()

    images, prep = serve_mix.test_split(args.dist)
    with tempfile.TemporaryFile("w+") as log:
        proc, url = start_server(args.dist, args.workers, log)
        try:
            ok = soak(args, url, proc.pid, images, prep)
            ok = (fuzz(url, args.fuzz_examples) if args.fuzz_examples else True) and ok
        finally:
            code = stop_server(proc)
        log.seek(0)
        lines = log.read().splitlines()
    queue = sum("Task queue depth" in ln for ln in lines)
    print(f"server stopped (exit code {code}); its log: {len(lines)} lines, {queue} of them waitress's "
          "'task queue depth' (clients outnumber worker threads)")
    for line in [ln for ln in lines if "Task queue depth" not in ln][:5]:
        print(f"  {line}")
    sys.exit(0 if ok else 1)


def soak(args, url: str, pid: int, images, prep) -> bool:
    health = json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=30).read())
    served = health["default"]
    content = (args.dist / f"{served}.tflite").read_bytes()
    if hashlib.sha256(content).hexdigest() != health["sha256"][served]:
        sys.exit(f"{args.dist}: {served}.tflite changed since the server started; re-run")
    wants = serve_mix.expected(content, np.stack([prep.apply(im) for im in images]))
    mix = (*serve_mix.valid(images, prep, wants), serve_mix.bad(tuple(prep.input_shape)))
    print(f"artifact {served}; mix of every 20 requests: 10 JSON, 4 PNG uploads, 6 bad ones cycling through "
          f"{len(mix[2])} kinds ({', '.join(r.kind for r in mix[2])})")
    rss = {"start": rss_mib(pid)}
    if args.requests is None and args.warmup > 0:
        load(url, mix, args.clients, time.perf_counter() + args.warmup, None, None)
    rss["warm"] = rss_mib(pid)
    tally, start = Tally(), time.perf_counter()
    until = None if args.requests is not None else start + args.seconds
    load(url, mix, args.clients, until, args.requests, tally)
    wall = time.perf_counter() - start
    rss["end"] = rss_mib(pid)
    return report(tally, wall, args.clients, args.workers, rss, gate_rss=args.requests is None)


if __name__ == "__main__":
    main()
