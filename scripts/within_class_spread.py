"""How much the speech of one garment-colour class varies where the generator reads it: within-class spread of
the SEN embeddings and of the conditioning-augmentation means mu, for several speech encoders in front of one
generator.

For each checkpoint's speech encoder, ``--per-class`` training utterances per class (drawn with seed 0, in class
order) are embedded (microphone cleanup on, as in ``generate``); every embedding set then goes through the CA of
one generator (``--generator``, default the bundled model's), so the numbers compare the encoders on the same
scale. Printed per encoder:

- ``emb_rms``: root-mean-square distance of the (N, E) unit embeddings from their class means;
- ``emb_cos``: mean cosine to the class mean;
- ``mu_within`` / ``mu_between``: the same rms distance of the (N, C) CA means from their class means, and of the
  class means from their grand mean;
- ``noise_rms``: the CA's own noise, sigma x sqrt(C) (what the generator adds to every condition);
- ``mu_offset`` (every encoder after the first): the rms distance of its class means from the first encoder's,
  so with the generator's own training SEN first it says how far another encoder moves each class.

    python scripts/within_class_spread.py --data /work/runs/sf-s8/data v1=/work/runs/bundle-v1.pt bundled
"""

from __future__ import annotations

import random
from collections import defaultdict

import torch
from common_args import script_parser

from speechvision.data.manifest import load_dataset
from speechvision.s2igan.pipeline import S2IGANPipeline


def training_utterances(data: str, per_class: int) -> tuple[list, torch.Tensor]:
    """Up to ``per_class`` caption audio files of the training split per class, and their (N,) class ids."""
    ds = load_dataset(data)
    by_class = defaultdict(list)
    for r in ds.split("train"):
        by_class[r.class_id].extend(ds.path(c.audio) for c in r.captions if c.audio)
    rng, wavs, labels = random.Random(0), [], []
    for k in sorted(by_class):
        pick = rng.sample(by_class[k], min(per_class, len(by_class[k])))
        wavs += pick
        labels += [k] * len(pick)
    return wavs, torch.tensor(labels)


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root-mean-square distance between the matching rows of two (K, D) tensors (``b`` may be one (D,) row)."""
    return (a - b).norm(dim=1).pow(2).mean().sqrt().item()


def rms_from_class_means(x: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """(rms distance of the rows from their class means, mean cosine to them, the (K, D) class means)."""
    classes = labels.unique()
    means = torch.stack([x[labels == k].mean(0) for k in classes])
    own = means[torch.searchsorted(classes, labels)]
    return rms_distance(x, own), torch.nn.functional.cosine_similarity(x, own).mean().item(), means


@torch.no_grad()
def main() -> None:
    ap = script_parser(__doc__)
    ap.add_argument("checkpoints", nargs="+", help="NAME=bundle, or 'bundled'")
    ap.add_argument("--data", required=True, help="dataset folder whose training speech is embedded")
    ap.add_argument("--generator", default=None, help="bundle whose CA reads every encoder (default: bundled)")
    ap.add_argument("--per-class", type=int, default=40)
    args = ap.parse_args()
    wavs, labels = training_utterances(args.data, args.per_class)
    g = S2IGANPipeline.load(args.generator).generator
    print(f"{len(wavs)} training utterances, {len(labels.unique())} classes")
    first_means = None
    for spec in args.checkpoints:
        name, _, path = spec.partition("=")
        emb = S2IGANPipeline.load(path or None).embed(wavs)
        emb_rms, emb_cos, _ = rms_from_class_means(emb, labels)
        mu, logvar = g.ca.moments(g.condition_input(emb))  # (N, C) each, no noise drawn
        within, _, means = rms_from_class_means(mu, labels)
        between = rms_distance(means, means.mean(0))
        noise = logvar.mul(0.5).exp().mean().item() * mu.shape[1] ** 0.5
        offset = "" if first_means is None else f"  mu_offset {rms_distance(means, first_means):.2f}"
        if first_means is None:
            first_means = means
        print(f"{name}: emb_rms {emb_rms:.4f}  emb_cos {emb_cos:.4f}  mu_within {within:.2f}  "
              f"mu_between {between:.2f}  noise_rms {noise:.2f}{offset}")


if __name__ == "__main__":
    main()
