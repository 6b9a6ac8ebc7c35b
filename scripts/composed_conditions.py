"""Can a generator draw a garment-colour combination it never saw, given a condition composed from seen ones?

No training: the speech embeddings (B, E) of validation captions give one centroid per seen class (garment,
colour). The condition of a combination is composed additively, as a factored model of the embedding space
would place it: a garment vector plus a colour vector, fitted by least squares to the seen centroids, scaled to
the mean embedding norm. The images (one seed per image) are judged by the
attribute classifiers. Four rows, colour / garment accuracy:

- ``test_unseen, speech``: the model's own embedding of caption 0 (what ``generate`` draws);
- ``test_unseen, composed``: the composed condition of each unseen combination;
- ``test, centroid``: the seen class's own centroid (the ceiling of centroid conditions);
- ``test, composed without its class``: composed with the class's own centroid left out, as if unseen.

If the last row is high and the second low, the embedding space composes but the generator cannot draw what
it never drew: the limit is the generator's (issue 17 item 5), and no speech encoder alone can lift it.

    python scripts/composed_conditions.py --data /work/runs/i17d/data --classifier /work/runs/i17d/judges
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from common_args import script_parser

from speechvision.data.manifest import load_dataset
from speechvision.metrics.semantic import attribute_accuracy
from speechvision.s2igan.classifier import load_classifier, predict
from speechvision.s2igan.pipeline import S2IGANPipeline


def class_of(record, vocab: dict) -> tuple[int, int]:
    return vocab["garment"].index(record.attributes["garment"]), vocab["colour"].index(record.attributes["colour"])


def centroids(emb: torch.Tensor, classes: list[tuple[int, int]], shape: tuple[int, int]) -> tuple:
    """(G, C, E) mean embedding per class and the (G, C) mask of classes seen at least once."""
    sums, counts = torch.zeros(*shape, emb.shape[1]), torch.zeros(shape)
    for (g, c), e in zip(classes, emb):
        sums[g, c] += e
        counts[g, c] += 1
    seen = counts > 0
    sums[seen] /= counts[seen][:, None]
    return sums, seen


def compose(cent: torch.Tensor, seen: torch.Tensor, g: int, c: int, norm: float, leave_out: bool) -> torch.Tensor:
    """The additive condition of (g, c): a garment vector plus a colour vector, fitted by least squares to the
    seen centroids (its own left out when ``leave_out``; exact whenever the seen centroids are additive), scaled
    to ``norm``."""
    mask = seen.clone()
    if leave_out:
        mask[g, c] = False
    n_g, n_c = seen.shape
    rows = mask.nonzero()  # (K, 2) seen (garment, colour) pairs
    design = torch.zeros(len(rows), n_g + n_c)
    design[torch.arange(len(rows)), rows[:, 0]] = 1.0
    design[torch.arange(len(rows)), n_g + rows[:, 1]] = 1.0
    factors = torch.linalg.pinv(design) @ cent[mask]  # (G + C, E), the minimum-norm least-squares fit
    return scaled(factors[g] + factors[n_g + c], norm)


def scaled(v: torch.Tensor, norm: float) -> torch.Tensor:
    """``v`` rescaled to length ``norm`` (the mean length of the model's speech embeddings)."""
    return v / v.norm() * norm


def judged(pipe, model, embs: torch.Tensor, truth: np.ndarray) -> dict:
    """Attribute accuracy of the images of (B, E) conditions (seed = position) against (B, 2) (garment, colour)."""
    pred = predict(model, pipe.generate(embs, list(range(len(embs))))[-1])
    return attribute_accuracy(pred, {"garment": truth[:, 0], "colour": truth[:, 1]})


def main() -> int:
    ap = script_parser(__doc__)
    ap.add_argument("--data", required=True, help="a spoken-fashion dataset with val, test and test_unseen")
    ap.add_argument("--classifier", required=True, help="attribute judges (speechvision train classifier)")
    ap.add_argument("--checkpoint", help="bundle or GAN run (default: the bundled model)")
    ap.add_argument("--captions", type=int, default=3, help="val captions per image for the centroids")
    ap.add_argument("--limit", type=int, default=250, help="images per test row")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    vocab = ds.meta["attributes"]
    pipe = S2IGANPipeline.load(args.checkpoint)
    model, _ = load_classifier(args.classifier)
    pairs = [(class_of(r, vocab), ds.path(c.audio)) for r in ds.split("val") for c in r.captions[:args.captions]
             if c.audio]
    emb = pipe.embed([w for _, w in pairs])
    norm = float(emb.norm(dim=1).mean())
    cent, seen = centroids(emb, [k for k, _ in pairs], (len(vocab["garment"]), len(vocab["colour"])))
    unseen, test = ds.split("test_unseen")[:args.limit], ds.split("test")[:args.limit]
    tu = np.array([class_of(r, vocab) for r in unseen])
    tt = np.array([class_of(r, vocab) for r in test])
    rows = {
        "test_unseen, speech": judged(pipe, model, pipe.embed([ds.path(r.captions[0].audio) for r in unseen]), tu),
        "test_unseen, composed": judged(pipe, model, torch.stack(
            [compose(cent, seen, g, c, norm, False) for g, c in tu]), tu),
        "test, centroid": judged(pipe, model, torch.stack([scaled(cent[g, c], norm) for g, c in tt]), tt),
        "test, composed without its class": judged(pipe, model, torch.stack(
            [compose(cent, seen, g, c, norm, True) for g, c in tt]), tt),
    }
    print(json.dumps({"seen_classes": int(seen.sum()), "val_embeddings": len(pairs), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
