"""Speech language model over expressive tokens: a small Llama (transformers) from scratch, or LoRA (peft)
on a local pretrained backbone; and speech-only constrained sampling.

Training sequences are ``<bos> [Speech] tokens ... <eos>``. A pretrained backbone keeps its own vocabulary
and our tokens are appended after it (id + ``offset``); its embeddings and LM head are resized and trained
beside the LoRA adapters on q/k/v/o (AVLM: r 64, alpha 128, dropout 0.05 on SpiritLM-7B; smaller here).

Source: AVLM (Tan et al., 2025) section 3 and its code's generation setting (speech-only logits processor,
temperature 0.8, top-p 0.95).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from speechvision.avlm.vocabulary import Vocabulary
from speechvision.core.checkpoint import load_model_checkpoint
from speechvision.core.errors import SpeechvisionError


@dataclass
class SpeechLMConfig:
    vocab_size: int = 512
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 704
    max_positions: int = 1024
    dropout: float = 0.1
    backbone: str | None = None  # a local Hugging Face folder; None = train from scratch
    offset: int = 0  # our token 0 is backbone id ``offset``
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)


def speech_lm_config(hidden_size: int = 256, num_layers: int = 4,
                     backbone: str | Path | None = None) -> SpeechLMConfig:
    """The config of a speech LM to train: from scratch, ``num_layers`` decoder layers of ``hidden_size``
    with feed-forward size ``hidden_size * 11 // 4`` (704 for 256); or, with ``backbone`` (a local Hugging
    Face causal-LM folder), LoRA on it, our tokens placed after its vocabulary (``offset``: its vocabulary
    size, read from its config.json, no download)."""
    config = SpeechLMConfig(hidden_size=hidden_size, num_layers=num_layers, intermediate_size=hidden_size * 11 // 4,
                            backbone=str(backbone) if backbone else None)
    if backbone:
        from transformers import AutoConfig

        config.offset = AutoConfig.from_pretrained(str(backbone), local_files_only=True).vocab_size
    return config


def build_lm(config: SpeechLMConfig):
    """A ``LlamaForCausalLM`` from the config (no download), or a peft LoRA model on ``config.backbone``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if config.backbone is None:
        cfg = LlamaConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                          intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
                          num_attention_heads=config.num_heads, num_key_value_heads=config.num_heads,
                          max_position_embeddings=config.max_positions, attention_dropout=config.dropout,
                          pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
        return LlamaForCausalLM(cfg)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(config.backbone, local_files_only=True)
    base.resize_token_embeddings(config.offset + config.vocab_size)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      modules_to_save=["embed_tokens", "lm_head"], task_type="CAUSAL_LM")
    return get_peft_model(base, lora)


def allowed_next(vocab: Vocabulary, last: int, allow_eos: bool = True) -> np.ndarray:
    """(V,) bool mask of the tokens that may follow ``last`` in generated speech.

    Only speech tokens (units, pitch, style, level) and optionally ``<eos>``, in the order
    ``vocabulary.interleave`` writes before each unit (style, level, pitch): after a pitch token only a unit;
    after a level token a pitch token or a unit; after a style token a level token, a pitch token or a unit.
    So two tokens of one prosody stream are never adjacent.
    """
    kinds = vocab.kinds()
    mask = kinds == 1
    k = vocab.kind(int(last)) if 0 <= int(last) < vocab.size else "special"
    follows = {"unit": (2, 3, 4), "special": (2, 3, 4), "style": (2, 4), "level": (2,), "pitch": ()}[k]
    for code in follows:
        mask |= kinds == code
    if allow_eos:
        mask[vocab.special("<eos>")] = True
    return mask


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(V,) logits with everything outside the smallest set of cumulative probability >= top_p at -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, idx = logits.sort(descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) > top_p  # keep the token that crosses top_p
    out = logits.clone()
    out[idx[drop]] = float("-inf")
    return out


@torch.no_grad()
def sample(model, vocab: Vocabulary, prompt: list[int], *, max_new_tokens: int = 300, temperature: float = 0.8,
           top_p: float = 0.95, offset: int = 0, seed: int = 0, min_units: int = 1) -> list[int]:
    """Continue ``prompt`` (our token ids) with speech tokens only; returns the new tokens (no ``<eos>``).

    Args:
        temperature: > 0; softmax temperature.
        top_p: nucleus size in (0, 1].
        min_units: ``<eos>`` is not allowed before this many new units.
    Raises:
        ValueError: temperature <= 0, top_p outside (0, 1], or an empty prompt.
    """
    if temperature <= 0 or not 0 < top_p <= 1 or not prompt:
        raise ValueError("sample needs temperature > 0, 0 < top_p <= 1 and a non-empty prompt")
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    ids = torch.tensor([prompt], dtype=torch.long) + offset
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1, offset:offset + vocab.size]
    new, last, units = [], prompt[-1], 0
    for _ in range(max_new_tokens):
        mask = torch.from_numpy(allowed_next(vocab, last, allow_eos=units >= min_units))
        lg = (logits.float() / temperature).masked_fill(~mask, float("-inf"))
        probs = top_p_filter(lg, top_p).softmax(-1)
        tok = int(torch.multinomial(probs, 1, generator=gen))
        if tok == vocab.special("<eos>"):
            break
        new.append(tok)
        units += vocab.kind(tok) == "unit"
        last = tok
        out = model(input_ids=torch.tensor([[tok + offset]]), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1, offset:offset + vocab.size]
    return new


LM_VERSION = 1


class SpeechLMError(SpeechvisionError, ValueError):
    """A speech LM checkpoint is missing, from another version, or the token folder is empty."""


def load_lm_checkpoint(folder: str | Path, name: str = "lm.pt") -> dict:
    return load_model_checkpoint(Path(folder) / name, "speech-lm", LM_VERSION, SpeechLMError,
                                 "speechvision speechlm train", "speech LM")


def load_lm(folder: str | Path, *, best: bool = True):
    """(model in eval mode, SpeechLMConfig) rebuilt from the checkpoint's config: the lowest-validation-
    perplexity checkpoint (``best.pt``) when ``best`` and it exists, else the last one (``lm.pt``)."""
    ck = load_lm_checkpoint(folder, "best.pt" if best and (Path(folder) / "best.pt").is_file() else "lm.pt")
    config = SpeechLMConfig(**ck["config"])
    model = build_lm(config)
    model.load_state_dict(ck["model"])
    return model.eval(), config
