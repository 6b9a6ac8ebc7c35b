"""The audio-visual language model (AVLM, Tan et al., Findings of EMNLP 2025): face features fused into the
expressive speech LM, with an emotion-recognition head.

Fusion strategies (``AVLMConfig.fusion``; the paper's names in brackets):

- ``speech-only`` [asr_only]: the speech LM alone, the baseline.
- ``concat`` [concate]: visual features resampled to the speech-token length (token j of n takes frame
  floor(j * Tv / n)), concatenated with each speech token's embedding and projected back (initialised
  to pass the token embedding through, so training starts from the speech LM). In a dialogue sequence the
  video covers the question, so only the speech tokens before ``<response>`` take frames; the response's
  tokens are left as they are, and a growing reply never moves the question's alignment.
- ``perceiver`` [the paper's Q-Former row, its best; ``qformer`` before 0.2]: a Perceiver resampler turns Tv frames into ceil(Tv / 5) queries
  (5 Hz at 25 fps, at most 128), placed as a prefix: ``<bos> <start_of_visual> [queries] <start_of_audio>
  [Speech] speech tokens``; in a dialogue prompt (``dialogue_prompt``) after the instruction token:
  ``<bos> <start_of_text> <start_of_visual> [queries] <start_of_audio> [Speech] question ...``.
- ``cross-attention`` [x-attn]: a gated cross-attention block (Flamingo-style tanh gates initialised at 0)
  after each decoder layer, from token states to the visual features.

Masked pre-training (``mask_speech_tokens``): a fraction of input speech tokens become ``<speech_mask>``;
the loss is taken on the unmasked positions only, so the visual stream must make up for missing audio.

Emotion head: an MLP over hidden states of decoder layer ``emotion_layer`` mean-pooled over the visual
query positions and the speech's pitch and style token positions (AVLM: layer -4 of 32, the same positions).

Shapes: token ids (B, L); visual input (B, Tv, 136) expression features, (B, Tv, S, S) grey crops or
(B, Tv, 256) frozen FER features (``visual_encoder``: landmark-conv, crop-cnn, fer);
``visual_mask`` (B, Tv) bool (False = padding or a frame without a face).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechvision.avlm.data.spoken_emotion import EMOTIONS
from speechvision.avlm.lm import SpeechLMConfig, allowed_next, build_lm, top_p_filter
from speechvision.avlm.visual import build_visual_encoder
from speechvision.avlm.vocabulary import SPECIALS, Vocabulary
from speechvision.core.checkpoint import load_model_checkpoint, save_checkpoint
from speechvision.core.errors import SpeechvisionError

FUSIONS = ("speech-only", "concat", "perceiver", "cross-attention")
LEGACY_FUSIONS = {"qformer": "perceiver"}  # names in checkpoints written before the rename


def fusion_name(name: str) -> str:
    """The current name of a fusion: a legacy name (``qformer``) becomes its new one; others are unchanged."""
    return LEGACY_FUSIONS.get(name, name)


@dataclass
class AVLMConfig:
    fusion: str = "perceiver"
    visual_encoder: str = "landmark-conv"
    frames_per_query: int = 5  # 25 fps / 5 = 5 Hz queries (AVLM)
    max_queries: int = 128
    resampler_layers: int = 2  # AVLM: 6
    heads: int = 4
    emotion_layer: int = -2  # decoder layer whose output the emotion head pools (AVLM: -4 of 32)
    n_classes: int = 4
    crop_size_px: int = 32

    def __post_init__(self):
        self.fusion = LEGACY_FUSIONS.get(self.fusion, self.fusion)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class PerceiverResampler(nn.Module):
    """(B, Tv, D) visual features -> (B, Nq, D) queries, Nq = max over the batch of ceil(len / frames_per_query)
    (at most ``max_queries``); each layer's queries attend to [features; queries] (Flamingo's resampler)."""

    def __init__(self, dim: int, layers: int, heads: int, frames_per_query: int, max_queries: int):
        super().__init__()
        self.frames_per_query, self.max_queries = frames_per_query, max_queries
        self.queries = nn.Parameter(torch.randn(max_queries, dim) * 0.02)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "ln_q": nn.LayerNorm(dim), "ln_kv": nn.LayerNorm(dim), "attn": nn.MultiheadAttention(dim, heads, batch_first=True),
            "ln_ff": nn.LayerNorm(dim), "ff": nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))})
            for _ in range(layers))
        self.out = nn.LayerNorm(dim)

    def n_queries(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) queries per sample: ceil(frames / frames_per_query), between 1 and ``max_queries``."""
        return torch.clamp(torch.div(lengths + self.frames_per_query - 1, self.frames_per_query, rounding_mode="floor"),
                           1, self.max_queries)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (queries (B, Nq, D), query mask (B, Nq) bool)."""
        nq = self.n_queries(mask.sum(1))
        n = int(nq.max())
        q = self.queries[:n].unsqueeze(0).expand(x.shape[0], -1, -1)
        q_mask = torch.arange(n, device=x.device)[None] < nq[:, None]
        kv_mask = torch.cat([mask, q_mask], 1)
        for layer in self.layers:
            qn = layer["ln_q"](q)
            kv = torch.cat([layer["ln_kv"](x), qn], 1)
            q = q + layer["attn"](qn, kv, kv, key_padding_mask=~kv_mask, need_weights=False)[0]
            q = q + layer["ff"](layer["ln_ff"](q))
        return self.out(q) * q_mask[..., None], q_mask


class GatedCrossAttention(nn.Module):
    """h + tanh(a) * attn(LN(h), visual) then + tanh(b) * FF(LN(h)); gates start at 0 (identity). A learned
    null visual token is always attendable, so a clip without face frames is well defined."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln, self.ln_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.gate_attn, self.gate_ff = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kv = torch.cat([self.null.expand(visual.shape[0], -1, -1), visual], 1)
        kv_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        h = h + torch.tanh(self.gate_attn) * self.attn(self.ln(h), kv, kv, key_padding_mask=~kv_mask,
                                                       need_weights=False)[0]
        return h + torch.tanh(self.gate_ff) * self.ff(self.ln_ff(h))


