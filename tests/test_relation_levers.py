"""The RS's CPU levers (issue 16): its Inception input size, bf16, and the RS every k steps."""

import pytest
import torch

from speechvision.core.inception import InceptionFeatures
from speechvision.s2igan.config import ConfigError, apply_overrides, preset
from speechvision.s2igan.relation_encoder import RelationImageEncoder


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures()


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    h = torch.nn.Sequential(torch.nn.Linear(2048, 32), torch.nn.Flatten())
    for p in h.parameters():
        p.requires_grad_(False)
    return h


def test_paper_presets_keep_the_paper_rs_and_bad_levers_are_refused():
    for name in ("cub", "oxford", "flickr8k"):
        gc = preset(name).gan
        assert (gc.rs_image_size_px, gc.rs_bf16, gc.rs_every) == (299, False, 1)
    for bad, msg in (("gan.rs_image_size_px=74", "in 75..299"), ("gan.rs_image_size_px=300", "in 75..299"),
                     ("gan.rs_every=0", "above 0")):
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(preset("spoken-fashion"), [bad])


def test_paper_size_is_inceptions_own_path(inception, head):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    enc = RelationImageEncoder(inception, head)
    assert enc.paper
    torch.testing.assert_close(enc.fake(x), head(inception.differentiable(x)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="rs_image_size_px=74"):
        RelationImageEncoder(inception, head, 74)


def test_small_size_encodes_reals_and_fakes_alike_with_gradients(inception, head):
    imgs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    enc = RelationImageEncoder(inception, head, 96)
    real = enc.real(imgs, chunk=2)  # two chunks
    x = (imgs.float() / 127.5 - 1).requires_grad_(True)
    fake = enc.fake(x)
    torch.testing.assert_close(fake.detach(), real, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(real, RelationImageEncoder(inception, head).real(imgs), atol=1e-3)  # 96 != 299 px
    fake.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    views = enc.real(torch.stack([imgs, imgs.flip(-1)], dim=1))  # (N, K, 3, S, S) -> (N, K, D)
    assert views.shape == (3, 2, 32)
    torch.testing.assert_close(views[:, 0], real, rtol=1e-4, atol=1e-4)
    bf16 = RelationImageEncoder(inception, head, 96, bf16=True).real(imgs)
    assert bf16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(bf16, real).min() > 0.95


def test_rs_every_k_runs_the_rs_on_every_kth_step_with_its_own_weight():
    """The generator's RS term is not scaled by k: weighted x2 at k = 2 it kept the spoken colour out of the
    conditioning (docs/results.md, issue 16's A/B and full runs)."""
    from tests.test_gan import _tiny_loss

    loss, batch, G, Ds, RS = _tiny_loss()
    loss.cfg.rs_every = 3
    assert [("RS" in loss.phases_at(s)) for s in range(6)] == [True, False, False, True, False, False]
    loss.prepare(batch, step=1)
    assert "G_RS" not in loss.accumulate_gradients("G", batch)
    Ds.requires_grad_(False)
    G.eval()  # batch norm in eval mode: the same forward every time

    def g_grad(rs_weight, k):
        loss.cfg.rs_weight, loss.cfg.rs_every = rs_weight, k
        G.zero_grad()
        loss.prepare(batch, step=0)
        assert "G_RS" in loss.accumulate_gradients("G", batch)
        return torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None])

    g0, g1, g3 = g_grad(0.0, 1), g_grad(1.0, 1), g_grad(1.0, 3)
    assert (g1 - g0).abs().max() > 0
    torch.testing.assert_close(g3 - g0, g1 - g0, rtol=1e-3, atol=1e-6)
    g_half = g_grad(0.5, 3)
    torch.testing.assert_close(g_half - g0, 0.5 * (g1 - g0), rtol=1e-3, atol=1e-6)
