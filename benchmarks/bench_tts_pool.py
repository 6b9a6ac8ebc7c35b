"""Piper synthesis throughput of a process pool: onnxruntime's default threads per process against one.

Runs the same Piper jobs through ``synthesize_many``'s pool (``tts.synthesis_pool``), once with
each process's onnxruntime session on its default thread count (one per core) and once with one thread
(``_one_thread_per_worker``, what ``synthesize_many`` uses), interleaved, best of ``--repeats``; prints
utterances per second and the ratio, measured in one run.

    python benchmarks/bench_tts_pool.py --workers 2 --utterances 48
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import speechvision.core.tts as tts


def _default_threads() -> None:
    tts._PIPER_THREADS = None


def run(jobs: list[tts.SynthesisJob], workers: int, initializer, chunk: int) -> float:
    chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    with tts.synthesis_pool(workers, initializer) as pool:
        pool.submit(initializer).result()  # start the processes before timing (not counted)
        t0 = time.perf_counter()
        assert sum(pool.map(tts._run_jobs, chunks)) == len(jobs)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--utterances", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    texts = [f"a {c} {g}" for c in ("red", "blue", "green", "black") for g in ("coat", "dress", "sneaker", "bag")]
    variants = {"onnxruntime default threads": _default_threads, "one thread per process": tts._one_thread_per_worker}
    best = {name: float("inf") for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, init in variants.items():
                jobs = [tts.SynthesisJob(texts[i % len(texts)], tts.DEFAULT_VOICE, str(Path(tmp) / f"{name[:3]}{r}-{i}.wav"))
                        for i in range(args.utterances)]
                best[name] = min(best[name], run(jobs, args.workers, init, chunk=8))
    base = best["onnxruntime default threads"]
    print(f"{args.workers} processes, {args.utterances} Piper utterances, best of {args.repeats}\n")
    print("| pool | utterances/s | speed-up |\n|---|---|---|")
    for name, s in best.items():
        print(f"| {name} | {args.utterances / s:.1f} | {base / s:.2f}x |")


if __name__ == "__main__":
    main()
