"""Training and evaluation of the speech embedding network (S2IGAN stage 1).

Run folder layout: ``config.json`` (resolved config + dataset facts), ``log.jsonl`` (append-only,
one line per epoch), ``checkpoint.pt`` (last epoch, for ``--resume``), ``best.pt`` (best val mAP).
Randomness of epoch ``e`` comes from a generator seeded with ``(seed, e)``, so a run resumed
from its last checkpoint gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speechvision.core.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    convert_sync_batchnorm,
    init_from_env,
    local_slice,
    mean_across,
)
from speechvision.core.run import RunFolder
from speechvision.data.manifest import Dataset, DatasetError, Record, load_dataset
from speechvision.s2igan.config import Config
from speechvision.s2igan.evaluate_sen import evaluate_split
from speechvision.s2igan.losses import sen_loss
from speechvision.s2igan.resume import resume_config
from speechvision.s2igan.sen import SEN, build_sen
from speechvision.s2igan.sen_data import SENInputs


def _train_classes(ds: Dataset) -> list[int]:
    return sorted({r.class_id for r in ds.split("train")})


def factored_attributes(ds: Dataset, factored: str) -> dict[str, list[str]]:
    """{attribute: its values} of the dataset for ``sen.factored`` ("garment,colour"; "" = none).

    Raises:
        DatasetError: an attribute the dataset does not have (names it and those it has).
    """
    names = [n.strip() for n in factored.split(",") if n.strip()]
    have = ds.meta.get("attributes", {})
    for n in names:
        if n not in have:
            raise DatasetError(f"sen.factored={factored}: {ds.root} has no attribute '{n}' "
                               f"(it has: {', '.join(have) or 'none'})")
    return {n: list(have[n]) for n in names}


@dataclass
class SENTraining:
    """What a SEN run trains and checkpoints: the model over the training ``classes``, its Adam optimiser and
    step schedule, the epochs done (``epoch``) and the best val metrics so far (``best``, with its epoch).

    Checkpoint keys: ``config``, ``epoch``, ``model``, ``optimizer``, ``scheduler``, ``best``, ``train_classes``.
    """

    cfg: Config
    model: SEN
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.StepLR
    classes: list[int]
    attributes: dict[str, list[str]] = field(default_factory=dict)  # the factored heads' values (sen.factored)
    epoch: int = 0
    best: dict = field(default_factory=lambda: {"mAP": -1.0})

    @staticmethod
    def build(cfg: Config, classes: list[int], *, sync_batchnorm: bool = False,
              attributes: dict[str, list[str]] | None = None) -> SENTraining:
        """A fresh model (seeded with ``sen.seed``; batch norms synced across processes with ``sync_batchnorm``),
        with a head per attribute of ``attributes`` ({name: values})."""
        sc = cfg.sen
        torch.manual_seed(sc.seed)
        model = build_sen(cfg, len(classes), attributes)
        if sync_batchnorm:
            convert_sync_batchnorm(model)
        opt = torch.optim.Adam(model.parameters(), lr=sc.lr, betas=sc.betas, weight_decay=sc.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=sc.lr_step_epochs, gamma=sc.lr_gamma)
        return SENTraining(cfg, model, opt, sched, classes, dict(attributes or {}))

    def state(self) -> dict:
        return {"config": self.cfg.to_dict(), "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "best": self.best,
                "train_classes": self.classes, **({"attributes": self.attributes} if self.attributes else {})}

    def load_state(self, ckpt: dict) -> None:
        """Resume from a checkpoint of :meth:`state`. When this training's config has another learning-rate
        schedule (``sen.lr``, ``lr_step_epochs``, ``lr_gamma``; ``--resume`` may change them), the epochs left
        follow it as a run started with it would."""
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.epoch, self.best = ckpt["epoch"], ckpt["best"]
        sc, saved = self.cfg.sen, ckpt["config"]["sen"]
        if (sc.lr, sc.lr_step_epochs, sc.lr_gamma) != (saved["lr"], saved["lr_step_epochs"], saved["lr_gamma"]):
            self.sched.step_size, self.sched.gamma = sc.lr_step_epochs, sc.lr_gamma
            self.sched.base_lrs = [sc.lr] * len(self.opt.param_groups)
            for group in self.opt.param_groups:  # StepLR's lr after last_epoch steps, from the new schedule
                group["initial_lr"] = sc.lr
                group["lr"] = sc.lr * sc.lr_gamma ** (self.sched.last_epoch // sc.lr_step_epochs)


def train_sen(data: str | Path, out: str | Path, cfg: Config, *, resume: bool = False,
              inception_weights: str | Path | None = None, progress: bool = True,
              stop_after_epoch: int | None = None, sync_batchnorm: bool = False,
              overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Train the SEN on ``data`` into run folder ``out``; returns the best val metrics.

    Under ``torchrun`` it runs data-parallel (:mod:`.distributed`): each process embeds its slice of
    the global batch ``sen.batch_size``, the embeddings are all-gathered (with gradients) so the
    matching loss sees the whole batch's negatives, gradients are averaged, and rank 0 evaluates,
    logs and checkpoints. Batch norm over the padded log-mel frames stays per process unless
    ``sync_batchnorm``.

    ``stop_after_epoch`` ends the run after that epoch as a kill would (checkpoint written, not final):
    for time-boxed runs and the resume tests. ``resume`` continues the run in ``out`` with its own config
    (``cfg`` is not read) and ``overrides`` (``section.key=value``) applied to it, when
    :mod:`speechvision.s2igan.resume` allows them (epochs, the learning-rate schedule, the eval period); a
    change is recorded in ``log.jsonl`` (``{"resumed_at_epoch": N, "overrides": {...}}``) and ``config.json``.

    Raises:
        DatasetError: the dataset is invalid. CheckpointError: ``--resume`` without a checkpoint,
        or an existing run in ``out`` without ``--resume``. ConfigError: an override ``--resume`` may not apply.
    """
    info, _ = init_from_env("cpu")
    progress = progress and info.is_main
    folder = RunFolder(out, "sen", main=info.is_main, counter="epoch")
    ckpt, changes = folder.start(resume), {}
    if ckpt is not None:  # the run's own config, with the overrides a resume may apply
        cfg, changes = resume_config(ckpt["config"], overrides, ("sen.epochs", ckpt["epoch"]))
    if inception_weights is not None:
        from speechvision.core.inception import InceptionFeatures

        InceptionFeatures(inception_weights)  # raises a clear error for unsupported weights
    ds = load_dataset(data)
    attributes = factored_attributes(ds, cfg.sen.factored)  # before any feature work
    inputs = SENInputs.load(ds, cfg, progress=progress, views=True)  # the augmented views, if data.augment is on
    classes = _train_classes(ds)
    train = [r for r in ds.split("train") if r.captions]
    sc = cfg.sen
    if len(train) < sc.batch_size:
        raise DatasetError(f"{ds.root}: {len(train)} training images is fewer than one batch "
                              f"({sc.batch_size}); use --set sen.batch_size=N")
    try:
        local = local_slice(sc.batch_size, info)
    except ValueError as e:
        raise DatasetError(f"sen.batch_size: {e}") from None
    t = SENTraining.build(cfg, classes, sync_batchnorm=info.active and sync_batchnorm,
                          attributes=attributes)
    if ckpt is not None:
        t.load_state(ckpt)
    folder.write_config({"config": cfg.to_dict(), "dataset": str(Path(data).resolve()), "train_classes": classes,
                         "processes": info.world_size})
    if changes:
        folder.append_log({"resumed_at_epoch": t.epoch, "overrides": changes})
    steps_per_epoch = len(train) // sc.batch_size
    for epoch in range(t.epoch, sc.epochs):
        sums, seconds = _train_epoch(t, inputs, train, epoch, local, info, progress=progress)
        t.epoch = epoch + 1
        sums = mean_across(sums, info)
        entry = {"epoch": epoch + 1, **{k: v / max(1, steps_per_epoch) for k, v in sums.items()},
                 "lr": t.opt.param_groups[0]["lr"], "epoch_seconds": round(seconds, 2),
                 "utterances_per_second": round(steps_per_epoch * sc.batch_size / max(seconds, 1e-9), 1)}
        _evaluate_and_save(t, inputs, entry, folder, info)
        if progress:
            val_txt = f" val mAP {entry['val']['mAP']:.3f}" if "val" in entry else ""
            print(f"epoch {epoch + 1}: loss {entry['loss']:.3f}{val_txt} ({seconds:.0f} s, "
                  f"{entry['utterances_per_second']} utt/s)", flush=True)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return t.best


