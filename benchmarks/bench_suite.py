"""The benchmark suite (`make bench`): every workload against the hardware limit of the same run.

For each workload: items per second, FLOPs per item (``torch.utils.flop_counter.FlopCounterMode``,
counted in a separate untimed pass), the achieved FLOP rate, that rate as a fraction of the dense fp32
matrix-multiply peak measured in the same process just before, and the process's peak memory (each
workload runs in a fresh process: peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU).
Synthetic inputs of realistic shapes: the cost of these networks does not depend on the values.

    .venv/bin/python benchmarks/bench_suite.py [--device cpu] [--quick] [--only NAME ...] [--json benchmarks/suite.json]
        [--bundle BUNDLE.pt]   # generate_spoken-fashion times that bundle instead of the bundled model

Workloads: sen_step (batch 128, 1.5-3.5 s utterances), gan_step_<preset> (D + RS + G phases, Adam),
generator_forward_<preset> (training-mode forward at the preset's batch), generate_<preset>
(wav -> png latency at batch 1, throughput at batch 64, 24 for the paper preset), inception_features,
scaling_resolution (generator forward at 64/128/256 px), scaling_utterance (speech encoder, 2-30 s).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from speechvision.core.hardware import matmul_peak_flops, sync

PRESETS = {"spoken-fashion": "spoken-fashion", "paper": "cub"}  # name in the report -> config preset


def timed(fn, device: str, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def count_flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


# ---- workloads: each returns {"items": n per call, "seconds": per call, "flops": per call, ...} -------

def _gan_parts(preset_name: str, device: str, batch_size: int | None = None, overrides=(), channels_last=False):
    from speechvision.core.inception import InceptionFeatures
    from speechvision.s2igan.config import apply_overrides, preset
    from speechvision.s2igan.image_encoder import ImageEncoder
    from speechvision.s2igan.losses import S2IGANLoss
    from speechvision.s2igan.train_gan import GANBatches, build_models

    cfg = apply_overrides(preset(preset_name), list(overrides))
    gc = cfg.gan
    if batch_size:
        gc.batch_size = batch_size
    m = build_models(cfg, device)
    if channels_last:
        for k in ("G", "Ds"):
            m[k].to(memory_format=torch.channels_last)
    N, S = 4 * gc.batch_size, gc.generator.sizes_px[-1]
    batches = GANBatches(torch.randint(0, 256, (N, 3, S, S), dtype=torch.uint8), torch.arange(N) % 8,
                         [[i] for i in range(N)], F.normalize(torch.randn(N, 1024), dim=-1),
                         F.normalize(torch.randn(N, 1024), dim=-1), gc, device)
    inception = InceptionFeatures(device=device) if gc.rs else None
    head = ImageEncoder().to(device).eval()
    loss = S2IGANLoss(m["G"], m["Ds"], m["RS"], (lambda x: head(inception.differentiable(x))) if gc.rs else None, gc)
    opts = {"G": torch.optim.Adam(m["G"].parameters(), 2e-4), "D": torch.optim.Adam(m["Ds"].parameters(), 2e-4)}
    if m["RS"] is not None:
        opts["RS"] = torch.optim.Adam(m["RS"].parameters(), 2e-4)
    return cfg, m, batches, loss, opts


def w_gan_step(device: str, preset_name: str, quick: bool, rs: bool = True, compare_layouts: bool = False) -> dict:
    """One training step (D, RS, G phases with Adam). The FLOP-counting pass doubles as the warm-up;
    the paper preset is timed once (a step takes most of a minute on 2 CPU cores)."""
    repeats = 1 if (quick or preset_name != "spoken-fashion") else 2
    out = {}
    for layout in (("nchw", "channels_last") if compare_layouts else ("channels_last",)):
        cfg, m, batches, loss, opts = _gan_parts(preset_name, device, overrides=[f"gan.rs={'true' if rs else 'false'}"],
                                                 channels_last=layout == "channels_last")
        batch = batches.get(0)

        def step():
            loss.prepare(batch)
            for phase in loss.phases:
                opts[phase].zero_grad(set_to_none=True)
                loss.accumulate_gradients(phase, batch)
                opts[phase].step()

        flops = count_flops(step)
        out[layout] = timed(step, device, repeats, warmup=0)
    # The data pipeline: building a batch with the real loader (indexing the uint8 pyramid, choosing
    # captions and pairs) runs synchronously before each step, so its time adds to the step's.
    step_i = iter(range(1, 10 ** 6))
    seconds_loader = timed(lambda: batches.get(next(step_i)), device, 10)
    res = {"items": cfg.gan.batch_size, "seconds": out["channels_last"], "flops": flops, "unit": "image",
           "loader_seconds": seconds_loader, "loader_overhead": seconds_loader / out["channels_last"],
           "sizes_px": cfg.gan.generator.sizes_px, "rs": rs, "layout": "channels_last"}
    if compare_layouts:
        res["seconds_nchw"] = out["nchw"]
        res["speedup_channels_last"] = out["nchw"] / out["channels_last"]
    return res


def w_generator_forward(device: str, preset_name: str, quick: bool) -> dict:
    """Training-mode forward at the preset's batch, in NCHW and in channels_last (same process)."""
    cfg, m, batches, _, _ = _gan_parts(preset_name, device, overrides=["gan.rs=false"])
    gc = cfg.gan
    B = gc.batch_size
    emb = torch.randn(B, gc.generator.embedding_dim, device=device)
    z = torch.randn(B, gc.generator.noise_dim, device=device)
    eps = torch.randn(B, gc.generator.condition_dim, device=device)
    G = m["G"].train()

    def fwd():
        with torch.no_grad():
            G(emb, z, eps)

    flops = count_flops(fwd)
    seconds = {}
    for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        G.to(memory_format=fmt)
        seconds[layout] = timed(fwd, device, 2 if quick else 3)
    return {"items": B, "seconds": seconds["channels_last"], "flops": flops, "unit": "image",
            "sizes_px": gc.generator.sizes_px, "layout": "channels_last", "seconds_nchw": seconds["nchw"],
            "speedup_channels_last": seconds["nchw"] / seconds["channels_last"]}


