"""scripts/composed_conditions.py: the additive composition of a class's condition from the others."""

from pathlib import Path

import torch
from conftest import load_script


def composed(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    return load_script("composed_conditions")


def test_an_additive_space_gives_back_a_left_out_class_and_a_never_seen_one(monkeypatch):
    mod = composed(monkeypatch)
    g, c, e = 4, 3, 16
    torch.manual_seed(0)
    garment, colour = torch.randn(g, e), torch.randn(c, e)
    space = garment[:, None] + colour[None]  # (G, C, E): exactly additive
    classes = [(i, j) for i in range(g) for j in range(c) if (i, j) != (2, 1)]  # (2, 1) never seen
    emb = torch.stack([space[i, j] for i, j in classes])
    cent, seen = mod.centroids(emb, classes, (g, c))
    assert not seen[2, 1] and int(seen.sum()) == g * c - 1
    for (i, j), leave_out in (((2, 1), False), ((0, 0), True)):
        v = mod.compose(cent, seen, i, j, 1.0, leave_out)
        assert torch.allclose(v, space[i, j] / space[i, j].norm(), atol=1e-5)
        assert abs(float(v.norm()) - 1.0) < 1e-5


def test_a_non_additive_class_is_not_recovered_when_left_out(monkeypatch):
    mod = composed(monkeypatch)
    torch.manual_seed(1)
    space = torch.randn(3, 3, 8)  # no structure: composition must not find the left-out centroid
    classes = [(i, j) for i in range(3) for j in range(3)]
    cent, seen = mod.centroids(torch.stack([space[i, j] for i, j in classes]), classes, (3, 3))
    v = mod.compose(cent, seen, 1, 1, 1.0, True)
    assert torch.cosine_similarity(v, space[1, 1], dim=0) < 0.9