class ConcatFusion(nn.Module):
    """Speech token embedding (B, L, D) ++ the visual frame at the token's relative time -> Linear -> (B, L, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)
        with torch.no_grad():  # start as the identity on the token embedding
            self.proj.weight.zero_()
            self.proj.weight[:, :dim].copy_(torch.eye(dim))
            self.proj.bias.zero_()

    @staticmethod
    def frame_index(speech: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """(B, L) frame of each position: speech position j of n takes floor(j * Tv / n); others 0."""
        rank = speech.long().cumsum(1) - 1
        n = speech.long().sum(1, keepdim=True).clamp_min(1)
        idx = torch.div(rank.clamp_min(0) * n_frames[:, None], n, rounding_mode="floor")
        return torch.minimum(idx, (n_frames[:, None] - 1).clamp_min(0))

    def forward(self, emb: torch.Tensor, speech: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        idx = self.frame_index(speech, mask.sum(1))
        v = torch.gather(visual, 1, idx[..., None].expand(-1, -1, visual.shape[-1]))
        fused = self.proj(torch.cat([emb, v], -1))
        return torch.where(speech[..., None], fused, emb)


def _base(lm):
    """The causal LM under a peft wrapper (or the model itself)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def _decoder(lm):
    return _base(lm).model


class AVLM(nn.Module):
    """A causal speech LM (``LlamaForCausalLM`` over our vocabulary) plus visual encoder, fusion and emotion head."""

    def __init__(self, lm, vocab: Vocabulary, config: AVLMConfig):
        super().__init__()
        self.lm, self.vocab, self.config = lm, vocab, config
        dec = _decoder(lm)
        dim = dec.embed_tokens.embedding_dim
        n_layers = len(dec.layers)
        if config.fusion != "speech-only":
            self.visual = build_visual_encoder(config.visual_encoder, dim)
        if config.fusion == "perceiver":
            self.resampler = PerceiverResampler(dim, config.resampler_layers, config.heads, config.frames_per_query,
                                                config.max_queries)
        elif config.fusion == "concat":
            self.concat = ConcatFusion(dim)
        elif config.fusion == "cross-attention":
            self.xattn = nn.ModuleList(GatedCrossAttention(dim, config.heads) for _ in range(n_layers))
        self.emotion_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, config.n_classes))
        self._ctx: dict = {}
        self._hidden: list = []
        for i, layer in enumerate(dec.layers):
            layer.register_forward_hook(self._make_hook(i))
        kinds = torch.from_numpy(vocab.kinds()).long()
        self.register_buffer("token_kinds", kinds, persistent=False)

    def _make_hook(self, i: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            if self.config.fusion == "cross-attention" and "visual" in self._ctx:
                h = self.xattn[i](h, self._ctx["visual"], self._ctx["visual_mask"])
            self._hidden.append(h)
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h
        return hook

    def encode_visual(self, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, Tv, D) visual features (zero where ``mask`` is False)."""
        return self.visual(visual, mask)

    def insert_at(self, input_ids: torch.Tensor) -> int:
        """Where the perceiver prefix goes: after ``<bos>``, or after ``<bos> <start_of_text>`` (dialogue prompts)."""
        sot = self.vocab.special("<start_of_text>")
        return 2 if input_ids.shape[1] > 1 and bool((input_ids[:, 1] == sot).all()) else 1

    def build_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual=None, visual_mask=None) -> dict:
        """Input embeddings, attention mask and where things are, for ids (B, L) starting with ``<bos>``.

        Returns a dict: ``embeds`` (B, L', D), ``attention_mask`` (B, L'), ``prefix`` (positions inserted
        at ``insert_at``: 0, or Nq + 2 for perceiver), ``insert_at``, ``query_mask`` (B, L') bool,
        ``prosody_mask`` (B, L') bool (pitch/style token positions, the emotion head's pool), ``speech``
        (B, L') bool (any speech token).
        """
        emb_layer = _decoder(self.lm).embed_tokens
        emb = emb_layer(input_ids)
        kinds = self.token_kinds[input_ids]
        speech = (kinds > 0) & attention_mask.bool()
        prosody = ((kinds == 2) | (kinds == 3)) & attention_mask.bool()
        b = input_ids.shape[0]
        at = self.insert_at(input_ids)
        out = {"prefix": 0, "insert_at": at, "query_mask": torch.zeros_like(speech)}
        fusion = self.config.fusion
        if fusion != "speech-only":
            if visual is None or visual_mask is None:
                raise ValueError(f"fusion {fusion!r} needs visual input and visual_mask")
            vis = self.encode_visual(visual, visual_mask)
        if fusion == "concat":
            before_response = (input_ids == self.vocab.special("<response>")).long().cumsum(1) == 0
            emb = self.concat(emb, speech & before_response, vis, visual_mask)
        elif fusion == "cross-attention":
            self._ctx = {"visual": vis, "visual_mask": visual_mask}
        elif fusion == "perceiver":
            q, q_mask = self.resampler(vis, visual_mask)
            sov = emb_layer(torch.full((b, 1), self.vocab.special("<start_of_visual>"), device=emb.device))
            soa = emb_layer(torch.full((b, 1), self.vocab.special("<start_of_audio>"), device=emb.device))
            emb = torch.cat([emb[:, :at], sov, q, soa, emb[:, at:]], 1)
            ones = torch.ones(b, 1, dtype=attention_mask.dtype, device=emb.device)
            attention_mask = torch.cat([attention_mask[:, :at], ones, q_mask.to(attention_mask.dtype), ones,
                                        attention_mask[:, at:]], 1)
            n = q.shape[1] + 2
            pad = torch.zeros(b, n, dtype=torch.bool, device=emb.device)
            qm = torch.cat([torch.zeros_like(speech[:, :at]), torch.zeros_like(pad[:, :1]), q_mask,
                            torch.zeros_like(pad[:, :1]), torch.zeros_like(speech[:, at:])], 1)
            speech = torch.cat([speech[:, :at], pad, speech[:, at:]], 1)
            prosody = torch.cat([prosody[:, :at], pad, prosody[:, at:]], 1)
            out.update(prefix=n, query_mask=qm)
        out.update(embeds=emb, attention_mask=attention_mask, speech=speech, prosody_mask=prosody)
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual=None, visual_mask=None,
                labels: torch.Tensor | None = None) -> dict:
        """Next-token logits (B, L', V) and, with ``labels`` (B, L) (-100 = ignored), the mean cross-entropy.

        Also returns ``pooled`` (B, D): the emotion head's input, and ``emotion_logits`` (B, n_classes).
        """
        self._hidden, self._ctx = [], {}
        x = self.build_inputs(input_ids, attention_mask, visual, visual_mask)
        base = _base(self.lm)
        h = base.model(inputs_embeds=x["embeds"], attention_mask=x["attention_mask"]).last_hidden_state
        logits = base.lm_head(h)
        out = {"logits": logits, "prefix": x["prefix"], "insert_at": x["insert_at"]}
        if labels is not None:
            if x["prefix"]:
                at = x["insert_at"]
                labels = torch.cat([labels[:, :at], torch.full((labels.shape[0], x["prefix"]), -100, dtype=labels.dtype,
                                                               device=labels.device), labels[:, at:]], 1)
            out["loss"] = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                          labels[:, 1:].reshape(-1), ignore_index=-100)
            out["labels"] = labels
        hidden = self._hidden[self.config.emotion_layer]
        pool = x["prosody_mask"] | x["query_mask"]
        pool = torch.where(pool.any(1, keepdim=True), pool, x["attention_mask"].bool())
        w = pool.float()[..., None]
        out["pooled"] = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
        out["emotion_logits"] = self.emotion_head(out["pooled"])
        self._hidden, self._ctx = [], {}
        return out


def mask_speech_tokens(ids: torch.Tensor, attention_mask: torch.Tensor, vocab: Vocabulary, ratio: float,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a ``ratio`` of speech tokens (units, pitch, style) by ``<speech_mask>``.

    Returns (masked ids (B, L), labels (B, L)): labels are the original ids, with -100 at the masked positions
    and at padding, so the loss is taken on unmasked positions only (AVLM pre-training).

    Raises:
        ValueError: ``ratio`` outside [0, 1).
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    kinds = torch.from_numpy(vocab.kinds()).to(ids.device)[ids]
    speech = (kinds > 0) & attention_mask.bool()
    draw = torch.rand(ids.shape, generator=generator, device=ids.device) < ratio
    masked = speech & draw
    out = torch.where(masked, torch.full_like(ids, vocab.special("<speech_mask>")), ids)
    labels = torch.where(masked | ~attention_mask.bool(), torch.full_like(ids, -100), ids)
    return out, labels


def dialogue_prompt(vocab: Vocabulary, question: list[int], emotion: str | None = None,
                    response: list[int] | None = None) -> list[int]:
    """The expressive-dialogue sequence (AVLM sec. 3.3) in our vocabulary.

    ``<bos> <start_of_text> [Speech] question <emotion:X> <response> [Speech] response <eos>``: the fixed
    instruction ("Perceive the given visual and audio input. Determine the emotion of the speaker and
    continue the dialogue with the same emotion.") is the one learned token ``<start_of_text>``, since the
    speech LM has no text vocabulary; the visual prefix (perceiver) goes right after it. Without ``emotion``
    the prompt ends before the emotion token (the model predicts it); without ``response`` it ends with
    ``<response> [Speech]`` (the model continues).

    Raises:
        ValueError: an unknown emotion, or a response without an emotion.
    """
    if emotion is not None and f"<emotion:{emotion}>" not in SPECIALS:
        raise ValueError(f"unknown emotion {emotion!r}; the vocabulary has neutral, happy, angry and sad")
    ids = [vocab.special("<bos>"), vocab.special("<start_of_text>"), vocab.special("[Speech]")] + list(question)
    if emotion is None:
        if response is not None:
            raise ValueError("a dialogue response needs its emotion")
        return ids
    ids += [vocab.special(f"<emotion:{emotion}>"), vocab.special("<response>"), vocab.special("[Speech]")]
    return ids + (list(response) + [vocab.special("<eos>")] if response is not None else [])


def n_queries(n_frames: int, frames_per_query: int = 5, max_queries: int = 128) -> int:
    """ceil(n_frames / frames_per_query), between 1 and ``max_queries`` (AVLM's 5 Hz at 25 fps, cap 128)."""
    return max(1, min(max_queries, math.ceil(n_frames / frames_per_query)))


AVLM_VERSION = 1


class AVLMError(SpeechvisionError, ValueError):
    """Missing or mismatched AVLM inputs or checkpoints."""


def collate(clips: list[dict], vocab) -> dict:
    """Batch tensors: ``ids``/``attention_mask`` (B, L), ``visual`` (B, Tv, ...), ``visual_mask`` (B, Tv),
    ``emotion`` (B,)."""
    seqs = [[vocab.special("<bos>"), vocab.special("[Speech]")] + list(c["tokens"]) + [vocab.special("<eos>")]
            for c in clips]
    n = max(map(len, seqs))
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    am = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], am[i, :len(s)] = torch.tensor(s), 1
    faces = [c["visual"] for c in clips]
    tv = max(len(f) for f in faces)
    vis = np.zeros((len(faces), tv) + faces[0].shape[1:], faces[0].dtype)
    vm = torch.zeros(len(faces), tv, dtype=torch.bool)
    for i, f in enumerate(faces):
        vis[i, :len(f)], vm[i, :len(f)] = f, True
    return {"ids": ids, "attention_mask": am, "visual": torch.from_numpy(vis), "visual_mask": vm,
            "emotion": torch.tensor([c["emotion"] for c in clips])}


def build_avlm(lm_dir, vocab, config: AVLMConfig) -> AVLM:
    """An AVLM whose LM is the trained speech LM in ``lm_dir`` (``speechvision speechlm train``)."""
    from speechvision.avlm.lm import load_lm

    lm, _ = load_lm(lm_dir)
    return AVLM(lm.train(), vocab, config)


def save_avlm(path: Path, model: AVLM, lm_config: dict, extra: dict) -> None:
    save_checkpoint(path, "avlm", {"model_version": AVLM_VERSION, "config": model.config.to_dict(),
                                   "lm_config": lm_config, "model": model.state_dict(), **extra})


def load_avlm(path, vocab) -> AVLM:
    """Rebuild an AVLM from its checkpoint. Raises AVLMError for a missing file or another version."""
    ck = load_model_checkpoint(path, "avlm", AVLM_VERSION, AVLMError, "speechvision avlm train", "AVLM")
    model = AVLM(build_lm(SpeechLMConfig(**ck["lm_config"])), vocab, AVLMConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    return model.eval()


@torch.no_grad()
def predict_emotion(model: AVLM, vocab, question: list[int], visual, visual_mask) -> np.ndarray:
    """(4,) probabilities of the emotion tokens after the prompt (in ``EMOTIONS`` order)."""
    ids = torch.tensor([dialogue_prompt(vocab, question)])
    logits = model(ids, torch.ones_like(ids), visual, visual_mask)["logits"][0, -1]
    return logits[emotion_token_ids(vocab)].float().softmax(-1).numpy()


@torch.no_grad()
def sample_response(model: AVLM, vocab, question: list[int], emotion: str, visual, visual_mask, *,
                    max_new_tokens: int = 150, temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
                    min_units: int = 10) -> list[int]:
    """Response speech tokens after ``dialogue_prompt(question, emotion)``, sampled under the speech-LM
    constraints (``allowed_next``: speech tokens only, never two pitch or style tokens in a row), until
    ``<eos>`` (allowed after ``min_units`` units) or ``max_new_tokens``.

    Raises:
        ValueError: temperature <= 0 or top_p outside (0, 1].
    """
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")
    gen = torch.Generator().manual_seed(seed)
    ids = dialogue_prompt(vocab, question, emotion)
    new, units = [], 0
    for _ in range(max_new_tokens):
        t = torch.tensor([ids + new])
        logits = model(t, torch.ones_like(t), visual, visual_mask)["logits"][0, -1, :vocab.size].float()
        mask = torch.from_numpy(allowed_next(vocab, (ids + new)[-1], allow_eos=units >= min_units))
        probs = top_p_filter((logits / temperature).masked_fill(~mask, float("-inf")), top_p).softmax(-1)
        tok = int(torch.multinomial(probs, 1, generator=gen))
        if tok == vocab.special("<eos>"):
            break
        new.append(tok)
        units += vocab.kind(tok) == "unit"
    return new


def emotion_token_ids(vocab) -> list[int]:
    return [vocab.special(f"<emotion:{e}>") for e in EMOTIONS]
