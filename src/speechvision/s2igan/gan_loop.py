"""The GAN training loop in pieces, as stylegan2-ada-pytorch splits its ``training_loop``: build (models,
optimisers), resume (load state), the phases (owned by the loss object,
:class:`~speechvision.s2igan.losses.S2IGANLoss`; the loop only iterates over ``loss.phases``), logging,
snapshots and checkpointing. :func:`speechvision.s2igan.train_gan.train_gan` wires them.

Checkpoint keys: ``config``, ``step``, ``sen_checkpoint``, ``G``, ``G_ema``, ``Ds``, ``opt_G``, ``opt_D``
(``opt_RS``), ``RS`` (with the relation supervisor), ``speech_encoder`` (end-to-end training).

Log lines (``log.jsonl``, every ``gan.log_every`` steps): ``step``, the mean loss terms, ``iterations_per_second``,
and the conditioning's health, ``ca_mu_spread`` and ``ca_sigma`` of the training generator over the snapshot
captions (:func:`~speechvision.s2igan.dsg.condition_spread`).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speechvision.core.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    convert_sync_batchnorm,
    local_slice,
    mean_across,
    shard,
)
from speechvision.core.images import save_grid
from speechvision.core.run import RunFolder
from speechvision.s2igan.config import Config
from speechvision.s2igan.discriminator import Discriminator
from speechvision.s2igan.dsg import DSG, condition_spread, init_weights
from speechvision.s2igan.gan_data import CaptionEmbedder, GANBatches
from speechvision.s2igan.losses import S2IGANLoss
from speechvision.s2igan.relation import RelationSupervisor

# The warning of GANLoop.warn_if_unconditioned: the CPU runs that drew colours at chance had a CA mu spread
# of 0.08-1.4 at the end, those that drew them 1.78 at step 1,000 and 5.1 at 2,000 (docs/results.md). Those
# spreads are over the 8 colour-swap recordings (scripts/condition_spread.py); the log's are over the 16
# snapshot captions, which differ in garment too, so they read somewhat higher: the bound is a loose one.
UNCONDITIONED_STEP = 2000
UNCONDITIONED_SPREAD = 1.0


def requires_grad(modules, flag: bool) -> None:
    """Switch ``requires_grad`` of every parameter of ``modules`` (an iterable of modules)."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Per parameter ``ema <- decay * ema + (1 - decay) * model``; buffers (batch-norm statistics) copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def build_models(cfg: Config, device) -> dict:
    """``G`` (the DSG), ``G_ema`` (its copy, eval mode, no gradients), ``Ds`` (one discriminator per scale of
    ``gan.generator.sizes_px``) and ``RS`` (None without ``gan.rs``), initialised after
    ``torch.manual_seed(gan.seed)``, on ``device``."""
    gc = cfg.gan
    torch.manual_seed(gc.seed)
    G = DSG(gc.generator)
    Ds = torch.nn.ModuleList([Discriminator(s, gc.discriminator) for s in gc.generator.sizes_px])
    RS = RelationSupervisor(gc.relation) if gc.rs else None
    for m in (G, Ds, RS):
        if m is not None:
            init_weights(m)
    G_ema = copy.deepcopy(G).eval()
    requires_grad([G_ema], False)
    return {"G": G.to(device), "G_ema": G_ema.to(device), "Ds": Ds.to(device),
            "RS": RS.to(device) if RS is not None else None}


def build_optimizers(cfg: Config, G, Ds, RS, speech_encoder) -> dict[str, torch.optim.Optimizer]:
    """One Adam per phase: ``G`` (the generator, and the speech encoder end-to-end), ``D`` and ``RS``."""
    gc = cfg.gan
    g_params = list(G.parameters()) + (list(speech_encoder.parameters()) if gc.end_to_end else [])
    opts = {"G": torch.optim.Adam(g_params, lr=gc.lr_g, betas=gc.betas),
            "D": torch.optim.Adam(Ds.parameters(), lr=gc.lr_d, betas=gc.betas)}
    if RS is not None:
        opts["RS"] = torch.optim.Adam(RS.parameters(), lr=gc.lr_rs, betas=gc.betas)
    return opts


