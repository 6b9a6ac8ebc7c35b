"""Real-image augmentation (s2igan/augment.py): the official resize 76/64 + random crop + flip, K cached views,
one drawn per epoch; the spoken-fashion shift option; the SEN and GAN data paths that read them."""

import numpy as np
import pytest
import torch
from PIL import Image
from test_external import make_cub

from speechvision.data.external import build_reed
from speechvision.data.manifest import DatasetError, load_dataset
from speechvision.metrics.features import load_images_uint8
from speechvision.s2igan.augment import augment_views, resize_uint8, resized_size, view_for_epoch
from speechvision.s2igan.config import AugmentConfig, config_from_dict, preset
from speechvision.s2igan.gan_data import GANBatches, training_images
from speechvision.s2igan.sen_data import SENInputs

BIRD = (slice(20, 50), slice(10, 50))  # rows, columns of the fixture's bounding box (10, 20, 40, 30)


def _paint_cub(root):
    """Fixture CUB images: red outside the official crop (half-size 0.75 * 40 = 30 around (30, 35): rows 5..64,
    columns 0..59), a grey ramp inside it and the bird box pure green."""
    for f in (root / "CUB_200_2011" / "images").rglob("*.jpg"):
        a = np.zeros((90, 120, 3), np.uint8)
        a[:] = (255, 0, 0)
        a[5:65, 0:60] = (100 + np.arange(60))[None, :, None]
        a[BIRD] = (0, 255, 0)
        Image.fromarray(a).save(f, format="PNG")  # lossless under the .jpg name (JPEG would bleed red in)


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    make_cub(root / "src", with_audio=False)
    _paint_cub(root / "src")
    return load_dataset(build_reed("cub", root / "src", root / "out", synthesize=False, progress=False))


def _cub_tensors(ds):
    return [torch.from_numpy(np.array(im)).permute(2, 0, 1)
            for im in load_images_uint8([ds.path(r.image) for r in ds.records], same_size=False)]


def _green(x):  # (..., 3, H, W) uint8 -> (..., H, W) bird pixels
    r, g, b = x.unbind(-3)
    return (g > 200) & (r < 60) & (b < 60)


def test_cub_views_keep_the_bird_inside_the_official_crop(cub):
    aug = AugmentConfig(enabled=True, views=8)
    images = _cub_tensors(cub)
    views = augment_views(images, aug, 256)
    assert views.shape == (6, 8, 3, 256, 256) and views.dtype == torch.uint8
    r, g, b = views.int().unbind(2)
    assert not ((r > 150) & (g < 90) & (b < 90)).any()  # nothing from outside the official crop
    for img, v in zip(images, views):
        base = resize_uint8(img, resized_size(*img.shape[-2:], aug, 256))
        assert base.shape[-2:] == (304, 304)  # official Resize(int(256 * 76 / 64))
        bird = int(_green(base).sum())
        assert bird > 0 and all(int(_green(x).sum()) == bird for x in v[1:])  # the whole bird in every crop
        torch.testing.assert_close(v[0], resize_uint8(img, (256, 256)), rtol=0, atol=0)  # view 0: plain
        assert len({x.numpy().tobytes() for x in v[1:]}) == 7  # the crops differ
    flipped = [torch.equal(x.flip(-1), base[:, y:y + 256, s:s + 256])
               for x in views[-1, 1:] for y in range(49) for s in range(49)]
    assert any(flipped)  # some views are mirrored crops


def test_views_are_reproducible_and_seeded(cub):
    images = _cub_tensors(cub)
    a = augment_views(images, AugmentConfig(enabled=True, seed=3), 64)
    torch.testing.assert_close(a, augment_views(images, AugmentConfig(enabled=True, seed=3), 64), rtol=0, atol=0)
    other = augment_views(images, AugmentConfig(enabled=True, seed=4), 64)
    assert torch.equal(a[:, 0], other[:, 0]) and not torch.equal(a[:, 1:], other[:, 1:])
    more = augment_views(images, AugmentConfig(enabled=True, seed=3, views=6), 64)
    assert torch.equal(more[:, :4], a)  # view k is the same whatever K
    keyed = augment_views(images[2:], AugmentConfig(enabled=True, seed=3), 64, keys=range(2, 6))
    assert torch.equal(keyed, a[2:])  # an image's views depend on its key, not on the batch
    assert torch.equal(training_images(cub, [2, 3], 64, AugmentConfig(enabled=True, seed=3)), a[2:4])
    with pytest.raises(ValueError, match="resize_ratio"):
        augment_views(images, AugmentConfig(enabled=True, resize_ratio=0.9), 64)


