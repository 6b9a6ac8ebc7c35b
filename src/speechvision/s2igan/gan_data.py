"""What the GAN stage reads: :class:`GANData` (images, captions and their frozen SEN embeddings, computed
once by :func:`prepare_gan_data` or loaded from a safetensors file), the deterministic per-step
:class:`GANBatches`, and the caption embeddings the generator is conditioned on (:class:`CaptionEmbedder`).

Every step's randomness (batch order, caption choice, noise, mismatched and same-class pairs) is a
function of ``(seed, step)``, so ``--resume`` after a kill continues exactly where the checkpoint was.

Real-image augmentation (``data.augment``, :mod:`speechvision.s2igan.augment`): when the SEN's config has it
on, :class:`GANData` holds K views per image, (N, K, 3, S, S) uint8, with their Inception features
(N, K, 2048); :class:`GANBatches` shows each real and wrong image in the view drawn for the epoch (the RS's
anchor, similar and different embeddings in the same view) and builds the smaller scales per batch. With
``data.augment.on_the_fly`` (for a GPU) it instead crops a fresh view of every image each epoch from the
image's crop base (:func:`~speechvision.s2igan.augment.epoch_view`) and encodes the RS's real embeddings of
those views as the batch is drawn, as the official code does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from speechvision.core.images import to_unit_range
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.s2igan.augment import augment_views, crop_base, epoch_view, resize_uint8, view_for_epoch
from speechvision.s2igan.config import AugmentConfig, Config
from speechvision.s2igan.image_features import load_images
from speechvision.s2igan.sen_data import SENInputs, embed_speech


def uint8_pyramid(images: torch.Tensor, sizes_px: list[int], chunk: int = 512) -> list[torch.Tensor]:
    """(N, 3, S, S) uint8 -> per scale (N, 3, s, s) uint8, resized once (bilinear with antialias) and
    rounded, as the official code resizes each PIL image per scale. Built once per run, so the loader
    only indexes (the data pipeline is not the bottleneck, docs/performance.md)."""
    out = []
    for size in sizes_px:
        if size == images.shape[-1]:
            out.append(images)
            continue
        parts = [F.interpolate(images[i:i + chunk].float(), size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
                 for i in range(0, len(images), chunk)]
        out.append(torch.cat(parts).contiguous())
    return out


class GANBatches:
    """Deterministic per-step batches for the GAN phases (see module docstring).

    Args:
        images: (N, 3, S, S) uint8 training images, or (N, K, 3, S, S) their K views (view 0 plain);
        labels: (N,) classes; caption_audio: per image, the indices of its captions in ``embeddings`` (N lists);
        embeddings: (A, E) speech embeddings (None in end-to-end mode, see ``caption_choice``);
        image_emb: (N, D) frozen image embeddings of the real images (for the RS), or (N, K, D) per view;
        cfg: the :class:`~speechvision.s2igan.config.GANConfig`; augment: see :meth:`use_augment`.

    Without views the image pyramid is built once ((1 + 1/4 + 1/16) x the images' bytes); with views the
    smaller scales are resized per batch on ``device`` (a pyramid of all K views of CUB at 256 px would
    take 9 GB).
    """

    def __init__(self, images, labels, caption_audio, embeddings, image_emb, cfg, device,
                 augment: AugmentConfig | None = None, sources: list[torch.Tensor] | None = None,
                 embed_real=None):
        self.images, self.labels = images, torch.as_tensor(labels)
        self.caption_audio, self.embeddings, self.image_emb = caption_audio, embeddings, image_emb
        self.cfg, self.device = cfg, device
        self.B = cfg.batch_size
        self.steps_per_epoch = len(images) // self.B
        if self.steps_per_epoch == 0:
            raise DatasetError(f"{len(images)} training images is fewer than one batch ({self.B})")
        self._perm_epoch, self._perm = -1, None
        self.by_class = {int(c): torch.nonzero(self.labels == c).flatten() for c in torch.unique(self.labels)}
        self.has_views = images.dim() == 5
        self.scales = None if self.has_views else uint8_pyramid(images, cfg.generator.sizes_px)
        self.augment, self._view_epoch, self._views = None, -1, None
        self.sources, self.embed_real, self.fresh = sources, embed_real, False
        if augment is not None:
            self.use_augment(augment)

    def use_augment(self, augment: AugmentConfig) -> None:
        """Draw each image's view per epoch (``augment.enabled``: uniform over views 1 .. K-1, seeded with
        ``augment.seed``; the views themselves are the SEN config's) or show view 0, the plain image (off).

        With ``augment.on_the_fly``: a fresh view of every image each epoch, cropped from ``sources``.

        Raises:
            DatasetError: augmentation is on but the images have no views (the SEN's ``data.augment`` was
                off, or the GANData file was made without it), or on the fly without crop bases.
        """
        self.fresh = augment.enabled and augment.on_the_fly
        if self.fresh:
            if self.sources is None:
                raise DatasetError("data.augment.on_the_fly needs the training images' crop bases: train the GAN "
                                   "from the dataset folder, not a GANData file")
            self.augment, self._view_epoch = augment, -1
            return
        if augment.enabled and not self.has_views:
            raise DatasetError("data.augment is on but the GAN data has no augmented views (the SEN run's "
                               "data.augment was off): train the SEN with it, or --set data.augment.enabled=false")
        self.augment, self._view_epoch = (augment if augment.enabled else None), -1

    def views_of_epoch(self, epoch: int) -> torch.Tensor:
        """(N,) the view each image shows in ``epoch`` (all 0 without views or with augmentation off)."""
        if epoch != self._view_epoch:
            n = len(self.images)
            self._views = (view_for_epoch(self.augment.seed, epoch, n, self.images.shape[1])
                           if self.augment is not None else torch.zeros(n, dtype=torch.long))
            self._view_epoch = epoch
        return self._views

    def real_images(self, rows: torch.Tensor, views: torch.Tensor) -> list[torch.Tensor]:
        """Per scale (B, 3, s, s) in [-1, 1] on the device: images ``rows``, each in its view of ``views``."""
        if not self.has_views:
            return [to_unit_range(s[rows].to(self.device)) for s in self.scales]
        x = self.images[rows, views[rows]].to(self.device)
        return [to_unit_range(s) for s in uint8_pyramid(x, self.cfg.generator.sizes_px)]

    def embeddings_of(self, rows: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(B, D) frozen image embeddings of images ``rows`` (in their view when ``image_emb`` has views)."""
        e = self.image_emb[rows, views[rows]] if self.image_emb.dim() == 3 else self.image_emb[rows]
        return e.to(self.device)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.images), generator=g), epoch
        return self._perm

    def _pick_same_class(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        out = idx.clone()
        for j, i in enumerate(idx.tolist()):
            pool = self.by_class[int(self.labels[i])]
            if len(pool) > 1:
                k = int(torch.randint(len(pool) - 1, (1,), generator=g))
                cand = pool[k]
                out[j] = pool[-1] if cand == i else cand  # uniform over the others
        return out

    def _pick_other_class(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        out = torch.randint(len(self.images), (len(idx),), generator=g)
        for _ in range(100):
            clash = self.labels[out] == self.labels[idx]
            if not clash.any():
                break
            out[clash] = torch.randint(len(self.images), (int(clash.sum()),), generator=g)
        return out

    def fresh_views(self, rows: torch.Tensor, epoch: int) -> torch.Tensor:
        """(B, 3, S, S) uint8: each image of ``rows`` in its fresh view of ``epoch`` (on the fly)."""
        size = self.cfg.generator.sizes_px[-1]
        return torch.stack([epoch_view(self.sources[i], self.augment, size, i, epoch) for i in rows.tolist()])

    def _images_and_embeddings(self, rows: dict, epoch: int, step: int) -> dict:
        """The real and wrong images (per scale) and the RS's anchor, similar and different embeddings (on the
        fly, encoded only on the steps the RS runs: ``step % rs_every == 0``; zeros otherwise, unread)."""
        if not self.fresh:
            v = self.views_of_epoch(epoch)
            return {"real": self.real_images(rows["real"], v), "wrong": self.real_images(rows["wrong"], v),
                    **{k: self.embeddings_of(rows[src], v) for k, src in (("anchor", "real"), ("similar", "similar"),
                                                                          ("different", "different"))}}
        views = {k: self.fresh_views(r, epoch) for k, r in rows.items()}
        out = {k: [to_unit_range(s) for s in uint8_pyramid(views[k].to(self.device), self.cfg.generator.sizes_px)]
               for k in ("real", "wrong")}
        encode = self.embed_real is not None and step % self.cfg.rs_every == 0
        for name, src in (("anchor", "real"), ("similar", "similar"), ("different", "different")):
            out[name] = (self.embed_real(views[src]).to(self.device) if encode
                         else torch.zeros(len(rows[src]), 1, device=self.device))
        return out

    def get(self, step: int) -> dict:
        epoch, k = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[k * self.B:(k + 1) * self.B]
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        gc = self.cfg.generator
        choice = torch.randint(1 << 30, (self.B,), generator=g)
        audio = torch.tensor([self.caption_audio[i][int(c) % len(self.caption_audio[i])]
                              for i, c in zip(idx.tolist(), choice)])
        wrong, similar = self._pick_other_class(idx, g), self._pick_same_class(idx, g)
        different = self._pick_other_class(idx, g)
        z, eps = torch.randn(self.B, gc.noise_dim, generator=g), torch.randn(self.B, gc.condition_dim, generator=g)
        dev = self.device
        batch = {"audio": audio, "z": z.to(dev), "eps": eps.to(dev), "index": idx,
                 **self._images_and_embeddings({"real": idx, "wrong": wrong, "similar": similar,
                                                "different": different}, epoch, step)}
        if self.embeddings is not None:
            batch["embedding"] = self.embeddings[audio].to(dev)
        return batch


@dataclass
class GANData:
    """Everything the GAN stage reads, precomputed once from a dataset and a frozen SEN.

    Attributes:
        images: (N, 3, S, S) uint8 training images at the last stage's size, or (N, K, 3, S, S) their K
            augmented views (view 0 plain) when the SEN's ``data.augment`` is on.
        labels: (N,) class ids.
        caption_offsets: (N + 1,) and caption_audio: (M,): image i's captions are rows
            ``caption_audio[caption_offsets[i]:caption_offsets[i + 1]]`` of ``embeddings``.
        embeddings: (A, E) float32 SEN speech embeddings.
        image_features: (N, 2048) Inception pool features of the images ((N, K, 2048) with views), or None
            (computed on use).
        snapshot_audio: (K,) rows of ``embeddings`` used for snapshot grids (val caption 0).
        audio_paths: the A audio files (relative to the dataset), for end-to-end training.
        sources: with ``data.augment.on_the_fly``, each training image's crop base (3, h, w) uint8
            (:func:`~speechvision.s2igan.augment.crop_base`), from which a fresh view is cut every epoch.
    """

    images: torch.Tensor
    labels: torch.Tensor
    caption_offsets: torch.Tensor
    caption_audio: torch.Tensor
    embeddings: torch.Tensor
    image_features: torch.Tensor | None
    snapshot_audio: torch.Tensor
    audio_paths: list[str]
    sources: list[torch.Tensor] | None = None  # crop bases of the images (data.augment.on_the_fly)

    def captions_of(self) -> list[list[int]]:
        o, a = self.caption_offsets.tolist(), self.caption_audio.tolist()
        return [a[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def compact(self) -> GANData:
        """Keep only the embedding rows that captions or snapshots use (indices remapped)."""
        used = torch.unique(torch.cat([self.caption_audio, self.snapshot_audio]))
        remap = torch.full((len(self.embeddings),), -1, dtype=torch.long)
        remap[used] = torch.arange(len(used))
        return GANData(self.images, self.labels, self.caption_offsets, remap[self.caption_audio],
                       self.embeddings[used], self.image_features, remap[self.snapshot_audio],
                       [self.audio_paths[i] for i in used.tolist()], self.sources)

    def save(self, path: str | Path, *, fp16: bool = True) -> None:
        """One safetensors file (for moving the GAN stage to another machine)."""
        from safetensors.torch import save_file

        t = {k: getattr(self, k) for k in ("images", "labels", "caption_offsets", "caption_audio",
                                            "embeddings", "snapshot_audio")}
        if self.image_features is not None:
            t["image_features"] = self.image_features
        t = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous() for k, v in t.items()}
        save_file(t, str(path), metadata={"audio_paths": json.dumps(self.audio_paths)})

    @staticmethod
    def load(path: str | Path) -> GANData:
        from safetensors import safe_open
        from safetensors.torch import load_file

        t = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            audio_paths = json.loads(f.metadata()["audio_paths"])
        f32 = {k: v.float() if v.is_floating_point() else v for k, v in t.items()}
        return GANData(f32["images"], f32["labels"], f32["caption_offsets"], f32["caption_audio"], f32["embeddings"],
                       f32.get("image_features"), f32["snapshot_audio"], audio_paths)


def training_images(ds: Dataset, rows: list[int], size_px: int, augment: AugmentConfig | None = None,
                    chunk: int = 256) -> torch.Tensor:
    """(N, 3, S, S) uint8 images of records ``rows`` resized to S = ``size_px`` (bilinear, antialias), or with
    ``augment`` their (N, K, 3, S, S) views (:func:`speechvision.s2igan.augment.augment_views`; seed key =
    the record's position in the dataset, as for the SEN's view features), read ``chunk`` files at a time."""
    files = [ds.path(ds.records[i].image) for i in rows]
    if augment is not None:
        out = torch.empty(len(rows), augment.views, 3, size_px, size_px, dtype=torch.uint8)
        for s in range(0, len(rows), chunk):
            imgs = [torch.from_numpy(im).permute(2, 0, 1) for im in load_images(files[s:s + chunk])]
            out[s:s + chunk] = augment_views(imgs, augment, size_px, keys=rows[s:s + chunk])
        return out
    loaded = load_images(files)
    if isinstance(loaded, list):  # sizes differ (CUB's bounding-box crops): resize each
        return torch.stack([resize_uint8(torch.from_numpy(im).permute(2, 0, 1), (size_px, size_px)) for im in loaded])
    images = torch.from_numpy(loaded).permute(0, 3, 1, 2)
    if images.shape[-1] != size_px:
        images = F.interpolate(images.float(), size=(size_px, size_px), mode="bilinear", antialias=True).round().byte()
    return images


def crop_bases(ds: Dataset, rows: list[int], augment: AugmentConfig, size_px: int, chunk: int = 256) -> list[torch.Tensor]:
    """Each record's :func:`~speechvision.s2igan.augment.crop_base` (3, h, w) uint8, read ``chunk`` files at a
    time (for ``data.augment.on_the_fly``)."""
    files = [ds.path(ds.records[i].image) for i in rows]
    out = []
    for s in range(0, len(files), chunk):
        out += [crop_base(torch.from_numpy(im).permute(2, 0, 1), augment, size_px) for im in load_images(files[s:s + chunk])]
    return out


def prepare_gan_data(ds: Dataset, sen, sen_cfg: Config, size_px: int, *, progress: bool = True,
                     inputs: SENInputs | None = None, fresh: AugmentConfig | None = None) -> GANData:
    """Embed every caption with the frozen SEN and collect the training images (train split), as K views
    each when the SEN's ``data.augment`` is on (their features only if ``inputs`` were loaded with views);
    with ``fresh`` (the GAN run's ``data.augment`` when on the fly) also each image's crop base."""
    inputs = inputs or SENInputs.load(ds, sen_cfg, progress=progress)
    audio = sorted(inputs.logmels.index)
    audio_index = {p: i for i, p in enumerate(audio)}
    emb = torch.from_numpy(embed_speech(sen, inputs, audio))
    train = [i for i, r in enumerate(ds.records) if r.split == "train" and r.captions]
    if not train:
        raise DatasetError(f"{ds.root}: no training images with captions")
    augment = sen_cfg.data.augment if sen_cfg.data.augment.enabled else None
    images = training_images(ds, train, size_px, augment)
    caps = [[audio_index[c.audio] for c in ds.records[i].captions] for i in train]
    offsets = torch.tensor([0] + [len(c) for c in caps]).cumsum(0)
    same_views = (augment is None) == (inputs.augment is None)
    feats = inputs.image_inputs[train] if sen_cfg.sen.image.kind == "inception" and same_views else None
    snap = torch.tensor([audio_index[r.captions[0].audio] for r in (ds.split("val") or ds.split("test"))[:16]])
    sources = crop_bases(ds, train, fresh, size_px) if fresh is not None else None
    return GANData(images.contiguous(), torch.tensor([ds.records[i].class_id for i in train]), offsets,
                   torch.tensor([a for c in caps for a in c]), emb, feats, snap, audio, sources)


def load_gan_data(data: str | Path, gc, sen, sen_cfg: Config, *, progress: bool = True,
                  fresh: AugmentConfig | None = None) -> tuple[GANData, SENInputs | None]:
    """``data``, a dataset folder (embedded now with the frozen ``sen``, see :func:`prepare_gan_data`) or a
    ``GANData`` safetensors file; also the folder's SEN inputs (log-mels), None for a file.
    ``gc`` is the run's :class:`~speechvision.s2igan.config.GANConfig`.

    Raises:
        DatasetError: bad dataset, or end-to-end training (``gc.end_to_end``) from a GANData file.
    """
    if Path(data).is_file():
        if gc.end_to_end:
            raise DatasetError(f"{data}: end-to-end training needs the dataset folder (log-mels), not a GANData file")
        return GANData.load(data), None
    ds = load_dataset(data)
    inputs = SENInputs.load(ds, sen_cfg, progress=progress, views=True)  # the views' features, cached by the SEN
    return prepare_gan_data(ds, sen, sen_cfg, gc.generator.sizes_px[-1], progress=progress, inputs=inputs,
                            fresh=fresh), inputs


def relation_embeddings(gd: GANData, encoder, *, progress: bool = True) -> torch.Tensor:
    """(N, D) frozen image embeddings of the N training images, the real anchors of the relation supervisor,
    from ``encoder`` (a :class:`~speechvision.s2igan.relation_encoder.RelationImageEncoder`), returned on the
    CPU; with views ((N, K, 3, S, S) images): (N, K, D), one per view. At the paper's 299 px in fp32 they
    are the SEN's image head over the cached (N, 2048) pool features (``gd.image_features``) when present."""
    feats = gd.image_features
    if not encoder.paper or feats is None:
        return encoder.real(gd.images, progress=progress)
    device = next(encoder.head.parameters()).device
    with torch.no_grad():
        return torch.cat([encoder.head(feats[s:s + 1024].to(device)).cpu() for s in range(0, len(feats), 1024)])


@dataclass
class CaptionEmbedder:
    """The (B, E) speech embeddings of captions given as (B,) rows of ``GANData.embeddings``: those rows,
    precomputed by the frozen SEN, or, in end-to-end training (``speech_encoder`` set), the trained speech
    encoder over the captions' log-mels from ``inputs`` (with gradients when ``train_mode``)."""

    embeddings: torch.Tensor
    audio_paths: list[str]
    device: torch.device
    speech_encoder: torch.nn.Module | None = None
    inputs: SENInputs | None = None

    def __call__(self, audio_idx: torch.Tensor, train_mode: bool) -> torch.Tensor:
        if self.speech_encoder is None:
            return self.embeddings[audio_idx].to(self.device)
        feats, lengths = self.inputs.speech_batch([self.audio_paths[i] for i in audio_idx.tolist()])
        self.speech_encoder.train(train_mode)
        with torch.set_grad_enabled(train_mode):
            return self.speech_encoder(feats.to(self.device), lengths)