@dataclass
class GANTraining:
    """What a GAN run trains and checkpoints: G, its EMA copy, one discriminator per scale, the relation
    supervisor (None for "w/o RS"), the speech encoder (trained only end-to-end) and an optimiser per phase."""

    cfg: Config
    G: DSG
    G_ema: DSG
    Ds: torch.nn.ModuleList
    RS: RelationSupervisor | None
    speech_encoder: torch.nn.Module
    opts: dict[str, torch.optim.Optimizer]

    @staticmethod
    def build(cfg: Config, device, speech_encoder: torch.nn.Module, *, sync_batchnorm: bool = False,
              channels_last: bool = True) -> GANTraining:
        """Fresh models (seeded with ``gan.seed``), batch norms synced across processes (``sync_batchnorm``),
        G, EMA G and the discriminators stored NHWC (``channels_last``), then the optimisers."""
        m = build_models(cfg, device)
        if sync_batchnorm:
            for mod in (m["G"], m["Ds"], m["RS"]):
                if mod is not None:
                    convert_sync_batchnorm(mod)
        if channels_last:
            for mod in (m["G"], m["G_ema"], m["Ds"]):
                mod.to(memory_format=torch.channels_last)
        speech_encoder = speech_encoder.to(device)
        opts = build_optimizers(cfg, m["G"], m["Ds"], m["RS"], speech_encoder)
        return GANTraining(cfg, m["G"], m["G_ema"], m["Ds"], m["RS"], speech_encoder, opts)

    def state(self, step: int, sen_checkpoint: str) -> dict:
        """The checkpoint state after ``step`` steps (keys in the module docstring)."""
        s = {"config": self.cfg.to_dict(), "step": step, "sen_checkpoint": sen_checkpoint,
             "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "Ds": self.Ds.state_dict(),
             **{"opt_" + k: o.state_dict() for k, o in self.opts.items()}}
        if self.RS is not None:
            s["RS"] = self.RS.state_dict()
        if self.cfg.gan.end_to_end:
            s["speech_encoder"] = self.speech_encoder.state_dict()
        return s

    def load_state(self, ckpt: dict) -> int:
        """Resume from a checkpoint of :meth:`state`; returns its step. The learning rates are this training's
        config's (``--resume`` may change them, :mod:`speechvision.s2igan.resume`)."""
        self.G.load_state_dict(ckpt["G"])
        self.G_ema.load_state_dict(ckpt["G_ema"])
        self.Ds.load_state_dict(ckpt["Ds"])
        if self.RS is not None:
            self.RS.load_state_dict(ckpt["RS"])
        if self.cfg.gan.end_to_end:
            self.speech_encoder.load_state_dict(ckpt["speech_encoder"])
        lrs = {"G": self.cfg.gan.lr_g, "D": self.cfg.gan.lr_d, "RS": self.cfg.gan.lr_rs}
        for k, o in self.opts.items():
            o.load_state_dict(ckpt["opt_" + k])
            for group in o.param_groups:
                group["lr"] = lrs[k]
        return ckpt["step"]

    def phase_modules(self, phase: str) -> list[torch.nn.Module]:
        """The modules phase ``D``, ``RS`` or ``G`` updates (the only ones with gradients during it)."""
        e2e = [self.speech_encoder] if self.cfg.gan.end_to_end else []
        return {"D": [self.Ds], "RS": [self.RS], "G": [self.G] + e2e}[phase]

    def trainable(self) -> list[torch.nn.Module]:
        return ([self.G, self.Ds] + ([self.RS] if self.RS is not None else [])
                + ([self.speech_encoder] if self.cfg.gan.end_to_end else []))

    def train(self) -> None:
        """Training mode for G, the discriminators and the RS (G_ema stays in eval mode)."""
        self.G.train(), self.Ds.train()
        if self.RS is not None:
            self.RS.train()


