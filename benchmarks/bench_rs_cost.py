"""What the relation supervisor (RS) costs per GAN training step, by its levers (issue 16).

Times the real training step (``GANLoop.training_step``: the batch, the loss's phases with the requires-grad
switches and Adam, the EMA update) of the spoken-fashion preset on random data, for:

* no RS (``gan.rs=false``);
* the paper's RS (``rs_image_size_px=299``, fp32, every step);
* each ``--variant SIZE[:bf16][:every=K]`` (default: the preset's levers and a few neighbours).

A variant with ``every=K`` is timed over K consecutive steps (one with the RS) and divided by K.
Variants are interleaved and each keeps its best of ``--repeats``; the ratio to the no-RS step and the
fraction of the fp32 matmul peak (measured in the same process, before and after; the higher kept) are
printed, with FLOPs counted by ``torch.utils.flop_counter`` in a separate untimed pass.

    python benchmarks/bench_rs_cost.py --threads 2

Only cost is measured here; what the levers do to quality needs training runs (docs/results.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_suite import count_flops  # a benchmark script beside this one

from speechvision.core.distributed import DistInfo
from speechvision.core.hardware import matmul_peak_flops
from speechvision.core.inception import InceptionFeatures
from speechvision.s2igan.config import preset
from speechvision.s2igan.gan_data import CaptionEmbedder, GANBatches
from speechvision.s2igan.gan_loop import GANLoop, GANTraining
from speechvision.s2igan.image_encoder import ImageEncoder
from speechvision.s2igan.losses import S2IGANLoss
from speechvision.s2igan.relation_encoder import RelationImageEncoder


def parse_variant(text: str) -> dict:
    """``96:bf16:every=2`` -> {"size_px": 96, "bf16": True, "every": 2}."""
    parts = text.split(":")
    out = {"size_px": int(parts[0]), "bf16": False, "every": 1}
    for p in parts[1:]:
        if p == "bf16":
            out["bf16"] = True
        elif p.startswith("every="):
            out["every"] = int(p.split("=", 1)[1])
        else:
            raise argparse.ArgumentTypeError(f"--variant {text}: unknown part '{p}' (SIZE[:bf16][:every=K])")
    return out


def build(cfg, device: str = "cpu"):
    """The preset's GAN training on random data: (training, batches, embed, inception, head)."""
    gc = cfg.gan
    torch.manual_seed(0)
    training = GANTraining.build(cfg, torch.device(device), torch.nn.Linear(1, 1))
    N, S = 8 * gc.batch_size, gc.generator.sizes_px[-1]
    emb = F.normalize(torch.randn(N, 1024), dim=-1)
    batches = GANBatches(torch.randint(0, 256, (N, 3, S, S), dtype=torch.uint8), torch.arange(N) % 80,
                         [[i] for i in range(N)], emb, F.normalize(torch.randn(N, 1024), dim=-1), gc, device)
    embed = CaptionEmbedder(emb, [str(i) for i in range(N)], torch.device(device))
    head = ImageEncoder().to(device).eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return training, batches, embed, InceptionFeatures(device=device), head


def make_loop(training, batches, embed, loss, gc, amp: str | None = None) -> GANLoop:
    """A GANLoop over the preset's training with ``gc``; ``amp="bf16"``: every forward pass under bf16 autocast
    (as ``speechvision train gan --amp bf16``)."""
    t = dataclasses.replace(training, cfg=dataclasses.replace(training.cfg, gan=gc))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")
    return GANLoop(training=t, loss=loss, batches=batches, embed=embed, snapshots=None, folder=None,
                   info=DistInfo(), device=torch.device("cpu"), autocast=autocast, sen_checkpoint="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", type=parse_variant, action="append",
                    help="SIZE[:bf16][:every=K]; repeatable (default: the preset's levers and neighbours)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--batch-size", type=int, default=None, help="GAN batch size (default: the preset's, 32)")
    ap.add_argument("--amp", choices=["bf16"], default=None,
                    help="every forward pass of the step under bf16 autocast (default: fp32, as the preset)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset("spoken-fashion")
    if args.batch_size:
        cfg.gan.batch_size = args.batch_size
    gc0 = cfg.gan
    variants = args.variant or [parse_variant(v) for v in (
        f"{gc0.rs_image_size_px}" + (":bf16" if gc0.rs_bf16 else "") + f":every={gc0.rs_every}",
        "75", "96", "75:every=2", "96:every=2", "75:bf16", "96:bf16:every=2")]
    training, batches, embed, inception, head = build(cfg)
    base = dataclasses.replace(gc0, rs_image_size_px=299, rs_bf16=False, rs_every=1)
    loops = {"no RS": (make_loop(training, batches, embed, S2IGANLoss(training.G, training.Ds, None, None, base),
                                 dataclasses.replace(base, rs=False), args.amp), 1)}
    for v in [{"size_px": 299, "bf16": False, "every": 1}] + variants:
        gc = dataclasses.replace(base, rs_image_size_px=v["size_px"], rs_bf16=v["bf16"], rs_every=v["every"])
        enc = RelationImageEncoder(inception, head, v["size_px"], v["bf16"])
        name = f"RS at {v['size_px']} px" + (" bf16" if v["bf16"] else "") + (
            f", every {v['every']} steps" if v["every"] > 1 else "") + (" (paper)" if v == {
                "size_px": 299, "bf16": False, "every": 1} else "")
        loops[name] = (make_loop(training, batches, embed,
                                 S2IGANLoss(training.G, training.Ds, training.RS, enc.fake, gc), gc, args.amp),
                         v["every"])

    def run(loop, k):  # k consecutive steps from step 0 (the RS runs at step 0)
        for s in range(k):
            loop.training_step(s)

    peak = matmul_peak_flops()
    flops = {name: count_flops(lambda loop=loop, k=k: run(loop, k)) / k  # doubles as warm-up
             for name, (loop, k) in loops.items()}
    times = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, (loop, k) in loops.items():
            t = time.perf_counter()
            run(loop, k)
            times[name].append((time.perf_counter() - t) / k)
    peak = max(peak, matmul_peak_flops())
    best = {k: min(v) for k, v in times.items()}
    precision = "bf16 autocast" if args.amp else "fp32"
    print(f"threads {args.threads}, fp32 matmul peak {peak / 1e9:.0f} GFLOP/s, batch {gc0.batch_size}, {precision}, "
          f"best of {args.repeats}\n\n| step | seconds | ratio to no RS | GFLOP | fraction of fp32 matmul peak |\n"
          "|---|---|---|---|---|")
    for name in loops:
        print(f"| {name} | {best[name]:.3f} | {best[name] / best['no RS']:.2f} | {flops[name] / 1e9:.1f} | "
              f"{flops[name] / best[name] / peak:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "matmul_peak_gflops": peak / 1e9,
                                         "seconds": best, "gflops": {k: v / 1e9 for k, v in flops.items()}},
                                        indent=2))


if __name__ == "__main__":
    main()