def test_view_for_epoch_draws_augmented_views_per_epoch():
    e0, e1 = view_for_epoch(0, 0, 500, 4), view_for_epoch(0, 1, 500, 4)
    assert torch.equal(e0, view_for_epoch(0, 0, 500, 4)) and not torch.equal(e0, e1)
    assert set(e0.tolist()) == {1, 2, 3}  # view 0, the plain image, is for evaluation
    assert not torch.equal(e0, view_for_epoch(1, 0, 500, 4))
    assert torch.equal(view_for_epoch(0, 5, 7, 1), torch.zeros(7, dtype=torch.long))


def test_shift_option_shifts_and_flips_the_plain_image():
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    m = 3
    views = augment_views([img], AugmentConfig(enabled=True, max_shift_px=m, views=12), 64)[0]
    assert torch.equal(views[0], img)
    padded = torch.nn.functional.pad(img[None].float(), (m, m, m, m), mode="replicate")[0].byte()
    shifts = set()
    for v in views[1:]:
        windows = {(dy - m, dx - m): padded[:, dy:dy + 64, dx:dx + 64] for dy in range(2 * m + 1)
                   for dx in range(2 * m + 1)}
        hits = [(*d, flip) for d, w in windows.items() for flip in (0, 1)
                if torch.equal(v, w.flip(-1) if flip else w)]
        assert hits, "every view is the image shifted by at most max_shift_px, maybe mirrored"
        shifts.add(hits[0])
    assert len(shifts) > 5 and {s[2] for s in shifts} == {0, 1}


def _view_batches(augment, n=8, k=4, size=16):
    """GANBatches over images whose pixels encode (image, view) and embeddings that encode the same."""
    gc = config_from_dict({"gan": {"batch_size": 4, "generator": {"base_size_px": 4}}}).gan
    code = torch.arange(n)[:, None] * 10 + torch.arange(k)[None, :]  # (N, K)
    images = code[:, :, None, None, None].expand(n, k, 3, size, size).to(torch.uint8).clone()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return GANBatches(images, labels, [[0]] * n, torch.zeros(1, 2), code[:, :, None].float(), gc, "cpu",
                      augment=augment), code