def w_sen_step(device: str, quick: bool) -> dict:
    from speechvision.s2igan.config import preset
    from speechvision.s2igan.losses import sen_loss
    from speechvision.s2igan.sen import build_sen

    cfg = preset("spoken-fashion")
    sc = cfg.sen
    B = sc.batch_size
    model = build_sen(cfg, 80).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    frames_per_s = 1000 / cfg.audio.hop_ms
    lengths = (frames_per_s * (1.5 + 2.0 * torch.rand(B, generator=g))).long()  # 1.5-3.5 s, as spoken-fashion
    feats = torch.randn(B, int(lengths.max()), cfg.audio.n_mels, device=device)
    images = torch.randn(B, 2048, device=device)  # cached Inception pool features
    labels = torch.randint(0, 80, (B,), device=device)

    def step():
        speech, image = model(feats, lengths, images)
        losses = sen_loss(model, speech, image, labels, sc)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()

    return {"items": B, "seconds": timed(step, device, 2 if quick else 4), "flops": count_flops(step),
            "unit": "utterance", "mean_utterance_s": round(float(lengths.float().mean()) / frames_per_s, 2)}


def w_generate(device: str, preset_name: str, quick: bool) -> dict:
    import tempfile

    from speechvision.core.images import save_pngs
    from speechvision.demo import EXAMPLES
    from speechvision.s2igan.config import preset
    from speechvision.s2igan.dsg import DSG
    from speechvision.s2igan.pipeline import S2IGANPipeline
    from speechvision.s2igan.speech_encoder import SpeechEncoder

    if preset_name == "spoken-fashion":
        # the bundled model, or the bundle given by --bundle (e.g. a distilled speech encoder with another front end)
        pipe = S2IGANPipeline.load(os.environ.get("SPEECHVISION_BENCH_BUNDLE") or None, device=device)
    else:  # the paper preset has no trained weights here; speed does not depend on them
        cfg = preset(preset_name)
        pipe = S2IGANPipeline(SpeechEncoder(cfg.sen.speech).to(device), DSG(cfg.gan.generator).to(device), cfg)
    wav = EXAMPLES / "red-sneaker.flac"
    emb = pipe.embed([wav])
    with tempfile.TemporaryDirectory() as tmp:
        def one():
            save_pngs(pipe.speech_to_images([wav], seed=0)[-1], [Path(tmp) / "x.png"])

        latency = timed(one, device, 3 if quick else (10 if preset_name == "spoken-fashion" else 3))
    B = 64 if preset_name == "spoken-fashion" else 24
    embs = emb.repeat(B, 1)
    seconds = timed(lambda: pipe.generate(embs, list(range(B))), device, 1 if quick else 2)
    flops = count_flops(lambda: pipe.generate(embs, list(range(B))))
    return {"items": B, "seconds": seconds, "flops": flops, "unit": "image", "latency_wav_to_png_ms": 1000 * latency,
            "size_px": pipe.config.gan.generator.sizes_px[-1]}