class LossMeans:
    """The loss terms summed over the steps since the last log line, and the wall time they took."""

    def __init__(self):
        self.sums, self.counts, self.steps, self.t0 = {}, {}, 0, time.time()

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.float()
            self.counts[k] = self.counts.get(k, 0) + 1

    def entry(self, step: int, info: DistInfo) -> dict:
        """The log entry after ``step`` steps: ``step``, each term's mean over the steps that computed it
        (every step, or every ``gan.rs_every``-th for the RS terms) and the processes, rounded to 4 decimals,
        and ``iterations_per_second``; starts the next sums."""
        seconds = time.time() - self.t0
        means = mean_across({k: float(v) / self.counts[k] for k, v in self.sums.items()}, info)
        entry = {"step": step, **{k: round(v, 4) for k, v in means.items()},
                 "iterations_per_second": round(self.steps / max(seconds, 1e-9), 3)}
        self.sums, self.counts, self.steps, self.t0 = {}, {}, 0, time.time()
        return entry


class Snapshots:
    """Grids of the EMA generator's last-stage images for fixed captions (``audio``, (K,) rows of the
    caption embeddings: val caption 0) and fixed noise (seeded with ``gan.seed``), ``snapshots/step%08d.png``."""

    def __init__(self, audio: torch.Tensor, cfg: Config, device, folder: Path):
        gc = cfg.gan
        g = torch.Generator().manual_seed(gc.seed)
        self.audio, self.folder = audio, Path(folder)
        self.z = torch.randn(len(audio), gc.generator.noise_dim, generator=g).to(device)
        self.eps = torch.randn(len(audio), gc.generator.condition_dim, generator=g).to(device)

    def condition(self, G: DSG, embed: CaptionEmbedder) -> dict[str, float]:
        """``ca_mu_spread`` and ``ca_sigma`` of ``G`` over the snapshot captions (:func:`condition_spread`)."""
        s = condition_spread(G, embed(self.audio, False))
        return {"ca_mu_spread": round(s["mu_spread"], 4), "ca_sigma": round(s["sigma"], 4)}

    def save(self, G_ema: DSG, embed: CaptionEmbedder, step: int) -> None:
        with torch.no_grad():
            imgs, _, _ = G_ema(embed(self.audio, False), self.z, self.eps)
        save_grid(imgs[-1], self.folder / f"step{step:08d}.png")


