"""Web server load benchmark: 20 concurrent "generate" requests against `speechvision serve`.

Starts the server on a free loopback port (bundled model, default concurrency 2), warms it with one
request, then sends ``--requests`` concurrent requests (one gradio_client each, different seeds) and
reports latency percentiles and throughput, plus one request alone for comparison (same run).

    .venv/bin/python benchmarks/bench_serve.py [--requests 20] [--json benchmarks/serve.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def main() -> None:
    from speechvision.demo import EXAMPLES
    from speechvision.web import load_test

    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "speechvision", "serve", "--port", str(port),
                             "--concurrency", str(args.concurrency)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > 180:
                    raise SystemExit("server did not start")
                time.sleep(0.5)
        wav = EXAMPLES / "red-sneaker.flac"
        load_test(url, wav, requests=1)  # warm-up (first request compiles nothing, but loads the page config)
        single = load_test(url, wav, requests=1)["latency_s"][0]
        res = load_test(url, wav, requests=args.requests)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = np.array(res["latency_s"])
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "requests": args.requests, "server_concurrency": args.concurrency, "ok": res["ok"], "failed": res["failed"],
           "single_request_s": round(single, 3),
           "latency_s": {f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 95, 99)} | {"max": round(float(lat.max()), 3)},
           "requests_per_s": round(args.requests / res["wall_s"], 2)}
    print(f"{args.requests} concurrent requests: {res['ok']} ok, {res['failed']} failed; "
          f"latency p50 {out['latency_s']['p50']} s, p90 {out['latency_s']['p90']} s, p99 {out['latency_s']['p99']} s, "
          f"max {out['latency_s']['max']} s; one request alone {out['single_request_s']} s; "
          f"{out['requests_per_s']} requests/s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
