"""Training of the S2IGAN generator stage (DSG + discriminators + RS) on a frozen SEN.

Run folder: ``config.json``, ``log.jsonl`` (append-only), ``checkpoint.pt`` (G, EMA G, Ds, RS,
optimisers, step, config, version), ``snapshots/step%08d.png`` (fixed captions and noise).
Every step's randomness (batch order, caption choice, noise, mismatched and same-class pairs) is a
function of ``(seed, step)``, so ``--resume`` after a kill continues exactly where the checkpoint was.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from speechvision.core.images import save_grid, to_unit_range
from speechvision.core.inception import InceptionFeatures
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.metrics.features import load_images_uint8
from speechvision.s2igan.config import Config, apply_overrides, config_from_dict
from speechvision.s2igan.discriminator import Discriminator
from speechvision.s2igan.dsg import DSG, init_weights
from speechvision.s2igan.losses import S2IGANLoss
from speechvision.s2igan.relation import RelationSupervisor
from speechvision.s2igan.sen import load_sen
from speechvision.s2igan.sen_data import SENInputs, embed_speech


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
        images: (N, 3, S, S) uint8 training images; labels: (N,) classes;
        caption_audio: per image, the indices of its captions in ``embeddings`` (N lists);
        embeddings: (A, E) speech embeddings (None in end-to-end mode, see ``caption_choice``);
        image_emb: (N, D) frozen image embeddings of the real images (for the RS).
    """

    def __init__(self, images, labels, caption_audio, embeddings, image_emb, cfg, device):
        self.images, self.labels = images, torch.as_tensor(labels)
        self.caption_audio, self.embeddings, self.image_emb = caption_audio, embeddings, image_emb
        self.cfg, self.device = cfg, device
        self.B = cfg.batch_size
        self.steps_per_epoch = len(images) // self.B
        if self.steps_per_epoch == 0:
            raise DatasetError(f"{len(images)} training images is fewer than one batch ({self.B})")
        self._perm_epoch, self._perm = -1, None
        self.by_class = {int(c): torch.nonzero(self.labels == c).flatten() for c in torch.unique(self.labels)}
        self.scales = uint8_pyramid(images, cfg.generator.sizes_px)

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
        batch = {"real": [to_unit_range(s[idx].to(dev)) for s in self.scales],
                 "wrong": [to_unit_range(s[wrong].to(dev)) for s in self.scales],
                 "audio": audio, "z": z.to(dev), "eps": eps.to(dev), "index": idx,
                 "anchor": self.image_emb[idx].to(dev), "similar": self.image_emb[similar].to(dev),
                 "different": self.image_emb[different].to(dev)}
        if self.embeddings is not None:
            batch["embedding"] = self.embeddings[audio].to(dev)
        return batch


