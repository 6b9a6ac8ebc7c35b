"""Generation benchmark: wav -> png latency at batch 1 and throughput at batch 64 (start-up excluded).

Reports images per second, FLOPs per image (torch.utils.flop_counter), and the achieved FLOP rate as
a fraction of the dense fp32 matrix-multiply peak measured in the same run on the same device, so
the figure is a ratio that survives a noisy machine.

    .venv/bin/python benchmarks/bench_generate.py [--checkpoint BUNDLE] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_peak_flops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t)


def main() -> None:
    from speechvision.demo import EXAMPLES
    from speechvision.generate import S2IGANPipeline, save_pngs

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    pipe = S2IGANPipeline.load(args.checkpoint)
    wav = EXAMPLES / "red-sneaker.flac"
    emb = pipe.embed([wav])
    with FlopCounterMode(display=False) as fc:
        pipe.generate(emb.repeat(8, 1), list(range(8)))
    gen_flops = fc.get_total_flops() / 8
    with FlopCounterMode(display=False) as fc:
        pipe.embed([wav])
    enc_flops = fc.get_total_flops()

    peak = matmul_peak_flops()
    with tempfile.TemporaryDirectory() as tmp:
        pipe.speech_to_images([wav])  # warm-up
        lat = []
        for i in range(args.repeats):
            t = time.perf_counter()
            img = pipe.speech_to_images([wav], seed=i)[-1]
            save_pngs(img, [Path(tmp) / "x.png"])
            lat.append(time.perf_counter() - t)
        B = 64
        embs = emb.repeat(B, 1)
        pipe.generate(embs, list(range(B)))
        t = time.perf_counter()
        reps = max(2, args.repeats // 5)
        for r in range(reps):
            pipe.generate(embs, list(range(r * B, (r + 1) * B)))
        thr = B * reps / (time.perf_counter() - t)
    peak2 = matmul_peak_flops()
    res = {
        "device": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "matmul_peak_gflops": round(max(peak, peak2) / 1e9, 1),
        "latency_wav_to_png_ms_median": round(1000 * statistics.median(lat), 1),
        "latency_wav_to_png_ms_p90": round(1000 * sorted(lat)[int(0.9 * (len(lat) - 1))], 1),
        "generator_gflops_per_image": round(gen_flops / 1e9, 3),
        "speech_encoder_gflops_per_utterance": round(enc_flops / 1e9, 3),
        "throughput_images_per_s_batch64": round(thr, 1),
        "batch64_fraction_of_matmul_peak": round(thr * gen_flops / max(peak, peak2), 3),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