def w_inception(device: str, quick: bool) -> dict:
    from speechvision.core.inception import InceptionFeatures

    model = InceptionFeatures(device=device)
    x = torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8, device=device)
    return {"items": 32, "seconds": timed(lambda: model(x), device, 1 if quick else 3), "flops": count_flops(lambda: model(x)),
            "unit": "image"}


def w_scaling_resolution(device: str, quick: bool) -> dict:
    """DSG forward (paper widths, batch 8) with the final stage at 64, 128 and 256 px."""
    from speechvision.s2igan.dsg import DSG, DSGConfig

    out = {}
    for base in (16, 32, 64):
        gc = DSGConfig(base_size_px=base)
        G = DSG(gc).to(device).train()
        B = 8
        args = (torch.randn(B, gc.embedding_dim, device=device), torch.randn(B, gc.noise_dim, device=device),
                torch.randn(B, gc.condition_dim, device=device))

        def fwd():
            with torch.no_grad():
                G(*args)

        out[gc.sizes_px[-1]] = {"seconds_per_image": timed(fwd, device, 1 if quick else 3) / B,
                                "gflops_per_image": count_flops(fwd) / B / 1e9}
    sizes = sorted(out)
    growth = [out[b]["seconds_per_image"] / out[a]["seconds_per_image"] for a, b in zip(sizes, sizes[1:])]
    return {"items": 1, "seconds": out[256]["seconds_per_image"], "flops": out[256]["gflops_per_image"] * 1e9,
            "unit": "image (256 px)", "by_size_px": out, "time_growth_per_doubling": growth}


def w_scaling_utterance(device: str, quick: bool) -> dict:
    """SEN speech encoder forward (batch 16) for utterances of 2 to 30 s."""
    from speechvision.s2igan.config import preset
    from speechvision.s2igan.speech_encoder import SpeechEncoder

    cfg = preset("spoken-fashion")
    enc = SpeechEncoder(cfg.sen.speech).to(device).eval()
    fps = 1000 / cfg.audio.hop_ms
    out = {}
    for seconds in (2, 4, 8, 16, 30):
        T = int(seconds * fps)
        feats, lengths = torch.randn(16, T, cfg.audio.n_mels, device=device), torch.full((16,), T)

        def fwd():
            with torch.no_grad():
                enc(feats, lengths)

        out[seconds] = {"seconds_per_utterance": timed(fwd, device, 1 if quick else 3) / 16,
                        "gflops_per_utterance": count_flops(fwd) / 16 / 1e9}
    d = sorted(out)
    per_s = [out[s]["seconds_per_utterance"] / s for s in d]
    return {"items": 1, "seconds": out[30]["seconds_per_utterance"], "flops": out[30]["gflops_per_utterance"] * 1e9,
            "unit": "utterance (30 s)", "by_duration_s": out,
            "seconds_per_audio_second_2s_vs_30s": [per_s[0], per_s[-1]]}