def test_gan_batches_show_each_image_in_its_epoch_view():
    b, code = _view_batches(AugmentConfig(enabled=True, seed=1))
    seen = []
    for step in (0, 1, 2, 3):
        x = b.get(step)
        v = b.views_of_epoch(step // b.steps_per_epoch)
        pix = ((x["real"][-1][:, 0, 0, 0] + 1) * 127.5).round().long()  # back to uint8 codes
        assert torch.equal(pix, code[x["index"], v[x["index"]]])
        assert torch.equal(x["anchor"].flatten().long(), pix)  # the RS anchor in the same view
        assert [s.shape[-1] for s in x["real"]] == [4, 8, 16] and (x["similar"] % 10 > 0).all()
        seen.append(v)
    assert not torch.equal(seen[0], seen[-1])  # a new draw in the next epoch
    again, _ = _view_batches(AugmentConfig(enabled=True, seed=1))
    torch.testing.assert_close(again.get(3)["real"][0], b.get(3)["real"][0], rtol=0, atol=0)
    off, _ = _view_batches(AugmentConfig(enabled=False))
    assert (off.get(2)["anchor"] % 10 == 0).all()  # augmentation off: view 0, the plain image
    with pytest.raises(DatasetError, match="no augmented views"):
        GANBatches(torch.zeros(8, 3, 16, 16, dtype=torch.uint8), torch.zeros(8), [[0]] * 8, None,
                   torch.zeros(8, 1), off.cfg, "cpu", augment=AugmentConfig(enabled=True))


def test_sen_inputs_pick_the_epoch_view(cub):
    aug = AugmentConfig(enabled=True, views=4, seed=2)
    feats = torch.arange(6)[:, None, None] * 10 + torch.arange(4)[None, :, None]
    inputs = SENInputs(cub, None, feats.float().expand(6, 4, 3), {r.id: i for i, r in enumerate(cub.records)}, aug)
    recs = cub.records[::-1]
    rows = torch.arange(5, -1, -1)
    for epoch in (0, 1):
        got = inputs.images(recs, epoch=epoch)[:, 0].long()
        assert torch.equal(got, rows * 10 + view_for_epoch(2, epoch, 6, 4)[rows])
    assert torch.equal(inputs.images(recs)[:, 0].long(), rows * 10)  # evaluation: the plain image


def test_presets_and_old_configs():
    assert all(preset(p).data.augment.enabled for p in ("cub", "oxford", "flickr8k"))
    assert not preset("spoken-fashion").data.augment.enabled
    old = preset("cub").to_dict()
    del old["data"]["augment"]
    assert not config_from_dict(old).data.augment.enabled  # runs from before the key: no augmentation


def test_view_features_are_cached_per_view(cub):
    from speechvision.s2igan.image_features import image_features, view_features

    rel = [r.image for r in cub.records]
    f = view_features(cub.root, rel, AugmentConfig(enabled=True, views=3), 64, progress=False)
    assert f.shape == (6, 3, 2048)
    np.testing.assert_array_equal(f[:, 0], image_features(cub.root, rel, progress=False))  # the plain cache
    assert np.abs(f[:, 1] - f[:, 2]).max() > 0.1
    g = view_features(cub.root, rel, AugmentConfig(enabled=True, views=2, seed=0), 64, progress=False)
    np.testing.assert_array_equal(g, f[:, :2])  # read back from the per-view caches
    assert len(list((cub.root / "cache").glob("inception-view-*"))) == 2


@pytest.fixture(scope="module")
def cub_audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub_audio")
    make_cub(root / "src")
    _paint_cub(root / "src")
    return build_reed("cub", root / "src", root / "out", progress=False)


def _tiny_cub_cfg(**extra):
    from speechvision.s2igan.config import apply_overrides

    over = ["data.image_size_px=64", "data.augment.views=3", "sen.speech.rnn_hidden=16", "sen.speech.attention_dim=8",
            "sen.speech.embedding_dim=32", "sen.image.embedding_dim=32", "sen.batch_size=4", "sen.epochs=2",
            "gan.generator.base_size_px=16", "gan.generator.ngf=8", "gan.discriminator.ndf=8", "gan.batch_size=4",
            "gan.iterations=3", "gan.generator.embedding_dim=32", "gan.relation.embedding_dim=32", "gan.log_every=1",
            "gan.snapshot_every=100", "gan.checkpoint_every=100"]
    return apply_overrides(preset("cub"), over + [f"{k}={v}" for k, v in extra.items()])


def test_cub_preset_trains_the_sen_and_gan_on_augmented_views(tmp_path, cub_audio):
    """The official path end to end on the CUB fixture: view features for the SEN, views and per-view RS
    embeddings for the GAN (one step per epoch here, so every step draws new views), and a resumed GAN run
    equal to an uninterrupted one."""
    from speechvision.core.checkpoint import load_checkpoint
    from speechvision.s2igan.train_gan import train_gan
    from speechvision.s2igan.train_sen import train_sen

    train_sen(cub_audio, tmp_path / "sen", _tiny_cub_cfg(), progress=False)
    assert len(list((cub_audio / "cache").glob("inception-view-*"))) == 2
    train_gan(cub_audio, tmp_path / "sen", tmp_path / "full", _tiny_cub_cfg(), device="cpu", progress=False)
    train_gan(cub_audio, tmp_path / "sen", tmp_path / "cut", _tiny_cub_cfg(), device="cpu", progress=False,
              stop_after_step=1)
    train_gan(cub_audio, None, tmp_path / "cut", _tiny_cub_cfg(), device="cpu", progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / n, "gan") for n in ("full", "cut"))
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)
    off = _tiny_cub_cfg(**{"data.augment.enabled": "false"})
    train_sen(cub_audio, tmp_path / "sen_off", off, progress=False)
    with pytest.raises(DatasetError, match="no augmented views"):
        train_gan(cub_audio, tmp_path / "sen_off", tmp_path / "bad", _tiny_cub_cfg(), device="cpu", progress=False)


