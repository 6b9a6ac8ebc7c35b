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
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "speechvision" / "assets" / "examples"


def spread(checkpoint: str | None) -> dict[str, float]:
    """The four figures above for a bundle or GAN run (None: the bundled model)."""
    from speechvision.s2igan.pipeline import S2IGANPipeline

    wavs = sorted(EXAMPLES.glob("swap-*-coat.flac"))
    pipe = S2IGANPipeline.load(checkpoint)
    with torch.no_grad():
        e = pipe.embed(wavs)  # (8, E)
        G = pipe.generator
        _, mu, logvar = G.ca(G.condition_input(e))  # (8, C) each
    n = len(wavs)
    off = ~torch.eye(n, dtype=torch.bool)
    en = torch.nn.functional.normalize(e, dim=1)
    return {"emb_cos": float((en @ en.T)[off].mean()), "mu_spread": float(torch.cdist(mu, mu)[off].mean()),
            "mu_norm": float(mu.norm(dim=1).mean()), "sigma": float(torch.exp(0.5 * logvar).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="bundle files or GAN run folders; 'bundled' for the package's model")
    args = ap.parse_args(argv)
    print("| checkpoint | emb_cos | mu_spread | mu_norm | sigma |\n|---|---|---|---|---|")
    for ck in args.checkpoints:
        s = spread(None if ck == "bundled" else ck)
        print(f"| {ck} | {s['emb_cos']:.3f} | {s['mu_spread']:.2f} | {s['mu_norm']:.2f} | {s['sigma']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
