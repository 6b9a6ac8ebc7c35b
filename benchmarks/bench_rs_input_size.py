"""How much the RS costs, by the Inception input size of its image encoder (issue 16 exploration).

One spoken-fashion GAN step (D, RS, G phases with Adam; the preset's batch, channels_last) without the RS,
with the RS as trained today (the TorchScript TF FID Inception at 299 px, a forward and a backward pass
for every generated 64 px image), and with the same Inception weights as a plain module fed smaller
inputs (fp32, and bf16 autocast, which uses AMX where the CPU has it). Times are the best of ``--repeats``
interleaved runs in one process, reported as a ratio to the no-RS step of the same run.

    python benchmarks/bench_rs_input_size.py --threads 1

Only the cost is measured here: whether a smaller RS input keeps the model's quality needs a full
training run (docs/results.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_suite import _gan_parts  # noqa: E402  (a benchmark script beside this one)

from speechvision.core.hardware import matmul_peak_flops  # noqa: E402
from speechvision.core.inception import InceptionFeatures, from_torchscript  # noqa: E402
from speechvision.s2igan.image_encoder import ImageEncoder  # noqa: E402
from speechvision.s2igan.losses import S2IGANLoss  # noqa: E402


def resized_embedder(net, head, size_px: int, bf16: bool):
    """Generated images (B, 3, 64, 64) in [-1, 1] -> (B, D) embeddings through Inception at ``size_px``."""
    def embed(x):
        y = F.interpolate((x + 1) * 127.5, size=(size_px, size_px), mode="bilinear", align_corners=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            feats = net((y / 128.0 - 1.0).contiguous(memory_format=torch.channels_last))
        return head(feats.float())
    return embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, m, batches, loss_rs, opts = _gan_parts("spoken-fashion", "cpu", overrides=["gan.rs=true"],
                                                channels_last=True)
    net = from_torchscript(InceptionFeatures().net).eval().to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    head = ImageEncoder().eval()
    variants = {"no RS": S2IGANLoss(m["G"], m["Ds"], None, None, cfg.gan), "RS at 299 px (today)": loss_rs}
    for size, bf16 in ((128, False), (96, False), (75, False), (128, True), (96, True), (75, True)):
        name = f"RS at {size} px" + (" bf16" if bf16 else "")
        variants[name] = S2IGANLoss(m["G"], m["Ds"], m["RS"], resized_embedder(net, head, size, bf16), cfg.gan)
    batch = batches.get(0)

    def step(loss):
        loss.prepare(batch)
        for phase in loss.phases:
            opts[phase].zero_grad(set_to_none=True)
            loss.accumulate_gradients(phase, batch)
            opts[phase].step()

    times = {k: [] for k in variants}
    for loss in variants.values():
        step(loss)  # warm-up
    for _ in range(args.repeats):
        for name, loss in variants.items():
            t = time.perf_counter()
            step(loss)
            times[name].append(time.perf_counter() - t)
    base = min(times["no RS"])
    print(f"threads {args.threads}, fp32 matmul peak {matmul_peak_flops() / 1e9:.0f} GFLOP/s, "
          f"batch {cfg.gan.batch_size}\n\n| step | seconds | ratio to no RS |\n|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.3f} | {min(ts) / base:.2f} |")


if __name__ == "__main__":
    main()
