"""The S2IGAN commands: ``data spoken-fashion|cub|oxford|flickr8k``, ``synth``, ``voices``, ``features``,
``config``, ``generate``, ``say``, ``export``, ``retrieve``, ``serve`` and ``demo`` (``train`` is in
:mod:`speechvision.cli.s2igan_train`, ``evaluate`` in :mod:`speechvision.cli.s2igan_evaluate`).

Each command is declared on its handler (``@command``) after the function that adds its options; each
``cmd_*`` handler takes the parsed arguments, makes one library call and prints its result. The library is
imported inside the functions, so that building the parser imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechvision.cli.common import (
    BUILD_FORCE,
    Writes,
    add_config_options,
    command,
    declare,
    port,
    positive_float,
    positive_int,
    print_json,
    resolved_config,
    seed,
    shows_progress,
    usage_error,
)

# ---- data ---------------------------------------------------------------------------------------------


def print_image_dataset(out: Path) -> None:
    from speechvision.data.manifest import load_dataset

    ds = load_dataset(out)
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in ds.meta["splits"].items()) + " images")


def add_spoken_fashion_arguments(p) -> None:
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--fashion-mnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                   help="folder with the four Fashion-MNIST idx .gz files (Debian: dataset-fashion-mnist)")
    p.add_argument("--images", type=positive_int, default=15000, help="images in train+val+test (default 15000)")
    p.add_argument("--unseen-images", type=positive_int, default=None, help="test_unseen images (default images/15)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="synthesis processes (default: CPU count)")
    p.add_argument("--no-audio", action="store_true", help="captions only, no speech synthesis")
    p.add_argument("--grammar", choices=("v1", "v2"), default="v1",
                   help="caption grammar: v1 (24 templates) or v2 (+14 templates as people talk)")
    p.add_argument("--voices", choices=("default", "broad"), default="default",
                   help="train voices: the 8 default ones, or broad (+ the ASR-checked pool of assets/voice_pool.json)")
    p.add_argument("--captions-per-combo", type=positive_int, default=12,
                   help="distinct caption texts per garment-colour combination (default 12)")


@command("data", "spoken-fashion", progress=True, arguments=add_spoken_fashion_arguments,
         writes=Writes("place", BUILD_FORCE),
         help="the built-in dataset from Fashion-MNIST",
         example="--images 200 --out /tmp/sf")
def cmd_data_spoken_fashion(args) -> None:
    from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

    print_image_dataset(build_spoken_fashion(args.out, fashion_mnist=args.fashion_mnist, config=BuildConfig(
        images=args.images, unseen_images=args.unseen_images, seed=args.seed, synthesize=not args.no_audio,
        workers=args.workers, grammar=args.grammar, voices=args.voices,
        captions_per_combo=args.captions_per_combo), progress=shows_progress(args), force=args.force))


def add_robust_arguments(p) -> None:
    p.add_argument("--from", dest="source", required=True, type=Path, help="a built spoken-fashion dataset")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--images", type=positive_int, default=500, help="test images per split (default 500)")
    p.add_argument("--unseen-images", type=positive_int, default=500, help="test_unseen images (default 500)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="synthesis processes (default: CPU count)")


@command("data", "spoken-fashion-robust", progress=True, arguments=add_robust_arguments,
         writes=Writes("place", BUILD_FORCE),
         help="test-only splits: the held-out flite voices, held-out phrasings, degraded copies (issue 17)",
         example="--from /tmp/sf --out /tmp/sf-robust")
def cmd_data_spoken_fashion_robust(args) -> None:
    from speechvision.data.robust import RobustConfig, build_robust

    print_image_dataset(build_robust(args.source, args.out, RobustConfig(
        images=args.images, unseen_images=args.unseen_images, seed=args.seed, workers=args.workers),
        progress=shows_progress(args), force=args.force))


def add_speech_augment_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="a built dataset (its train speech is augmented)")
    p.add_argument("--copies", type=positive_int, default=3, help="augmented copies per train file (default 3)")
    p.add_argument("--seed", type=seed, default=0)


@command("data", "speech-augment", progress=True, arguments=add_speech_augment_arguments,
         help="augmented copies of the train speech (speed, pitch, rooms, noise, telephone; issue 17)",
         example="--data /tmp/sf --copies 3   (then train with --set data.speech_augment.enabled=true)")
def cmd_data_speech_augment(args) -> None:
    from speechvision.data.speech_augment import build_speech_augment

    print(f"wrote {build_speech_augment(args.data, args.copies, seed=args.seed, progress=shows_progress(args))}")


def add_reed_arguments(p) -> None:
    p.add_argument("--root", required=True, type=Path, help="the downloaded dataset folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--no-synthesis", action="store_true", help="do not synthesise captions that lack audio")
    p.add_argument("--workers", type=positive_int, default=None)


def cmd_data_reed(args) -> None:
    """``data cub`` and ``data oxford``: ``args.dataset`` is the one given."""
    from speechvision.data.external import build_reed

    print_image_dataset(build_reed(args.dataset, args.root, args.out, synthesize=not args.no_synthesis,
                                   workers=args.workers, progress=shows_progress(args), force=args.force))


for kind in ("cub", "oxford"):
    declare("data", kind, handler=cmd_data_reed, progress=True, arguments=add_reed_arguments,
            writes=Writes("place", BUILD_FORCE),
            help=f"{kind.upper()} with Reed et al. captions and S2IGAN audio",
            example=f"--root ~/data/{kind} --out data/{kind}")


def add_flickr8k_arguments(p) -> None:
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("data", "flickr8k", progress=True, arguments=add_flickr8k_arguments, writes=Writes("place", BUILD_FORCE),
         help="Flickr8k with the Flickr Audio Caption Corpus")
def cmd_data_flickr8k(args) -> None:
    from speechvision.data.external import build_flickr8k

    print_image_dataset(build_flickr8k(args.root, args.out, progress=shows_progress(args), force=args.force))


# ---- speech tools and config ----------------------------------------------------------------------------


def add_synth_arguments(p) -> None:
    p.add_argument("text")
    p.add_argument("--voice", default="piper-joe", help="voice id (see `speechvision voices`)")
    p.add_argument("--out", required=True, type=Path, help="output WAV")


@command("synth", arguments=add_synth_arguments, writes=Writes("file", suffix=".wav"),
         help="speak a text with an offline voice",
         example='"a blue bag" --voice espeak-m3 --out bag.wav')
def cmd_synth(args) -> None:
    from speechvision.core.tts import speak_to_file

    print(f"wrote {args.out} ({speak_to_file(args.text, args.voice, args.out):.2f} s)")


@command("voices", help="list the built-in voices")
def cmd_voices(args) -> None:
    from speechvision.core.tts import ALL_VOICES, HELDOUT_ENGINES, HELDOUT_VOICES

    held = {v.id for v in HELDOUT_VOICES}
    for v in ALL_VOICES.values():
        note = ("  (held-out engine: test sets only, never training or model selection)" if v.engine in HELDOUT_ENGINES
                else "  (held out: test only)" if v.id in held else "")
        print(f"{v.id:16s} {v.engine:7s} {v.name:18s} {json.dumps(v.params)}{note}")


def add_features_arguments(p) -> None:
    p.add_argument("audio", nargs="+", type=Path)
    p.add_argument("--max-duration-s", type=positive_float, default=30.0)


@command("features", arguments=add_features_arguments, help="print the log-mel shape of audio files")
def cmd_features(args) -> None:
    from speechvision.core.audio import AudioChecks, file_log_mel

    for path in args.audio:
        feats = file_log_mel(path, checks=AudioChecks(max_duration_s=args.max_duration_s))
        print(f"{path}: log-mel (T, F) = {tuple(feats.shape)}")


@command("config", arguments=add_config_options, help="print a resolved config as JSON")
def cmd_config(args) -> None:
    print_json(resolved_config(args).to_dict())


# ---- generate, say, export, retrieve --------------------------------------------------------------------


def add_generate_arguments(p) -> None:
    p.add_argument("--speech", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first image; image i uses seed + i")
    p.add_argument("--n-per-speech", type=positive_int, default=1)
    p.add_argument("--all-stages", action="store_true", help="also write the lower-resolution stages")
    p.add_argument("--max-duration-s", type=positive_float, default=30.0, help="longest input in seconds")
    add_cleanup_option(p)


def add_cleanup_option(p) -> None:
    p.add_argument("--no-cleanup", action="store_true",
                   help="feed the audio as it is (default: high-pass against hum, trim leading and trailing "
                        "non-speech with silero-vad, normalise loudness)")


def cleanup_of(args):
    from speechvision.core.cleanup import NO_CLEANUP, Cleanup

    return NO_CLEANUP if args.no_cleanup else Cleanup()


@command("generate", arguments=add_generate_arguments,
         writes=Writes("place", "replace images of the same names in --out"),
         help="the main job: spoken descriptions in, images out",
         example="--speech a.wav b.wav --out images/ --seed 7")
def cmd_generate(args) -> None:
    from speechvision.core.audio import AudioChecks
    from speechvision.s2igan.export import speech_to_pngs

    paths, size_px = speech_to_pngs(args.checkpoint, args.speech, args.out, seed=args.seed,
                                    n_per_speech=args.n_per_speech, all_stages=args.all_stages,
                                    checks=AudioChecks(max_duration_s=args.max_duration_s), overwrite=args.force,
                                    cleanup=cleanup_of(args))
    print(f"wrote {len(paths)} images of {size_px}x{size_px} px to {args.out}")


def add_say_arguments(p) -> None:
    p.add_argument("text")
    p.add_argument("--out", required=True, type=Path, help="output PNG")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--seed", type=seed, default=0)
    add_cleanup_option(p)


@command("say", arguments=add_say_arguments, writes=Writes("file", suffix=".png"),
         help="speak a text with the default Piper voice, then generate",
         example='"a green sneaker" --out sneaker.png')
def cmd_say(args) -> None:
    from speechvision.s2igan.export import text_to_png

    out = text_to_png(args.text, args.out, checkpoint=args.checkpoint, seed=args.seed, cleanup=cleanup_of(args))
    print(f"wrote {out}")


def add_export_arguments(p) -> None:
    p.add_argument("--gan", required=True, type=Path, help="GAN run folder")
    p.add_argument("--out", required=True, type=Path, help="the bundle file to write")
    p.add_argument("--sen", type=Path, default=None, help="SEN checkpoint, when the GAN run names one not here")


@command("export", arguments=add_export_arguments, writes=Writes("file", suffix=".pt"),
         help="write a deployable bundle (speech encoder + EMA generator, fp16)")
def cmd_export(args) -> None:
    from speechvision.s2igan.export import export_bundle

    out = export_bundle(args.gan, args.out, sen_checkpoint=args.sen)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def add_retrieve_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="a SEN run folder or checkpoint file")
    p.add_argument("--speech", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("-k", type=positive_int, default=5, help="images to list (default 5)")


@command("retrieve", arguments=add_retrieve_arguments, help="nearest images for a spoken query (SEN retrieval)",
         example="--checkpoint runs/sen --speech q.wav --data /tmp/sf -k 5")
def cmd_retrieve(args) -> None:
    from speechvision.s2igan.retrieval import retrieve

    for rank, (score, rec) in enumerate(retrieve(args.checkpoint, args.speech, args.data, split=args.split,
                                                 k=args.k), 1):
        print(f"{rank}. {score:.3f}  {rec.class_name:24s} {rec.image}")


# ---- serve, demo ----------------------------------------------------------------------------------------


def add_serve_arguments(p) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=port, default=7860)
    p.add_argument("--data", type=Path, default=None, help="dataset folder for the top-5 SEN retrieval")
    p.add_argument("--sen", type=Path, default=None, help="SEN run used for retrieval (with --data)")
    p.add_argument("--concurrency", type=positive_int, default=2, help="requests processed at once (the rest queue)")
    p.add_argument("--avlm-stack", type=Path, default=None,
                   help="AVLM stack folder for the emotion tab (default: the bundled one, when the install has it)")


@command("serve", arguments=add_serve_arguments,
         help="a web page: speak (or upload, or type) a description, see the image; and a face video's emotion "
              "and spoken reply (AVLM tab)",
         example="--port 7860   (then open http://127.0.0.1:7860)")
def cmd_serve(args) -> None:
    from speechvision.web import ServeConfig, serve

    if (args.data is None) != (args.sen is None):
        usage_error("serve: the top-5 retrieval needs --data DIR and --sen RUN together")
    serve(args.checkpoint, config=ServeConfig(host=args.host, port=args.port, concurrency=args.concurrency),
          data=args.data, sen_checkpoint=args.sen, avlm_stack=args.avlm_stack)


def add_demo_arguments(p) -> None:
    p.add_argument("--out", type=Path, default=Path("demo-output"),
                   help="folder for the grids and images (rewritten on each run: the same images every time)")


@command("demo", arguments=add_demo_arguments, writes=Writes("place", None),
         help="run the main job on the bundled examples")
def cmd_demo(args) -> None:
    from speechvision.demo import run_demo

    run_demo(args.out)
