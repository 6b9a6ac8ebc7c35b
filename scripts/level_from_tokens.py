"""How much of an utterance's loudness the expressive tokens carry.

    python scripts/level_from_tokens.py --tokens runs/tokens

Each utterance's active-speech level (dB, 10 ms frames above -30 dB of its loudest) relative to its voice's
mean level is regressed (ridge, scikit-learn) on utterance statistics of its tokens: the style-token
histogram, the mean and spread of the pitch bins and the units per unit frame. Fitted on train, scored on
test (held-out voices). Prints R^2 and the per-emotion mean level, true and predicted.
"""

import collections
import json

import numpy as np
import soundfile as sf
from common_args import script_parser
from sklearn.linear_model import RidgeCV

from speechvision.avlm.corpus import load_encoded
from speechvision.avlm.tokens import ExpressiveTokenizer


def active_level_db(path: str) -> float:
    x, rate = sf.read(path, dtype="float64")
    hop = rate // 100
    energy = (x[:len(x) // hop * hop].reshape(-1, hop) ** 2).mean(1)
    return float(10 * np.log10(energy[energy > energy.max() * 1e-3].mean() + 1e-12))


def main() -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--tokens", required=True)
    args = ap.parse_args()
    tok = ExpressiveTokenizer.load(args.tokens)
    rows = load_encoded(args.tokens)
    level = np.array([active_level_db(r["audio"]) for r in rows])
    by_voice = collections.defaultdict(list)
    for r, lv in zip(rows, level):
        by_voice[r["speaker"]].append(lv)
    rel = np.array([lv - np.mean(by_voice[r["speaker"]]) for r, lv in zip(rows, level)])

    def stats(r):
        s = tok.split_streams(r["tokens"])
        hist = np.bincount(s["style"], minlength=tok.config.n_styles) / max(1, len(s["style"]))
        p = np.asarray(s["pitch"])
        voiced = p[p >= 0] if (p >= 0).any() else np.array([tok.config.n_pitch_bins // 2])
        n = tok.config.n_pitch_bins
        return np.concatenate([hist, [voiced.mean() / n, voiced.std() / n, len(s["units"]) / max(1, len(r["unit_frames"]))]])

    x = np.stack([stats(r) for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    test = np.array([r["split"] == "test" for r in rows])
    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x[train], rel[train])
    pred = model.predict(x)
    out = {"r2_train": round(model.score(x[train], rel[train]), 3), "r2_test": round(model.score(x[test], rel[test]), 3)}
    for e in sorted({r["emotion"] for r in rows}):
        idx = test & np.array([r["emotion"] == e for r in rows])
        out[e] = {"true_db": round(float(rel[idx].mean()), 2), "predicted_db": round(float(pred[idx].mean()), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
