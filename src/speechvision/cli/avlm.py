"""The AVLM commands: ``data spoken-emotion|av-emotion``, ``speechlm tokenize|vocoder|choose-voice|train|
continue|evaluate`` and ``avlm train|compare|recognize|respond|evaluate-dialogue``.

Each command is declared on its handler (``@command``) after the function that adds its options; each
``cmd_*`` handler takes the parsed arguments, makes one library call and prints its result. The option lists
(fusions, visual encoders, emotions) are the library's own and, like the rest of the library, imported
inside the functions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechvision.cli.common import (
    BUILD_FORCE,
    Writes,
    command,
    declare,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    probability,
    seed,
    shows_progress,
    usage_error,
)

# ---- data ---------------------------------------------------------------------------------------------


def add_spoken_emotion_arguments(p) -> None:
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dialogues", type=positive_int, default=800, help="question/response pairs (default 800; "
                   "each spoken in 4 emotions)")
    p.add_argument("--grammar", choices=("answering", "v1"), default="answering",
                   help="answering (default): the reply answers the question with its content words; v1: the "
                        "grammar before issue 20, whose replies do not follow from their questions")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="synthesis processes (default: CPU count)")


@command("data", "spoken-emotion", progress=True, arguments=add_spoken_emotion_arguments,
         writes=Writes("place", BUILD_FORCE),
         help="SYNTHETIC expressive speech: 4 emotions as prosody profiles",
         example="--out data/spoken-emotion")
def cmd_data_spoken_emotion(args) -> None:
    from speechvision.avlm.data.spoken_emotion import EmotionBuildConfig, build_spoken_emotion, load_corpus

    cfg = EmotionBuildConfig(dialogues=args.dialogues, seed=args.seed, workers=args.workers, grammar=args.grammar)
    out = build_spoken_emotion(args.out, cfg, force=args.force, progress=shows_progress(args))
    meta, _ = load_corpus(out)
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in meta["splits"].items()) + " utterances")


def add_av_emotion_arguments(p) -> None:
    p.add_argument("--speech", required=True, type=Path, help="a built spoken-emotion corpus")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--ambiguous-fraction", type=fraction, default=0.3,
                   help="clips whose audio is the neutral recording of the sentence (default 0.3)")
    p.add_argument("--seed", type=seed, default=0)


@command("data", "av-emotion", progress=True, arguments=add_av_emotion_arguments, writes=Writes("place", BUILD_FORCE),
         help="SYNTHETIC audio-visual emotion set: spoken-emotion speech + synthetic face landmarks",
         example="--speech data/spoken-emotion --out data/av-emotion")
def cmd_data_av_emotion(args) -> None:
    from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion

    out = build_av_emotion(args.speech, args.out, AVBuildConfig(ambiguous_fraction=args.ambiguous_fraction,
                                                                seed=args.seed), force=args.force,
                           progress=shows_progress(args))
    meta = json.loads((out / "dataset.json").read_text())
    print(f"wrote {out}: " + ", ".join(f"{k} {v} ({meta['ambiguous'][k]} ambiguous)"
                                       for k, v in meta["splits"].items()) + " clips")


# ---- speechlm: tokenizer, unit vocoder and speech LM ----------------------------------------------------

declare("speechlm", dest="speechlm_command",
        help="expressive speech tokens, unit vocoder and speech language model")


_TOKENIZE_DEFAULTS = {"units": 200, "styles": 100, "unit_features": "mfcc", "hubert": None, "level_bins": 16}


def add_tokenize_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="a spoken-emotion corpus folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--units", type=positive_int, default=_TOKENIZE_DEFAULTS["units"],
                   help="content units (k-means clusters, default 200)")
    p.add_argument("--styles", type=positive_int, default=_TOKENIZE_DEFAULTS["styles"],
                   help="style tokens (default 100)")
    p.add_argument("--unit-features", choices=("mfcc", "whisper", "hubert"),
                   default=_TOKENIZE_DEFAULTS["unit_features"],
                   help="frame features the content units cluster: MFCC (default), the offline Whisper encoder, "
                        "or a local HuBERT")
    p.add_argument("--hubert", type=Path, default=None, help="local HuBERT/wav2vec2 folder for --unit-features hubert")
    p.add_argument("--level-bins", type=non_negative_int, default=_TOKENIZE_DEFAULTS["level_bins"],
                   help="level tokens: bins of the active level relative to the speaker, over +-12 dB per 0.5 s "
                        "window (default 16, 1.5 dB each; 0 = no level stream, the tokenizer before issue 20)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="encode with this already fitted tokenizer instead of fitting one: a tokenizer folder, "
                        "or 'bundled' for the bundled AVLM stack's (so its vocoder reads the tokens); "
                        "the fitting options above do not apply then")


@command("speechlm", "tokenize", progress=True, arguments=add_tokenize_arguments, writes=Writes(),
         help="fit the tokenizer on a corpus's train split and encode every utterance",
         example="--data data/spoken-emotion --out runs/tokens")
def cmd_tokenize(args) -> None:
    from speechvision.avlm.corpus import tokenize_corpus
    from speechvision.avlm.tokens import TokenizerConfig

    cfg = TokenizerConfig(n_units=args.units, n_styles=args.styles, unit_features=args.unit_features,
                          hubert_path=str(args.hubert) if args.hubert else None, n_level_bins=args.level_bins)
    fitted = args.tokenizer
    if fitted is not None:
        from speechvision.avlm.bundle import bundled_stack_dir

        fitted = bundled_stack_dir() if str(fitted) == "bundled" else fitted
        if not (fitted / "tokenizer.json").is_file():
            usage_error(f"--tokenizer {args.tokenizer}: no tokenizer.json there (a `speechlm tokenize` folder, "
                        "or 'bundled')")
        changed = [f"--{k.replace('_', '-')}" for k, default in _TOKENIZE_DEFAULTS.items()
                   if getattr(args, k) != default]
        if changed:
            usage_error(f"--tokenizer {args.tokenizer}: the fitted tokenizer fixes {', '.join(changed)}; "
                        "give either")
    print(f"wrote {tokenize_corpus(args.data, args.out, cfg, tokenizer=fitted, progress=shows_progress(args))}")


def add_vocoder_arguments(p) -> None:
    p.add_argument("--tokens", required=True, type=Path, help="folder written by `speechlm tokenize`")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=positive_int, default=3000)
    p.add_argument("--hidden", type=positive_int, default=256, help="channels of the envelope network (default 256)")
    p.add_argument("--voice-conditioned", action=argparse.BooleanOptionalAction, default=True,
                   help="condition the envelope network on the train voices (default on); held-out speakers are "
                        "rendered in the train voice `choose-voice` picks, else the one with the nearest mean F0")
    p.add_argument("--choose-voice-n", type=non_negative_int, default=80,
                   help="after training, run `choose-voice` on this many validation utterances (default 80; 0 skips)")


@command("speechlm", "vocoder", progress=True, arguments=add_vocoder_arguments, writes=Writes(),
         help="train the unit vocoder (WORLD envelope network)")
def cmd_vocoder(args) -> None:
    """Train the vocoder; a voice-conditioned one then gets its voice for held-out speakers (choose-voice)."""
    from speechvision.avlm.train_vocoder import train_vocoder_and_voice

    result = train_vocoder_and_voice(args.tokens, args.out, steps=args.steps, voice_conditioned=args.voice_conditioned,
                                     hidden=args.hidden, choose_voice_n=args.choose_voice_n,
                                     progress=shows_progress(args))
    print(f"wrote {result['vocoder']}")
    if result["choose_voice"] is not None:
        print(json.dumps(result["choose_voice"]))


def add_choose_voice_arguments(p) -> None:
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--vocoder", required=True, type=Path)
    p.add_argument("--split", default="val", help="split the WER is measured on (default val; never test)")
    p.add_argument("-n", type=positive_int, default=24, help="utterances per voice (default 24)")


@command("speechlm", "choose-voice", progress=True, arguments=add_choose_voice_arguments,
         help="set the voice a voice-conditioned vocoder renders held-out speakers in: the train voice "
              "with the lowest validation WER",
         example="--tokens runs/tokens --vocoder runs/vocoder")
def cmd_choose_voice(args) -> None:
    from speechvision.avlm.train_vocoder import choose_voice

    print(json.dumps(choose_voice(args.tokens, args.vocoder, split=args.split, limit=args.n,
                                  progress=shows_progress(args))))


def add_train_speech_lm_arguments(p) -> None:
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=positive_int, default=1500)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--layers", type=positive_int, default=4)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--backbone", type=Path, default=None,
                   help="local Hugging Face causal-LM folder: LoRA (peft) on it instead of training from scratch")
    p.add_argument("--eval-every", type=positive_int, default=250,
                   help="steps between validation perplexity checks and checkpoints (the best is kept as best.pt)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


@command("speechlm", "train", progress=True, arguments=add_train_speech_lm_arguments,
         writes=Writes("folder", "start a new run where --out holds files", resume=True),
         help="train the speech LM on the encoded train split",
         example="--tokens runs/tokens --out runs/speechlm")
def cmd_train_speech_lm(args) -> None:
    from speechvision.avlm.lm import speech_lm_config
    from speechvision.avlm.train_lm import train_speech_lm

    cfg = speech_lm_config(hidden_size=args.hidden, num_layers=args.layers, backbone=args.backbone)
    out = train_speech_lm(args.tokens, args.out, cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          resume=args.resume, eval_every=args.eval_every, progress=shows_progress(args))
    print(f"wrote {out}")


def add_continue_arguments(p) -> None:
    p.add_argument("--lm", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path, help="tokenizer folder")
    p.add_argument("--vocoder", required=True, type=Path)
    p.add_argument("--prompt", required=True, type=Path, help="audio file to continue")
    p.add_argument("--out", required=True, type=Path, help="output wav (prompt resynthesised + continuation)")
    p.add_argument("--max-tokens", type=positive_int, default=300)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--top-p", type=probability, default=0.95)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--same-utterance", action="store_true",
                   help="continue the prompt utterance itself instead of answering it with the next turn")


@command("speechlm", "continue", arguments=add_continue_arguments, writes=Writes("file", suffix=".wav"),
         help="continue a prompt wav in speech and write the wav",
         example="--lm runs/speechlm --tokens runs/tokens --vocoder runs/vocoder --prompt q.wav --out cont.wav")
def cmd_continue(args) -> None:
    from speechvision.avlm.infer import continue_speech

    info = continue_speech(args.lm, args.tokens, args.vocoder, args.prompt, args.out, max_new_tokens=args.max_tokens,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                           next_turn=not args.same_utterance)
    print(f"wrote {args.out}: prompt {info['prompt_s']:.2f} s + continuation {info['continuation_s']:.2f} s "
          f"({info['new_tokens']} tokens)")


def add_evaluate_speech_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--vocoder", required=True, type=Path)
    p.add_argument("--lm", type=Path, default=None)
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json and listening samples")
    p.add_argument("--limit", type=positive_int, default=None, help="test utterances used (default: all)")
    p.add_argument("--lm-only", action="store_true",
                   help="skip the resynthesis measures (WER, F0, DNSMOS, pitch control)")


@command("speechlm", "evaluate", progress=True, arguments=add_evaluate_speech_arguments, writes=Writes(),
         help="resynthesis (WER, F0 corr, DNSMOS), pitch control, LM perplexity and emotion of "
              "continuations on the test split")
def cmd_evaluate_speech(args) -> None:
    from speechvision.avlm.evaluate import evaluate_expressive

    print_json(evaluate_expressive(args.data, args.tokens, args.vocoder, args.lm, args.out, limit=args.limit,
                                   resynthesis=not args.lm_only, progress=shows_progress(args)))


# ---- avlm: training, comparison, recognition and spoken replies -------------------------------------------

declare("avlm", dest="avlm_command",
        help="audio-visual LM: face cues fused into the speech LM, emotion recognition")


def add_avlm_run_arguments(p) -> None:
    """The inputs, output and schedule of ``avlm train`` and ``avlm compare``."""
    p.add_argument("--av", required=True, type=Path, help="folder of `speechvision data av-emotion`")
    p.add_argument("--tokens", required=True, type=Path, help="folder of `speechvision speechlm tokenize`")
    p.add_argument("--lm", required=True, type=Path, help="speech LM folder (`speechvision speechlm train`)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--pretrain-steps", type=non_negative_int, default=150,
                   help="masked pre-training steps (default 150; 0 skips it)")
    p.add_argument("--finetune-steps", type=positive_int, default=250, help="emotion fine-tuning steps (default 250)")
    p.add_argument("--mask-ratio", type=float, default=0.3, choices=(0.3, 0.5, 0.7))
    p.add_argument("--batch-size", type=positive_int, default=16)


def schedule(args) -> dict:
    """The training schedule options shared by ``avlm train`` and ``avlm compare``, and whether they draw
    progress bars, as keyword arguments."""
    return {"pretrain_steps": args.pretrain_steps, "finetune_steps": args.finetune_steps,
            "mask_ratio": args.mask_ratio, "batch_size": args.batch_size, "progress": shows_progress(args)}


def add_avlm_train_arguments(p) -> None:
    from speechvision.avlm.model import FUSIONS, AVLMConfig, fusion_name
    from speechvision.avlm.visual import ENCODERS

    add_avlm_run_arguments(p)
    p.add_argument("--fusion", default=AVLMConfig.fusion, choices=FUSIONS, type=fusion_name)
    p.add_argument("--visual-encoder", default=AVLMConfig.visual_encoder, choices=ENCODERS,
                   help="fer: frozen pretrained facial-expression CNN features (needs facial-emotion-recognition)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--shuffle-faces", action="store_true", help="the control: every clip gets another clip's face")
    p.add_argument("--task", default="emotion", choices=("emotion", "dialogue"),
                   help="emotion: recognition head (avlm.pt); dialogue: emotion token + spoken reply (dialogue.pt)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="--task dialogue: fine-tuning steps between validation checks; dialogue.pt is the step "
                        "with the lowest validation reply loss (default 100)")


@command("avlm", "train", progress=True, arguments=add_avlm_train_arguments, writes=Writes(),
         help="masked pre-training + emotion fine-tuning of one configuration",
         example="--av data/av-emotion --tokens runs/tokens --lm runs/speechlm --fusion perceiver --out runs/avlm")
def cmd_avlm_train(args) -> None:
    from speechvision.avlm.model import AVLMConfig

    cfg = AVLMConfig(fusion=args.fusion, visual_encoder=args.visual_encoder)
    if args.eval_every is not None and args.task != "dialogue":
        usage_error("--eval-every: only --task dialogue checks validation during training")
    if args.task == "dialogue":
        from speechvision.avlm.dialogue import train_dialogue

        every = {} if args.eval_every is None else {"eval_every": args.eval_every}
        out = train_dialogue(args.av, args.tokens, args.lm, args.out, cfg, seed=args.seed, **every, **schedule(args))
        print(f"wrote {out / 'dialogue.pt'}")
        return
    from speechvision.avlm.train import train_avlm

    print_json(train_avlm(args.av, args.tokens, args.lm, args.out, cfg, seed=args.seed,
                          shuffle_faces=args.shuffle_faces, **schedule(args)))


def add_avlm_compare_arguments(p) -> None:
    from speechvision.avlm.model import FUSIONS, AVLMConfig, fusion_name
    from speechvision.avlm.visual import ENCODERS

    add_avlm_run_arguments(p)
    p.add_argument("--fusions", nargs="+", default=list(FUSIONS), type=fusion_name)
    p.add_argument("--encoders", nargs="+", default=[AVLMConfig.visual_encoder], choices=ENCODERS)
    p.add_argument("--seeds", nargs="+", type=seed, default=[0, 1, 2])


@command("avlm", "compare", progress=True, arguments=add_avlm_compare_arguments, writes=Writes("place", None),
         help="every fusion x visual encoder over seeds, plus the shuffled-face control")
def cmd_avlm_compare(args) -> None:
    from speechvision.avlm.train import compare_avlm, summary_table

    print(summary_table(compare_avlm(args.av, args.tokens, args.lm, args.out, fusions=args.fusions,
                                     encoders=args.encoders, seeds=args.seeds, **schedule(args))))


def add_recognize_arguments(p) -> None:
    p.add_argument("--model", required=True, type=Path, help="avlm.pt of `speechvision avlm train`")
    p.add_argument("--tokens", required=True, type=Path, help="the tokenizer folder the model was trained with")
    p.add_argument("--video", required=True, type=Path)
    p.add_argument("--audio", required=True, type=Path)


@command("avlm", "recognize", arguments=add_recognize_arguments, help="emotion of a speaker from a video and its audio")
def cmd_recognize(args) -> None:
    from speechvision.avlm.infer import recognize

    for emotion, p in recognize(args.model, args.tokens, args.video, args.audio).items():
        print(f"{emotion:8s} {p:.3f}")


def add_respond_arguments(p) -> None:
    from speechvision.avlm.data.spoken_emotion import EMOTIONS

    p.add_argument("--model", required=True, type=Path, help="dialogue.pt of `speechvision avlm train --task dialogue`")
    p.add_argument("--tokens", required=True, type=Path, help="the tokenizer folder the model was trained with")
    p.add_argument("--vocoder", required=True, type=Path, help="folder of `speechvision speechlm vocoder`")
    p.add_argument("--video", required=True, type=Path)
    p.add_argument("--audio", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="the reply wav (16 kHz)")
    p.add_argument("--emotion", choices=EMOTIONS, help="force the reply's emotion")
    p.add_argument("--voice", help="a speaker the tokenizer knows (its pitch level); default: their mean")
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--top-p", type=probability, default=0.95)
    p.add_argument("--max-tokens", type=positive_int, default=150)
    p.add_argument("--seed", type=seed, default=0)


@command("avlm", "respond", arguments=add_respond_arguments, writes=Writes("file", suffix=".wav"),
         help="a spoken reply in the emotion perceived from a face video and a question",
         example="--model runs/dialogue/dialogue.pt --tokens runs/tokens --vocoder runs/vocoder --video face.mp4 "
                 "--audio question.wav --out reply.wav")
def cmd_respond(args) -> None:
    from speechvision.avlm.infer import respond

    print_json(respond(args.model, args.tokens, args.vocoder, args.video, args.audio, args.out, emotion=args.emotion,
                       voice=args.voice, temperature=args.temperature, top_p=args.top_p,
                       max_tokens=args.max_tokens, seed=args.seed))


def add_avlm_demo_arguments(p) -> None:
    p.add_argument("--out", type=Path, default=Path("avlm-demo"), help="output folder (default avlm-demo)")
    p.add_argument("--stack", type=Path, default=None,
                   help="an AVLM stack folder (default: the one bundled in the package)")
    p.add_argument("--seed", type=seed, default=0)


@command("avlm", "demo", progress=True, arguments=add_avlm_demo_arguments, writes=Writes(names=("results.json",)),
         help="the bundled AVLM (trained on SYNTHETIC data) on its bundled face clips: emotion and a spoken reply")
def cmd_avlm_demo(args) -> None:
    from speechvision.avlm.demo import run_demo

    r = run_demo(args.out, root=args.stack, seed=args.seed, progress=shows_progress(args))
    print(f"AVLM demo, {r['label']}")
    for row in r["clips"]:
        probs = " ".join(f"{k} {v:.2f}" for k, v in row["probabilities"].items())
        print(f"{row['id']}: true {row['true_emotion']}, reply in {row['emotion']} ({probs}) -> {row['reply']}")
    print(f"wrote {args.out / 'results.json'}, {args.out / r['picture']} and {len(r['clips'])} replies "
          f"in {r['seconds']} s")


def add_evaluate_dialogue_arguments(p) -> None:
    p.add_argument("--model", required=True, type=Path, help="dialogue.pt of `speechvision avlm train --task dialogue`")
    p.add_argument("--av", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--vocoder", required=True, type=Path)
    p.add_argument("--speech", required=True, type=Path,
                   help="the spoken-emotion corpus (the judge trains on its real recordings)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force-emotion", action="store_true",
                   help="reply in the true emotion instead of the predicted one")
    p.add_argument("--limit", type=positive_int, help="the first N question clips of the split (default: all)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default): the reported numbers; val: for choosing a schedule or decoding setting")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="reply sampling temperature (default 0.8)")


@command("avlm", "evaluate-dialogue", progress=True, arguments=add_evaluate_dialogue_arguments, writes=Writes(),
         help="replies to every test (or val) question clip: judge emotion accuracy, WER, content words, DNSMOS")
def cmd_evaluate_dialogue(args) -> None:
    from speechvision.avlm.dialogue import evaluate_dialogue

    print_json(evaluate_dialogue(args.model, args.av, args.tokens, args.vocoder, args.speech, args.out,
                                 force_emotion=args.force_emotion, limit=args.limit, seed=args.seed,
                                 split=args.split, temperature=args.temperature, progress=shows_progress(args)))
