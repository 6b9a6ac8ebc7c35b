"""GAN training step time (discriminators + RS + generator) for a preset, with and without the RS.

Synthetic inputs of the right shapes (the step's cost does not depend on their values); the RS runs
through the real frozen Inception. Reports seconds per step and the projected time of the preset's
iterations.

    .venv/bin/python benchmarks/bench_gan_step.py [--preset spoken-fashion] [--steps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def step_time(preset_name: str, rs: bool, steps: int, device: str) -> float:
    from speechvision.configs import apply_overrides, preset
    from speechvision.losses import S2IGANLoss
    from speechvision.models.image_encoder import ImageEncoder, InceptionFeatures
    from speechvision.training.gan import GANBatches, build_models

    cfg = apply_overrides(preset(preset_name), [f"gan.rs={'true' if rs else 'false'}"])
    gc = cfg.gan
    m = build_models(cfg, device)
    N, S = 8 * gc.batch_size, gc.generator.sizes_px[-1]
    batches = GANBatches(torch.randint(0, 256, (N, 3, S, S), dtype=torch.uint8), torch.arange(N) % 8,
                         [[i] for i in range(N)], F.normalize(torch.randn(N, 1024), dim=-1),
                         F.normalize(torch.randn(N, 1024), dim=-1), gc, device)
    inception, head = (InceptionFeatures(device=device), ImageEncoder().to(device).eval()) if rs else (None, None)
    loss = S2IGANLoss(m["G"], m["Ds"], m["RS"], (lambda x: head(inception.differentiable(x))) if rs else None, gc)
    opts = {"G": torch.optim.Adam(m["G"].parameters(), 2e-4), "D": torch.optim.Adam(m["Ds"].parameters(), 2e-4)}
    if rs:
        opts["RS"] = torch.optim.Adam(m["RS"].parameters(), 2e-4)
    times = []
    for step in range(steps + 1):
        t = time.perf_counter()
        batch = batches.get(step)
        loss.prepare(batch)
        for phase in loss.phases:
            opts[phase].zero_grad(set_to_none=True)
            loss.accumulate_gradients(phase, batch)
            opts[phase].step()
        times.append(time.perf_counter() - t)
    return sum(times[1:]) / steps  # the first step warms up


def main() -> None:
    from speechvision.configs import preset

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="spoken-fashion")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    iters = preset(args.preset).gan.iterations
    res = {"preset": args.preset, "device": args.device, "batch_size": preset(args.preset).gan.batch_size,
           "torch_threads": torch.get_num_threads()}
    for rs in (False, True):
        s = step_time(args.preset, rs, args.steps, args.device)
        res[f"seconds_per_step_{'with' if rs else 'without'}_rs"] = round(s, 3)
        res[f"projected_hours_{iters}_steps_{'with' if rs else 'without'}_rs"] = round(s * iters / 3600, 1)
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
