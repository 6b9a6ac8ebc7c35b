"""How far apart the generator's conditioning puts spoken colours: a quick health check of a GAN run.

The bundled examples ``swap-<colour>-coat.flac`` say the same sentence with the colour word swapped
(8 colours). For each checkpoint this prints, over those 8 utterances:

- ``emb_cos``: the mean cosine between the SEN embeddings of two different colours (what the SEN separates);
- ``mu_spread``: the mean L2 distance between their conditioning-augmentation means mu (B, C) (what the
  generator's CA passes on; the CA adds noise of standard deviation ``sigma`` on top);
- ``mu_norm`` and ``sigma``: mean ||mu|| and mean exp(logvar / 2).

A generator whose ``mu_spread`` is small against ``sigma`` draws the colour from its noise, not from the
speech (seen in the 6,000-step CPU run of issue 16: spread 1.4, sigma 0.99, colour accuracy at chance; the
bundled model: 20.9 and 0.88).

    python scripts/condition_spread.py bundled /work/runs/sf-full/gan
    python scripts/condition_spread.py bundled /work/runs/sf-full/bundle.pt --picture swap.png --seed 3

``--picture`` also draws each checkpoint's eight colour-swap images from one seed, one row per checkpoint
(2x upscaled, the checkpoint's label on the left), as docs/img/cpu-run-colour-swap.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from speechvision.demo import swap_wavs


def load(checkpoint: str):
    """The pipeline of a bundle file or GAN run folder; ``bundled``: the package's model."""
    from speechvision.s2igan.pipeline import S2IGANPipeline

    return S2IGANPipeline.load(None if checkpoint == "bundled" else checkpoint)


def spread(pipe) -> dict[str, float]:
    """The four figures above for one loaded pipeline (:func:`load`)."""
    from speechvision.s2igan.dsg import condition_spread

    with torch.no_grad():
        e = pipe.embed(swap_wavs())  # (8, E)
    en = torch.nn.functional.normalize(e, dim=1)
    off = ~torch.eye(len(e), dtype=torch.bool)
    return {"emb_cos": float((en @ en.T)[off].mean()), **condition_spread(pipe.generator, e)}


def swap_row(pipe, seed: int) -> torch.Tensor:
    """The eight colour-swap images of one loaded pipeline, all from noise ``seed``: (8, 3, H, W) in [-1, 1]."""
    wavs = swap_wavs()
    with torch.no_grad():
        return pipe.generate(pipe.embed(wavs), [seed] * len(wavs))[-1]


def draw_rows(rows: list[torch.Tensor], labels: list[str], path: Path, scale: int = 2, label_px: int = 220) -> None:
    """One picture: row i is ``rows[i]`` (N, 3, H, W) upscaled ``scale`` times, ``labels[i]`` to its left."""
    from PIL import Image, ImageDraw

    from speechvision.core.images import save_png, to_uint8

    tiles = [np.concatenate(list(to_uint8(r)), axis=1) for r in rows]  # (H, N*W, 3) each
    h, w = tiles[0].shape[0] * scale, tiles[0].shape[1] * scale
    canvas = Image.new("RGB", (label_px + w, h * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        canvas.paste(Image.fromarray(tile).resize((w, h), Image.NEAREST), (label_px, i * h))
        draw.multiline_text((6, i * h + 6), label, fill="black")
    save_png(np.asarray(canvas), path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="bundle files or GAN run folders; 'bundled' for the package's "
                    "model; LABEL=CHECKPOINT names a row of --picture")
    ap.add_argument("--picture", type=Path, help="also write the colour-swap rows of every checkpoint to this PNG")
    ap.add_argument("--seed", type=int, default=3, help="noise seed of --picture (default 3)")
    args = ap.parse_args(argv)
    if args.picture is not None and args.picture.exists():
        ap.error(f"--picture {args.picture}: exists; choose another path")
    named = [c.split("=", 1) if "=" in c else [c, c] for c in args.checkpoints]
    print("| checkpoint | emb_cos | mu_spread | mu_norm | sigma |\n|---|---|---|---|---|")
    rows = []
    for _, ck in named:
        pipe = load(ck)
        s = spread(pipe)
        print(f"| {ck} | {s['emb_cos']:.3f} | {s['mu_spread']:.2f} | {s['mu_norm']:.2f} | {s['sigma']:.3f} |")
        if args.picture is not None:
            rows.append(swap_row(pipe, args.seed))
    if args.picture is not None:
        draw_rows(rows, [label.replace(", ", "\n") for label, _ in named], args.picture)
        print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
