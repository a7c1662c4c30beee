"""Load on `mobilepack serve`: N concurrent clients on loopback for a bounded number of requests.

    python -m benchmarks.figures.serve_load [--dist dist] [--clients 8] [--requests 2000] [--workers 4] [--artifact NAME]

Starts the app under waitress (as `mobilepack serve` does) on a free loopback port, then each
client thread POSTs JSON tensors until the total is reached, cycling through the held-out test
split of the run the dist was converted from (its reference/split.json), preprocessed as the
benchmark does. Prints requests/s, client-side p50/p99 latency and the error count; exits
1 on any error.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.figures.common import quiet
from .common import figure_parser


def bodies(dist: Path) -> list[bytes]:
    """One JSON request body per image of the test split the dist's manifest points to."""
    from convert.manifest import load_manifest
    from train.data import split_part
    from train.preprocessing import Preprocessing

    manifest = load_manifest(dist)
    split_file = manifest.source.get("split_file")
    if not split_file or manifest.preprocessing is None:
        sys.exit(f"{dist}: no run dir behind this dist (no split file or preprocessing in manifest.json); "
                 "give a dist converted from a run dir, e.g. the one `make demo` writes")
    prep = Preprocessing.from_dict(manifest.preprocessing)
    dataset, test = split_part(dist / split_file, "test", quiet)
    return [json.dumps({"input": prep.apply(dataset.images[i]).tolist()}).encode() for i in test]


def main() -> None:
    ap = figure_parser("serve_load", __doc__)
    ap.add_argument("--dist", type=Path, default=Path("dist"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--artifact", default=None)
    args = ap.parse_args()

    from waitress import create_server

    from mobilepack.serve import create_app

    app = create_app(args.dist, args.artifact)
    server = create_server(app, host="127.0.0.1", port=0, threads=args.workers)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/predict" + (f"?artifact={args.artifact}" if args.artifact else "")
    payloads = bodies(args.dist)
    counter, lock = iter(range(args.requests)), threading.Lock()
    latencies: list[float] = []
    errors = 0

    def client() -> None:
        nonlocal errors
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            req = urllib.request.Request(url, data=payloads[k % len(payloads)],
                                         headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                    ok = r.status == 200
            except (urllib.error.URLError, OSError):
                ok = False
            with lock:
                latencies.append((time.perf_counter() - t0) * 1e3)
                errors += not ok

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        for _ in range(args.clients):
            pool.submit(client)
    wall = time.perf_counter() - start
    server.close()
    ms = np.asarray(latencies)
    served = app.config["MOBILEPACK_MODELS"].default if args.artifact is None else args.artifact
    print(f"{args.requests} requests, {args.clients} clients, {args.workers} server threads, artifact {served}: "
          f"{args.requests / wall:.0f} requests/s, p50 {np.percentile(ms, 50):.2f} ms, p99 "
          f"{np.percentile(ms, 99):.2f} ms, errors {errors} (loopback on this host, {os.cpu_count()} cores)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
