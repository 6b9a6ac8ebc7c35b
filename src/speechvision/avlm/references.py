"""What the dialogue evaluation measures on a split's reference utterances (the test split; the validation
split when a decoding or model choice is made), once per tokens and vocoder: each utterance's real recording
and its resynthesis (encode -> vocoder) with their judge features, offline-Whisper transcripts and DNSMOS.
None of it depends on the dialogue model, so every fusion and seed reads the same cached numbers (the
reference ceilings are then identical across runs, and an evaluation costs only its own replies).

The judge's per-voice reference sets need the features of every test utterance, which are cheap (a
resynthesis and openSMILE); the transcripts and DNSMOS (the offline Whisper and the DNSMOS network, most of
the cost) are measured only for the utterances an evaluation scores, so ``avlm evaluate-dialogue --limit N``
pays for N references, not for the whole split.

The cache is ``<vocoder>/<split>-references-<key>.jsonl``, one JSON line per utterance (a later line for the
same utterance, with its transcripts added, replaces an earlier one), keyed by the tokens' ``encoded.jsonl``
and the vocoder checkpoint (their paths, sizes and times); a killed build resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DOMAINS = ("real", "resynth")


def reference_cache_path(tokens_dir: str | Path, vocoder_dir: str | Path, split: str = "test") -> Path:
    from speechvision.data.cache import content_key

    files = [Path(tokens_dir) / "encoded.jsonl", Path(vocoder_dir) / "vocoder.pt"]
    key = content_key(files, {"kind": f"{split}-references", "version": 1})
    return Path(vocoder_dir) / f"{split}-references-{key}.jsonl"


def split_references(tokens_dir, vocoder_dir, speaker, *, measure_ids=None, split: str = "test",
                    progress: bool = True) -> dict[str, dict]:
    """utterance id -> {"voice", "real": {...}, "resynth": {...}}, each domain holding ``feats`` (88,) eGeMAPS
    functionals (np.ndarray) and, for the utterances in ``measure_ids``, ``text`` (Whisper transcript) and
    ``dnsmos`` (overall MOS, None under 0.5 s), for every utterance of ``split`` (default test).

    Args:
        speaker: the ``UnitVocoder`` of ``tokens_dir`` and ``vocoder_dir`` (it makes the resynthesis).
        measure_ids: the utterances to transcribe and score with DNSMOS (default: all of the split's).
    Raises:
        KeyError: an id of ``measure_ids`` is not an utterance of ``split`` in ``tokens_dir``.
    """
    from tqdm import tqdm

    from speechvision.avlm.corpus import load_encoded, read_wave
    from speechvision.avlm.judges import dnsmos, emotion_features, transcribe

    path = reference_cache_path(tokens_dir, vocoder_dir, split)
    done = _read_cache(path)
    rate = speaker.tok.config.sample_rate_hz
    rows = load_encoded(tokens_dir, split)
    by_id = {r["id"]: r for r in rows}
    measure = set(by_id) if measure_ids is None else set(measure_ids)
    missing = sorted(measure - set(by_id))
    if missing:
        raise KeyError(f"{missing[0]}: not a {split} utterance of {Path(tokens_dir) / 'encoded.jsonl'}")
    todo = [r for r in rows if r["id"] not in done or (r["id"] in measure and "text" not in done[r["id"]]["real"])]
    with open(path, "a") as f:
        for r in tqdm(todo, desc=f"{split} references", unit="utt", disable=not progress):
            waves = {"real": read_wave(r["audio"], rate), "resynth": speaker.decode(r["tokens"], r["speaker"])}
            row = {"id": r["id"], "voice": r["speaker"]}
            for d, w in waves.items():
                row[d] = {"feats": emotion_features(w, rate).tolist()}
                if r["id"] in measure:
                    row[d]["text"] = transcribe(w, rate)
                    row[d]["dnsmos"] = dnsmos(w, rate)["ovrl"] if len(w) > rate // 2 else None
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[r["id"]] = row
    out = {}
    for r in rows:
        row = done[r["id"]]
        out[r["id"]] = {"voice": row["voice"],
                        **{d: {**row[d], "feats": np.asarray(row[d]["feats"], np.float64)} for d in DOMAINS}}
    return out


def _read_cache(path: Path) -> dict[str, dict]:
    """id -> its last complete row in the cache (a later row of an utterance holds more of it)."""
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: measured again
                continue
            done[row["id"]] = row
    return done


def voice_feature_sets(refs: dict[str, dict], domain: str) -> dict[str, np.ndarray]:
    """voice -> (M, 88) features of that voice's reference utterances in ``domain``: the speaker-normalised
    judge's reference sets."""
    by_voice: dict[str, list] = {}
    for row in refs.values():
        by_voice.setdefault(row["voice"], []).append(row[domain]["feats"])
    return {v: np.stack(f) for v, f in by_voice.items()}