@dataclass
class GANLoop:
    """One process's loop over steps: batch, phases, EMA, then log, snapshot and checkpoint on schedule.

    ``autocast``: the context the forward passes run in (bf16 autocast, or disabled); ``sen_checkpoint``:
    the frozen SEN's path, stored in every checkpoint. Only the main process writes (``folder.main``).
    """

    training: GANTraining
    loss: S2IGANLoss
    batches: GANBatches
    embed: CaptionEmbedder
    snapshots: Snapshots
    folder: RunFolder
    info: DistInfo
    device: torch.device
    autocast: torch.autocast
    sen_checkpoint: str
    means: LossMeans = field(default_factory=LossMeans, init=False)
    warned: bool = field(default=False, init=False)

    def __post_init__(self):
        """The per-epoch view draw of the run's ``data.augment`` (raises DatasetError if on without views)."""
        self.batches.use_augment(self.training.cfg.data.augment)

    def training_step(self, step: int) -> None:
        """The batch of ``step`` (this process's slice), the loss's phases in order, then the EMA update."""
        t, gc = self.training, self.training.cfg.gan
        batch = self.batches.get(step)
        if self.info.active:
            batch = shard(batch, local_slice(gc.batch_size, self.info), gc.batch_size)
        if gc.end_to_end:
            batch["embedding"] = self.embed(batch["audio"], True)
        with self.autocast:
            self.loss.prepare(batch, step)
        for phase in self.loss.phases_at(step):
            requires_grad(t.trainable(), False)
            requires_grad(t.phase_modules(phase), True)
            t.opts[phase].zero_grad(set_to_none=True)
            with self.autocast:
                self.means.add(self.loss.accumulate_gradients(phase, batch))
            average_gradients([p for mod in t.phase_modules(phase) for p in mod.parameters()], self.info)
            t.opts[phase].step()
        requires_grad(t.trainable(), True)
        ema_update(t.G_ema, t.G, gc.ema_decay)
        self.means.steps += 1

    def warn_if_unconditioned(self, entry: dict) -> None:
        """One warning (stderr) when, at step >= ``UNCONDITIONED_STEP``, the CA's mean still hardly moves with
        the speech (``ca_mu_spread`` < ``UNCONDITIONED_SPREAD``): such runs drew colours at chance to the end
        (docs/results.md, issue 16), so the run is probably worth restarting with another ``gan.seed``."""
        if self.warned or entry["step"] < UNCONDITIONED_STEP or entry["ca_mu_spread"] >= UNCONDITIONED_SPREAD:
            return
        self.warned = True
        if self.info.is_main:
            from tqdm import tqdm

            tqdm.write(f"warning: gan: at step {entry['step']} the conditioning hardly depends on the speech (CA mu "
                       f"spread {entry['ca_mu_spread']:.2f} between the snapshot captions, CA sigma "
                       f"{entry['ca_sigma']:.2f}); runs like this drew colours at chance: consider another "
                       f"--set gan.seed (docs/results.md)", file=sys.stderr)

    def out_of_time(self, deadline: float | None) -> bool:
        """Past ``deadline`` (a ``time.time()``); under torchrun, if any process is (all stop together)."""
        late = deadline is not None and time.time() > deadline
        if self.info.active:  # every process stops at the same step
            flag = torch.tensor([float(late)], device=self.device)
            torch.distributed.all_reduce(flag)
            late = bool(flag.item() > 0)
        return late

    def run(self, start: int, *, stop_after_step: int | None = None, max_minutes: float | None = None,
            progress: bool = True) -> dict:
        """Steps ``start`` to ``gan.iterations`` (or to ``stop_after_step``, or until ``max_minutes`` have
        passed, each with a checkpoint); returns the last log entry ({} if none was written)."""
        from tqdm import tqdm

        gc, entry = self.training.cfg.gan, {}
        self.training.train()
        self.means = LossMeans()  # the clock of the first log line starts here
        bar = tqdm(total=gc.iterations, initial=start, desc="GAN", unit="it", disable=not progress)
        deadline = time.time() + 60 * max_minutes if max_minutes else None
        for step in range(start, gc.iterations):
            self.training_step(step)
            bar.update(1)
            done = step + 1
            if done % gc.log_every == 0 or done == gc.iterations:
                entry = {**self.means.entry(done, self.info), **self.snapshots.condition(self.training.G, self.embed)}
                self.warn_if_unconditioned(entry)
                self.folder.log(entry)  # written after the next checkpoint, so a resume never logs a step twice
                bar.set_postfix(D=entry.get("D0"), G=entry.get("G0"))
            if self.info.is_main and (done % gc.snapshot_every == 0 or done == gc.iterations):
                self.snapshots.save(self.training.G_ema, self.embed, done)
            out_of_time = self.out_of_time(deadline)
            if done % gc.checkpoint_every == 0 or done == gc.iterations or done == stop_after_step or out_of_time:
                self.folder.checkpoint(self.training.state(done, self.sen_checkpoint))
                barrier(self.info)
            if (stop_after_step is not None and done >= stop_after_step) or out_of_time:
                break
        bar.close()
        return entry