def test_epoch_views_are_fresh_each_epoch_reproducible_and_keep_the_bird(cub):
    """data.augment.on_the_fly: every epoch a new crop and flip of each image, cut from its crop base; a
    function of (seed, key, epoch), inside the official crop like the cached views."""
    from speechvision.s2igan.augment import crop_base, epoch_view

    cfg = AugmentConfig(enabled=True, on_the_fly=True, seed=3)
    img = _cub_tensors(cub)[0]
    base = crop_base(img, cfg, 64)
    assert tuple(base.shape[-2:]) == resized_size(img.shape[-2], img.shape[-1], cfg, 64)
    views = [epoch_view(base, cfg, 64, key=5, epoch=e) for e in range(6)]
    assert all(v.shape == (3, 64, 64) for v in views)
    assert len({v.numpy().tobytes() for v in views}) > 1  # new draws across epochs
    assert torch.equal(views[2], epoch_view(base, cfg, 64, key=5, epoch=2))  # reproducible (resume)
    assert not torch.equal(views[2], epoch_view(base, cfg, 64, key=6, epoch=2))  # per image
    red = lambda x: ((x[0] > 200) & (x[1] < 60)).sum()  # outside the official crop
    assert all(red(v) == 0 and _green(v).any() for v in views)


def test_cub_preset_trains_the_gan_on_the_fly_and_resumes_exactly(tmp_path, cub_audio):
    """The GPU path, run on CPU: fresh views per epoch with RS embeddings encoded per batch; a resumed run
    equals an uninterrupted one, and the cached views are not used (a SEN without views is enough)."""
    from speechvision.core.checkpoint import load_checkpoint
    from speechvision.s2igan.train_gan import train_gan
    from speechvision.s2igan.train_sen import train_sen

    sen_off = _tiny_cub_cfg(**{"data.augment.enabled": "false"})
    train_sen(cub_audio, tmp_path / "sen", sen_off, progress=False)
    fly = _tiny_cub_cfg(**{"data.augment.on_the_fly": "true"})
    train_gan(cub_audio, tmp_path / "sen", tmp_path / "full", fly, device="cpu", progress=False)
    train_gan(cub_audio, tmp_path / "sen", tmp_path / "cut", fly, device="cpu", progress=False, stop_after_step=1)
    train_gan(cub_audio, None, tmp_path / "cut", fly, device="cpu", progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / n, "gan") for n in ("full", "cut"))
    assert a["step"] == 3
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)


def test_on_the_fly_batches_encode_rs_embeddings_only_on_rs_steps():
    """With gan.rs_every=2 the real embeddings of fresh views are encoded on the RS steps only (0, 2, ...), and
    the real image and the anchor come from the same fresh view."""
    from speechvision.s2igan.augment import crop_base

    gc = config_from_dict({"gan": {"batch_size": 4, "rs_every": 2, "generator": {"base_size_px": 4}}}).gan
    aug = AugmentConfig(enabled=True, on_the_fly=True, seed=2)
    imgs = [torch.full((3, 20, 20), 10 * i, dtype=torch.uint8) for i in range(8)]
    calls = []

    def embed(views):  # (B, 3, S, S) uint8 -> (B, 1): the view's pixel code
        calls.append(len(views))
        return views[:, 0, 0, 0].float()[:, None]

    b = GANBatches(torch.zeros(8, 3, 16, 16, dtype=torch.uint8), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), [[0]] * 8,
                   torch.zeros(1, 2), torch.zeros(8, 1), gc, "cpu", augment=aug,
                   sources=[crop_base(im, aug, 16) for im in imgs], embed_real=embed)
    x0 = b.get(0)
    assert len(calls) == 3  # anchor, similar, different
    pix = ((x0["real"][-1][:, 0, 0, 0] + 1) * 127.5).round()
    torch.testing.assert_close(x0["anchor"].flatten(), pix)
    b.get(1)
    assert len(calls) == 3  # not an RS step: nothing encoded
    b.get(2)
    assert len(calls) == 6