def _train_epoch(t: SENTraining, inputs: SENInputs, train: list[Record], epoch: int, local: slice, info: DistInfo,
                 *, progress: bool) -> tuple[dict[str, float], float]:
    """One epoch (order and caption choice seeded with ``(sen.seed, epoch)``) over this process's ``local``
    slice of each global batch, then the lr schedule's step; returns this process's summed loss terms
    (``loss``, ``matching``, ``distinctive``) and the seconds it took."""
    from tqdm import tqdm

    sc, model = t.cfg.sen, t.model
    class_to_target = {c: i for i, c in enumerate(t.classes)}
    model.train()
    gen = torch.Generator().manual_seed(sc.seed * 100003 + epoch)
    perm = torch.randperm(len(train), generator=gen)
    choice = torch.randint(0, 1 << 30, (len(train),), generator=gen)
    sums = {"loss": 0.0, "matching": 0.0, "distinctive": 0.0, "factored": 0.0}
    t0 = time.time()
    for s in tqdm(range(len(train) // sc.batch_size), desc=f"SEN epoch {epoch + 1}/{sc.epochs}", unit="step",
                  disable=not progress, leave=False):
        idx = perm[s * sc.batch_size:(s + 1) * sc.batch_size][local].tolist()
        recs = [train[i] for i in idx]
        audio = [r.captions[int(choice[i]) % len(r.captions)].audio for r, i in zip(recs, idx)]
        feats, lengths = inputs.speech_batch(audio, epoch=epoch)  # this epoch's version of each (augmented) file
        labels = torch.tensor([class_to_target[r.class_id] for r in recs])
        attr = {k: torch.tensor([values.index(r.attributes[k]) for r in recs]) for k, values in t.attributes.items()}
        speech, image = model(feats, lengths, inputs.images(recs, epoch=epoch))  # this epoch's view of each image
        if info.active:  # the whole global batch, with gradients flowing back to each process's slice
            speech, image, labels = (_gather(x) for x in (speech, image, labels))
            attr = {k: _gather(v) for k, v in attr.items()}
        losses = sen_loss(model, speech, image, labels, sc, attr)
        t.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        average_gradients(list(model.parameters()), info)
        t.opt.step()
        for k in sums:
            sums[k] += float(losses[k].detach())
    t.sched.step()
    return sums, time.time() - t0


def _evaluate_and_save(t: SENTraining, inputs: SENInputs, entry: dict, folder: RunFolder, info: DistInfo) -> None:
    """After epoch ``t.epoch``, on rank 0: val metrics into ``entry`` (every ``sen.eval_every_epochs`` epochs and
    at the end), ``best.pt`` on a new best val mAP, ``checkpoint.pt`` and the log line; then all processes meet."""
    sc = t.cfg.sen
    if info.is_main and (t.epoch % sc.eval_every_epochs == 0 or t.epoch == sc.epochs):
        val = evaluate_split(t.model, inputs, "val")
        entry["val"] = val
        if val.get("mAP", -1) > t.best["mAP"]:
            t.best = {**val, "epoch": t.epoch}
            folder.save_checkpoint(t.state(), "best.pt")
    folder.log(entry)
    folder.checkpoint(t.state())  # the checkpoint, then its log line
    barrier(info)


def _gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's (b, ...) tensor in rank order; differentiable for float tensors."""
    import torch.distributed as dist

    if t.is_floating_point():
        import warnings

        from torch.distributed.nn.functional import all_gather

        warnings.filterwarnings("ignore", message=".*distributed.nn.functional.all_gather is deprecated")
        return torch.cat(all_gather(t))
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    return torch.cat(parts)
