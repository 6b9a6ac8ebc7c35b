"""Losses. SEN: matching + distinctive (S2IGAN Sec. 2.1, official ``steps/traintest_SEN``).

Matching loss: cosine similarities of every speech/image pair in the batch times ``gamma`` (10);
off-diagonal pairs of the same class are masked out (-inf), since they are not negatives;
cross-entropy towards the diagonal in both directions (speech->image and image->speech), summed.
Distinctive loss: one shared linear classifier over the training classes, cross-entropy on the
speech and on the image embedding, summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def matching_loss(speech: torch.Tensor, image: torch.Tensor, labels: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:
    """speech, image (B, D) unit-norm; labels (B,) class ids. Returns a scalar."""
    scores = gamma * speech @ image.T  # (B, B): row = speech query, column = image
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    scores = scores.masked_fill(same & off_diag, float("-inf"))
    target = torch.arange(len(labels), device=labels.device)
    return F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target)


def distinctive_loss(classifier: torch.nn.Module, speech: torch.Tensor, image: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(classifier(speech), labels) + F.cross_entropy(classifier(image), labels)


def sen_loss(model, speech: torch.Tensor, image: torch.Tensor, labels: torch.Tensor, cfg,
             attribute_labels: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The weighted SEN objective; ``cfg`` is a :class:`~speechvision.s2igan.config.SENConfig`.

    ``attribute_labels`` ({attribute: (B,) value ids}, with ``sen.factored``): the distinctive loss of each
    attribute head of ``model.attribute_heads`` too, summed and weighted by ``factored_weight``.
    Returns ``{"loss", "matching", "distinctive", "factored"}`` (switched-off terms are 0).
    """
    zero = speech.new_zeros(())
    m = matching_loss(speech, image, labels, cfg.gamma) if cfg.matching_loss else zero
    d = distinctive_loss(model.classifier, speech, image, labels) if cfg.distinctive_loss else zero
    f = sum((distinctive_loss(model.attribute_heads[k], speech, image, y) for k, y in attribute_labels.items()),
            zero) if attribute_labels else zero
    return {"loss": cfg.matching_weight * m + cfg.distinctive_weight * d + cfg.factored_weight * f,
            "matching": m.detach(), "distinctive": d.detach(), "factored": f.detach()}