WORKLOADS = {
    "sen_step": lambda d, q: w_sen_step(d, q),
    "gan_step_spoken-fashion": lambda d, q: w_gan_step(d, "spoken-fashion", q, compare_layouts=True),
    "gan_step_spoken-fashion_no_rs": lambda d, q: w_gan_step(d, "spoken-fashion", q, rs=False),
    "gan_step_paper": lambda d, q: w_gan_step(d, "cub", q),
    "generator_forward_spoken-fashion": lambda d, q: w_generator_forward(d, "spoken-fashion", q),
    "generator_forward_paper": lambda d, q: w_generator_forward(d, "cub", q),
    "generate_spoken-fashion": lambda d, q: w_generate(d, "spoken-fashion", q),
    "generate_paper": lambda d, q: w_generate(d, "cub", q),
    "inception_features": lambda d, q: w_inception(d, q),
    "scaling_resolution": lambda d, q: w_scaling_resolution(d, q),
    "scaling_utterance": lambda d, q: w_scaling_utterance(d, q),
}


def _run(name: str, device: str, quick: bool, queue) -> None:
    try:
        peak = matmul_peak_flops(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        res = WORKLOADS[name](device, quick)
        peak = max(peak, matmul_peak_flops(device))  # the limit, measured around the workload
        res["matmul_peak_gflops"] = peak / 1e9
        res["items_per_s"] = res["items"] / res["seconds"]
        res["gflops_per_item"] = res["flops"] / res["items"] / 1e9
        res["achieved_gflops"] = res["flops"] / res["seconds"] / 1e9
        res["fraction_of_matmul_peak"] = res["flops"] / res["seconds"] / peak
        res["peak_memory_mb"] = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda")
                                 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        queue.put((name, res))
    except Exception as e:  # noqa: BLE001 - report and go on with the other workloads
        queue.put((name, {"error": f"{type(e).__name__}: {e}"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--only", nargs="+", default=None, choices=list(WORKLOADS))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--bundle", type=Path, default=None,
                    help="generate_spoken-fashion times this bundle instead of the bundled model")
    args = ap.parse_args()
    if args.bundle is not None:
        if not args.bundle.is_file():
            ap.error(f"--bundle {args.bundle}: no such file")
        os.environ["SPEECHVISION_BENCH_BUNDLE"] = str(args.bundle.resolve())  # the spawned workloads read it
    ctx = mp.get_context("spawn")
    results = {}
    t0 = time.time()
    for name in args.only or WORKLOADS:
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=(name, args.device, args.quick, q))
        p.start()
        name, res = q.get()
        p.join()
        results[name] = res
        print(f"{name}: {'error ' + res['error'] if 'error' in res else format(res['seconds'], '.3f') + ' s'}",
              file=sys.stderr, flush=True)
    report = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": args.device,
                          "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
              "wall_s": round(time.time() - t0, 1), "workloads": results}
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))


def table(report: dict) -> str:
    rows = ["| workload | item | items/s | GFLOP/item | achieved GFLOP/s | fraction of matmul peak | peak memory MB |",
            "|---|---|---|---|---|---|---|"]
    for name, r in report["workloads"].items():
        if "error" in r:
            rows.append(f"| {name} | error: {r['error']} | | | | | |")
            continue
        rows.append(f"| {name} | {r['unit']} | {r['items_per_s']:.2f} | {r['gflops_per_item']:.3f} | "
                    f"{r['achieved_gflops']:.1f} | {r['fraction_of_matmul_peak']:.2f} | {r['peak_memory_mb']:.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