def _requires_grad(modules, flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def build_models(cfg: Config, device) -> dict:
    gc = cfg.gan
    torch.manual_seed(gc.seed)
    G = DSG(gc.generator)
    Ds = torch.nn.ModuleList([Discriminator(s, gc.discriminator) for s in gc.generator.sizes_px])
    RS = RelationSupervisor(gc.relation) if gc.rs else None
    for m in (G, Ds, RS):
        if m is not None:
            init_weights(m)
    G_ema = copy.deepcopy(G).eval()
    _requires_grad([G_ema], False)
    return {"G": G.to(device), "G_ema": G_ema.to(device), "Ds": Ds.to(device),
            "RS": RS.to(device) if RS is not None else None}


@dataclass
class GANData:
    """Everything the GAN stage reads, precomputed once from a dataset and a frozen SEN.

    Attributes:
        images: (N, 3, S, S) uint8 training images at the last stage's size.
        labels: (N,) class ids.
        caption_offsets: (N + 1,) and caption_audio: (M,): image i's captions are rows
            ``caption_audio[caption_offsets[i]:caption_offsets[i + 1]]`` of ``embeddings``.
        embeddings: (A, E) float32 SEN speech embeddings.
        image_features: (N, 2048) Inception pool features of the images, or None (computed on use).
        snapshot_audio: (K,) rows of ``embeddings`` used for snapshot grids (val caption 0).
        audio_paths: the A audio files (relative to the dataset), for end-to-end training.
    """

    images: torch.Tensor
    labels: torch.Tensor
    caption_offsets: torch.Tensor
    caption_audio: torch.Tensor
    embeddings: torch.Tensor
    image_features: torch.Tensor | None
    snapshot_audio: torch.Tensor
    audio_paths: list[str]

    def captions_of(self) -> list[list[int]]:
        o, a = self.caption_offsets.tolist(), self.caption_audio.tolist()
        return [a[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def compact(self) -> "GANData":
        """Keep only the embedding rows that captions or snapshots use (indices remapped)."""
        used = torch.unique(torch.cat([self.caption_audio, self.snapshot_audio]))
        remap = torch.full((len(self.embeddings),), -1, dtype=torch.long)
        remap[used] = torch.arange(len(used))
        return GANData(self.images, self.labels, self.caption_offsets, remap[self.caption_audio],
                       self.embeddings[used], self.image_features, remap[self.snapshot_audio],
                       [self.audio_paths[i] for i in used.tolist()])

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
    def load(path: str | Path) -> "GANData":
        from safetensors import safe_open
        from safetensors.torch import load_file

        t = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            audio_paths = json.loads(f.metadata()["audio_paths"])
        f32 = {k: v.float() if v.is_floating_point() else v for k, v in t.items()}
        return GANData(f32["images"], f32["labels"], f32["caption_offsets"], f32["caption_audio"], f32["embeddings"],
                       f32.get("image_features"), f32["snapshot_audio"], audio_paths)


def prepare_gan_data(ds: Dataset, sen, sen_cfg: Config, size_px: int, *, progress: bool = True,
                     inputs: SENInputs | None = None) -> GANData:
    """Embed every caption with the frozen SEN and collect the training images (train split)."""
    inputs = inputs or SENInputs.load(ds, sen_cfg, progress=progress)
    audio = sorted(inputs.logmels.index)
    audio_index = {p: i for i, p in enumerate(audio)}
    emb = torch.from_numpy(embed_speech(sen, inputs, audio))
    train = [i for i, r in enumerate(ds.records) if r.split == "train" and r.captions]
    if not train:
        raise DatasetError(f"{ds.root}: no training images with captions")
    images = torch.from_numpy(load_images_uint8([ds.path(ds.records[i].image) for i in train])).permute(0, 3, 1, 2)
    if images.shape[-1] != size_px:
        images = F.interpolate(images.float(), size=(size_px, size_px), mode="bilinear", antialias=True).round().byte()
    caps = [[audio_index[c.audio] for c in ds.records[i].captions] for i in train]
    offsets = torch.tensor([0] + [len(c) for c in caps]).cumsum(0)
    feats = inputs.image_inputs[train] if sen_cfg.sen.image.kind == "inception" else None
    snap = torch.tensor([audio_index[r.captions[0].audio] for r in (ds.split("val") or ds.split("test"))[:16]])
    return GANData(images.contiguous(), torch.tensor([ds.records[i].class_id for i in train]), offsets,
                   torch.tensor([a for c in caps for a in c]), emb, feats, snap, audio)


def train_gan(data: str | Path, sen_checkpoint: str | Path, out: str | Path, cfg: Config, *, resume: bool = False,
              device: str | None = None, progress: bool = True, stop_after_step: int | None = None,
              inception_weights: str | Path | None = None, max_minutes: float | None = None,
              sync_batchnorm: bool = False, amp: str | None = None, channels_last: bool = True,
              compile_generator: bool = False) -> dict:
    """Train the generator stage; returns the last log entry.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it runs data-parallel (:mod:`.distributed`): the global
    batch ``gan.batch_size`` is split across processes, gradients are averaged per phase, rank 0 logs
    and checkpoints; ``sync_batchnorm`` makes batch-norm statistics global.

    GPU path: ``amp="bf16"`` runs the forward passes under bfloat16 autocast (weights, optimiser
    state and checkpoints stay fp32), ``channels_last`` stores G and the discriminators in NHWC, and
    ``compile_generator`` wraps G in ``torch.compile``. All three also run on CPU; channels_last is
    the default (1.1-1.3x faster on CPU too, docs/performance.md).

    ``data`` is a dataset folder or a ``GANData`` safetensors file (see :meth:`GANData.save`).
    ``stop_after_step`` ends the run after that step as a kill would (for tests); ``max_minutes`` ends it
    (with a checkpoint) once that much wall time has passed, for time-boxed runs; ``--resume`` continues.

    Raises:
        CheckpointError: bad SEN checkpoint, ``--resume`` without a run, or an existing run without it.
        DatasetError: bad dataset, too few images.
    """
    from tqdm import tqdm

    from speechvision.core.distributed import (
        average_gradients,
        barrier,
        convert_sync_batchnorm,
        init_from_env,
        local_slice,
        mean_across,
        shard,
    )

    info, device = init_from_env(device)
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if resume:
        ckpt = load_checkpoint(ckpt_path, "gan")
        cfg = config_from_dict(ckpt["config"])
        sen_checkpoint = sen_checkpoint or ckpt["sen_checkpoint"]
    elif ckpt_path.exists():
        raise CheckpointError(f"{ckpt_path}: a run already exists here; pass --resume or choose another --out")
    dev = torch.device(device) if device else default_device()
    sen, sen_cfg, sen_ckpt = load_sen(sen_checkpoint)
    gc = cfg.gan
    try:
        local = local_slice(gc.batch_size, info)
    except ValueError as e:
        raise DatasetError(f"gan.batch_size: {e}") from None
    progress = progress and info.is_main
    if sen_cfg.sen.image.kind != "inception" and gc.rs:
        raise CheckpointError(f"{sen_checkpoint}: the RS needs a SEN with the Inception image encoder; "
                              "use --no-rs or train the SEN with sen.image.kind=inception")
    inputs = None
    if Path(data).is_file():
        if gc.end_to_end:
            raise DatasetError(f"{data}: end-to-end training needs the dataset folder (log-mels), not a GANData file")
        gd = GANData.load(data)
    else:
        ds = load_dataset(data)
        inputs = SENInputs.load(ds, sen_cfg, progress=progress)
        gd = prepare_gan_data(ds, sen, sen_cfg, gc.generator.sizes_px[-1], progress=progress, inputs=inputs)
    inception = InceptionFeatures(inception_weights, device=dev) if gc.rs else None
    image_head = sen.image_encoder.to(dev).eval()
    if gc.rs:
        feats = gd.image_features
        if feats is None:
            from speechvision.metrics.features import inception_features

            feats = torch.from_numpy(inception_features(
                lambda a, b: gd.images[a:b].permute(0, 2, 3, 1).numpy(), len(gd.images), model=inception,
                device=str(dev), progress=progress))
        with torch.no_grad():
            image_emb = torch.cat([image_head(feats[s:s + 1024].to(dev)).cpu() for s in range(0, len(feats), 1024)])
    else:
        image_emb = torch.zeros(len(gd.images), 1)
    batches = GANBatches(gd.images, gd.labels, gd.captions_of(), None if gc.end_to_end else gd.embeddings,
                         image_emb, gc, dev)
    emb, audio = gd.embeddings, gd.audio_paths

    m = build_models(cfg, dev)
    G, G_ema, Ds, RS = m["G"], m["G_ema"], m["Ds"], m["RS"]
    if info.active and sync_batchnorm:
        for mod in (G, Ds, RS):
            if mod is not None:
                convert_sync_batchnorm(mod)
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be bf16 or None, got {amp!r}")
    if channels_last:
        for mod in (G, G_ema, Ds):
            mod.to(memory_format=torch.channels_last)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp == "bf16")
    speech_encoder = sen.speech_encoder.to(dev)
    g_params = list(G.parameters()) + (list(speech_encoder.parameters()) if cfg.gan.end_to_end else [])
    gc = cfg.gan
    opts = {"G": torch.optim.Adam(g_params, lr=gc.lr_g, betas=gc.betas),
            "D": torch.optim.Adam(Ds.parameters(), lr=gc.lr_d, betas=gc.betas)}
    if RS is not None:
        opts["RS"] = torch.optim.Adam(RS.parameters(), lr=gc.lr_rs, betas=gc.betas)
    start = 0
    if resume:
        G.load_state_dict(ckpt["G"])
        G_ema.load_state_dict(ckpt["G_ema"])
        Ds.load_state_dict(ckpt["Ds"])
        if RS is not None:
            RS.load_state_dict(ckpt["RS"])
        if gc.end_to_end:
            speech_encoder.load_state_dict(ckpt["speech_encoder"])
        for k, o in opts.items():
            o.load_state_dict(ckpt["opt_" + k])
        start = ckpt["step"]

    _requires_grad([image_head, sen], False)
    if gc.end_to_end:
        _requires_grad([speech_encoder], True)

    def fake_embedder(x: torch.Tensor) -> torch.Tensor:
        return image_head(inception.differentiable(x))

    loss = S2IGANLoss(torch.compile(G) if compile_generator else G, Ds, RS, fake_embedder, gc)
    phase_modules = {"D": [Ds], "RS": [RS], "G": [G] + ([speech_encoder] if gc.end_to_end else [])}
    all_trainable = [G, Ds] + ([RS] if RS is not None else []) + ([speech_encoder] if gc.end_to_end else [])

    # Fixed captions (val caption 0) and noise for snapshots.
    snap_g = torch.Generator().manual_seed(gc.seed)
    snap_z = torch.randn(len(gd.snapshot_audio), gc.generator.noise_dim, generator=snap_g).to(dev)
    snap_eps = torch.randn(len(gd.snapshot_audio), gc.generator.condition_dim, generator=snap_g).to(dev)

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "data": str(Path(data).resolve()),
                                                     "sen_checkpoint": str(sen_ckpt["path"]), "device": str(dev),
                                                     "processes": info.world_size, "sync_batchnorm": sync_batchnorm},
                                                    indent=2))

    def caption_embeddings(audio_idx: torch.Tensor, train_mode: bool) -> torch.Tensor:
        if not gc.end_to_end:
            return emb[audio_idx].to(dev)
        feats, lengths = inputs.speech_batch([audio[i] for i in audio_idx.tolist()])
        speech_encoder.train(train_mode)
        with torch.set_grad_enabled(train_mode):
            return speech_encoder(feats.to(dev), lengths)

    def state(step: int) -> dict:
        s = {"config": cfg.to_dict(), "step": step, "sen_checkpoint": str(sen_ckpt["path"]),
             "G": G.state_dict(), "G_ema": G_ema.state_dict(), "Ds": Ds.state_dict(),
             **{"opt_" + k: o.state_dict() for k, o in opts.items()}}
        if RS is not None:
            s["RS"] = RS.state_dict()
        if gc.end_to_end:
            s["speech_encoder"] = speech_encoder.state_dict()
        return s

    def snapshot(step: int) -> None:
        with torch.no_grad():
            imgs, _, _ = G_ema(caption_embeddings(gd.snapshot_audio, False), snap_z, snap_eps)
        save_grid(imgs[-1], out / "snapshots" / f"step{step:08d}.png")

    G.train(), Ds.train()
    if RS is not None:
        RS.train()
    sums, n_sum, t0, entry = {}, 0, time.time(), {}
    bar = tqdm(total=gc.iterations, initial=start, desc="GAN", unit="it", disable=not progress)
    deadline = time.time() + 60 * max_minutes if max_minutes else None
    for step in range(start, gc.iterations):
        batch = batches.get(step)
        if info.active:
            batch = shard(batch, local, gc.batch_size)
        if gc.end_to_end:
            batch["embedding"] = caption_embeddings(batch["audio"], True)
        with autocast:
            loss.prepare(batch)
        for phase in loss.phases:
            _requires_grad(all_trainable, False)
            _requires_grad(phase_modules[phase], True)
            opts[phase].zero_grad(set_to_none=True)
            with autocast:
                terms = loss.accumulate_gradients(phase, batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.float()
            average_gradients([p for mod in phase_modules[phase] for p in mod.parameters()], info)
            opts[phase].step()
        _requires_grad(all_trainable, True)
        ema_update(G_ema, G, gc.ema_decay)
        n_sum += 1
        bar.update(1)
        done = step + 1
        if done % gc.log_every == 0 or done == gc.iterations:
            seconds = time.time() - t0
            means = mean_across({k: float(v) / n_sum for k, v in sums.items()}, info)
            entry = {"step": done, **{k: round(v, 4) for k, v in means.items()},
                     "iterations_per_second": round(n_sum / max(seconds, 1e-9), 3)}
            if info.is_main:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(entry) + "\n")
            bar.set_postfix(D=entry.get("D0"), G=entry.get("G0"))
            sums, n_sum, t0 = {}, 0, time.time()
        if info.is_main and (done % gc.snapshot_every == 0 or done == gc.iterations):
            snapshot(done)
        out_of_time = deadline is not None and time.time() > deadline
        if info.active:  # every process stops at the same step
            flag = torch.tensor([float(out_of_time)], device=dev)
            torch.distributed.all_reduce(flag)
            out_of_time = bool(flag.item() > 0)
        if done % gc.checkpoint_every == 0 or done == gc.iterations or done == stop_after_step or out_of_time:
            if info.is_main:
                save_checkpoint(ckpt_path, "gan", state(done))
            barrier(info)
        if (stop_after_step is not None and done >= stop_after_step) or out_of_time:
            break
    bar.close()
    return entry


def apply_ablation(cfg: Config, *, no_dense: bool, no_rs: bool, end_to_end: bool) -> Config:
    """The paper's ablation switches as config overrides."""
    overrides = []
    if no_dense:
        overrides.append("gan.generator.dense=false")
    if no_rs:
        overrides.append("gan.rs=false")
    if end_to_end:
        overrides.append("gan.end_to_end=true")
    return apply_overrides(cfg, overrides)