# ----------------------------------------------------------------------------------------------
# GAN phases (S2IGAN Sec. 2.2-2.3; official ``trainer.py``): discriminators, relation supervisor, generator.


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), mean over all elements (StackGAN ``KL_loss``)."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class S2IGANLoss:
    """Owns the three GAN phases so the training loop stays generic.

    Per iteration: :meth:`prepare` runs the generator once on the batch (fakes keep their graph),
    then :meth:`accumulate_gradients` is called for each of :meth:`phases_at` the step, in order ``D``,
    ``RS``, ``G``; each returns its scalar terms (detached 0-d tensors, so no device sync) for the log.
    With ``cfg.rs_every`` = k > 1 the RS phase and the generator's RS term run on every k-th step only
    (steps 0, k, 2k, ...), the term with its own ``rs_weight`` there (not scaled by k: scaled, it kept the
    spoken colour out of the conditioning in the CPU runs of issue 16, docs/results.md).

    The batch is a dict with ``real`` / ``wrong`` (lists of (B, 3, S, S) per scale, [-1, 1]),
    ``embedding`` (B, E) speech embeddings, ``z`` (B, Z), ``eps`` (B, C), and for the RS the frozen
    image embeddings (B, D) ``anchor`` (the real image), ``similar`` (same class) and ``different``
    (other class).

    Args:
        generator, discriminators (one per scale), relation (or None for "w/o RS").
        fake_embedder: generated last-stage images (B, 3, S, S) -> (B, D) frozen image embeddings,
            differentiable w.r.t. the images.
        cfg: :class:`~speechvision.s2igan.config.GANConfig`.
    """

    def __init__(self, generator, discriminators, relation, fake_embedder, cfg):
        self.G, self.Ds, self.RS, self.embed_fake, self.cfg = generator, discriminators, relation, fake_embedder, cfg
        self.phases = ("D", "RS", "G") if relation is not None else ("D", "G")
        self._fakes = self._mu = self._logvar = self._fake_emb = None

    def rs_step(self, step: int) -> bool:
        """Whether the RS phases run at ``step`` (every step with ``rs_every`` = 1)."""
        return self.RS is not None and step % self.cfg.rs_every == 0

    def phases_at(self, step: int) -> tuple[str, ...]:
        """The phases of ``step``: ``D``, ``RS``, ``G`` on RS steps, else ``D``, ``G``."""
        return self.phases if self.rs_step(step) else ("D", "G")

    def prepare(self, batch: dict, step: int = 0) -> list[torch.Tensor]:
        self._fakes, self._mu, self._logvar = self.G(batch["embedding"], batch["z"], batch["eps"])
        self._fake_emb = self.embed_fake(self._fakes[-1]) if self.rs_step(step) else None
        return self._fakes

    def accumulate_gradients(self, phase: str, batch: dict) -> dict[str, torch.Tensor]:
        return {"D": self._phase_d, "RS": self._phase_rs, "G": self._phase_g}[phase](batch)

    def _phase_d(self, batch: dict) -> dict[str, torch.Tensor]:
        mu = self._mu.detach()
        total, out = 0.0, {}
        for i, D in enumerate(self.Ds):
            real_c, real_u = D(batch["real"][i], mu)
            wrong_c, wrong_u = D(batch["wrong"][i], mu)
            fake_c, fake_u = D(self._fakes[i].detach(), mu)
            loss = _bce(real_c, 1.0) + _bce(wrong_c, 0.0) + _bce(fake_c, 0.0) + self.cfg.uncond_weight * (
                _bce(real_u, 1.0) + _bce(wrong_u, 1.0) + _bce(fake_u, 0.0))
            total = total + loss
            out[f"D{i}"] = loss.detach()
        total.backward()
        return out

    def _relation_batch(self, batch: dict, fake_emb: torch.Tensor):
        from speechvision.s2igan.relation import DIFFERENT, SAME, SIMILAR

        a = batch["anchor"]
        others = torch.cat([a, batch["similar"], fake_emb, batch["different"]])
        labels = torch.tensor([SAME, SIMILAR, SIMILAR, DIFFERENT], device=a.device).repeat_interleave(len(a))
        return a.repeat(4, 1), others, labels

    def _phase_rs(self, batch: dict) -> dict[str, torch.Tensor]:
        anchor, others, labels = self._relation_batch(batch, self._fake_emb.detach())
        logits = self.RS(anchor, others)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return {"RS": loss.detach(), "RS_acc": (logits.argmax(1) == labels).float().mean()}

    def _phase_g(self, batch: dict) -> dict[str, torch.Tensor]:
        from speechvision.s2igan.relation import SIMILAR

        out, total = {}, 0.0
        for i, D in enumerate(self.Ds):
            cond, uncond = D(self._fakes[i], self._mu)  # official: mu not detached on the G side
            loss = _bce(cond, 1.0) + self.cfg.uncond_weight * _bce(uncond, 1.0)
            total = total + loss
            out[f"G{i}"] = loss.detach()
        kl = kl_loss(self._mu, self._logvar)
        total = total + self.cfg.kl_weight * kl
        out["KL"] = kl.detach()
        if self._fake_emb is not None:
            logits = self.RS(batch["anchor"], self._fake_emb)
            rs = F.cross_entropy(logits, torch.full((len(logits),), SIMILAR, device=logits.device))
            total = total + self.cfg.rs_weight * rs
            out["G_RS"] = rs.detach()
        total.backward()
        return out
