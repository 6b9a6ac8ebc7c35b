"""``speechvision pipeline``: the whole S2IGAN recipe in one resumable command.

    data -> image features -> SEN -> GAN -> attribute judges -> evaluation -> exported bundle

Run folder ``out``: ``data/`` (the spoken-fashion build, its log-mel and Inception caches under
``data/cache``), ``sen/``, ``gan/``, ``judges/`` (run folders of the stages' own commands), ``eval/``
(``metrics.json``, ``table.md``, ``grid.png``), ``bundle.pt`` (for ``generate --checkpoint``),
``pipeline.json`` (the options, the resolved config, each finished stage's wall time) and
``summary.md`` (stage times, the machine's measured matmul peak and the headline metrics).

Variants of one recipe (the ablation rows) can share a finished run's parts: ``data`` (a built dataset, with
its feature caches), ``sen`` (a finished SEN run) and ``judges`` (trained attribute judges); the stage of a
shared part only checks that it loads.

Resumable from any stage after a kill: a finished stage is recorded in ``pipeline.json`` (atomically)
and skipped; an unfinished one continues from its own checkpoint (the dataset builder skips what it
wrote, SEN and GAN ``--resume``, the feature caches are reused) or, for the short judge, evaluation
and export stages, runs again. Rerunning with other options on the same folder is refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speechvision.core.atomic import atomic_write_text
from speechvision.core.errors import SpeechvisionError
from speechvision.data.spoken_fashion import FASHION_MNIST_DIR
from speechvision.s2igan.config import Config, apply_overrides, config_from_dict, preset

STAGES = ("data", "features", "sen", "gan", "judges", "evaluate", "export")
HEARTBEAT_S = 30.0  # how often a running stage's seconds so far are saved


class PipelineError(SpeechvisionError, ValueError):
    """A run folder started with other options, or a stage's input missing."""


@dataclass
class PipelineOptions:
    """What ``speechvision pipeline`` trains.

    Attributes:
        preset, overrides: the S2IGAN config (``--preset``, ``--set section.key=value``).
        images: spoken-fashion images in train+val+test (None: the builder's 15,000).
        steps: GAN iterations (None: the preset's ``gan.iterations``).
        judge_epochs: epochs of the attribute judges (``train classifier``; 10 as docs/results.md).
        fashion_mnist: the Fashion-MNIST folder (Debian ``dataset-fashion-mnist``).
        workers: speech-synthesis processes (None: CPU count).
        seed: dataset seed.
        data: an existing dataset folder to train on instead of building ``out/data`` (the data stage
            then only checks that it loads).
        sen: a finished SEN run folder to use instead of training ``out/sen`` (GAN-only variants).
        judges: a trained attribute-judge folder to use instead of training ``out/judges``.
    """

    preset: str = "spoken-fashion"
    overrides: list[str] = field(default_factory=list)
    images: int | None = None
    steps: int | None = None
    judge_epochs: int = 10
    fashion_mnist: str = str(FASHION_MNIST_DIR)
    workers: int | None = None
    seed: int = 0
    data: str | None = None
    sen: str | None = None
    judges: str | None = None

    def config(self) -> Config:
        """The resolved config: preset, then ``--set`` overrides, then ``steps``."""
        cfg = apply_overrides(preset(self.preset), list(self.overrides))
        if self.steps is not None:
            cfg.gan.iterations = self.steps
        return cfg


class PipelineState:
    """``out/pipeline.json``: the options, the resolved config, each finished stage's seconds and, for a stage
    under way, the seconds it has run so far over all its attempts (saved every :data:`HEARTBEAT_S`, so a kill
    loses at most that much of a stage's time)."""

    def __init__(self, out: Path, options: PipelineOptions):
        self.path = out / "pipeline.json"
        saved = json.loads(self.path.read_text()) if self.path.is_file() else None
        defaults = json.loads(json.dumps(asdict(PipelineOptions())))  # options added later: their defaults
        if saved is not None and {**defaults, **saved["options"]} != json.loads(json.dumps(asdict(options))):
            raise PipelineError(f"{self.path}: this run folder was started with other options "
                                f"({saved['options']}); rerun with those or choose another --out")
        self.options = options
        self.config = config_from_dict(saved["config"]) if saved else options.config()
        self.seconds: dict[str, float] = saved["stage_seconds"] if saved else {}
        self.partial: dict[str, float] = saved.get("partial_seconds", {}) if saved else {}
        self.data = Path(options.data) if options.data else out / "data"
        self.sen = Path(options.sen) if options.sen else out / "sen"
        self.judges = Path(options.judges) if options.judges else out / "judges"
        self._lock = threading.Lock()
        self.save()

    def save(self) -> None:
        with self._lock:
            atomic_write_text(self.path, json.dumps({"options": asdict(self.options), "config": self.config.to_dict(),
                                                     "stage_seconds": self.seconds, "partial_seconds": self.partial},
                                                    indent=2))

    def finish(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(seconds, 1)
        self.partial.pop(stage, None)
        self.save()

    def run_stage(self, stage: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` (the stage), timing it on top of its earlier attempts' saved seconds."""
        before, t0, stop = self.partial.get(stage, 0.0), time.perf_counter(), threading.Event()

        def heartbeat():
            while not stop.wait(HEARTBEAT_S):
                self.partial[stage] = round(before + time.perf_counter() - t0, 1)
                self.save()

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            fn()
        finally:
            stop.set()
            beat.join()
        self.finish(stage, before + time.perf_counter() - t0)


def stage_data(out: Path, state: PipelineState, progress: bool) -> None:
    from speechvision.data.manifest import load_dataset
    from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

    o = state.options
    if o.data:
        load_dataset(state.data)
        return
    build = BuildConfig(seed=o.seed, workers=o.workers, **({"images": o.images} if o.images else {}))
    build_spoken_fashion(state.data, fashion_mnist=o.fashion_mnist, config=build, progress=progress)


def stage_features(out: Path, state: PipelineState, progress: bool) -> None:
    """The speech features of every caption and the Inception pool features of every image, cached in
    data/cache: the features the SEN reads, so a shared ``--sen`` over another front end (e.g. Whisper) gets its
    own and no log-mels that nothing would read."""
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.sen_data import SENInputs

    SENInputs.load(load_dataset(state.data), features_config(state), progress=progress)


def features_config(state: PipelineState) -> Config:
    """The run's config with the speech front end (``audio``, ``sen``) of the SEN the GAN will read."""
    if not state.options.sen:
        return state.config
    from speechvision.core.checkpoint import load_checkpoint

    cfg = config_from_dict(state.config.to_dict())
    sen_cfg = config_from_dict(load_checkpoint(state.sen, "sen")["config"])  # its config only: no model is built
    cfg.audio, cfg.sen = sen_cfg.audio, sen_cfg.sen
    return cfg


def stage_sen(out: Path, state: PipelineState, progress: bool) -> None:
    if state.options.sen:  # a shared SEN run: check that it loads
        from speechvision.s2igan.sen import load_sen

        load_sen(state.sen)
        return
    from speechvision.s2igan.train_sen import train_sen

    train_sen(state.data, state.sen, state.config, resume=(state.sen / "checkpoint.pt").is_file(), progress=progress)


def stage_gan(out: Path, state: PipelineState, progress: bool) -> None:
    from speechvision.s2igan.train_gan import train_gan

    resume = (out / "gan" / "checkpoint.pt").is_file()
    # a resumed GAN trains to this run's --steps, also when its checkpoint was copied in from a shorter run
    # (its own config would stop it at that run's length; the iterations are one of what --resume may change)
    steps = [f"gan.iterations={state.config.gan.iterations}"] if resume else []
    train_gan(state.data, state.sen, out / "gan", state.config, resume=resume, progress=progress, overrides=steps)


def stage_judges(out: Path, state: PipelineState, progress: bool) -> None:
    if state.options.judges:  # shared judges: check that they load
        from speechvision.s2igan.classifier import load_classifier

        load_classifier(state.judges)
        return
    from speechvision.s2igan.train_classifier import train_classifier

    train_classifier(state.data, state.judges, epochs=state.options.judge_epochs, progress=progress)


def stage_evaluate(out: Path, state: PipelineState, progress: bool) -> None:
    from speechvision.s2igan.evaluate import evaluate

    evaluate(out / "gan", state.data, out=out / "eval", classifier=state.judges, progress=progress)


def stage_export(out: Path, state: PipelineState, progress: bool) -> None:
    from speechvision.s2igan.export import export_bundle

    export_bundle(out / "gan", out / "bundle.pt")


STAGE_FUNCTIONS: dict[str, Callable[[Path, PipelineState, bool], None]] = {
    "data": stage_data, "features": stage_features, "sen": stage_sen, "gan": stage_gan,
    "judges": stage_judges, "evaluate": stage_evaluate, "export": stage_export}


def headline_metrics(metrics_json: Path) -> dict:
    """FID, IS, mAP (fraction) and the judges' garment / colour accuracy on the generated test images."""
    m = json.loads(metrics_json.read_text())["metrics"]
    sem = m.get("semantic", {}).get("all", {})
    return {"fid": m.get("fid", {}).get("value"), "is": m.get("is", {}).get("mean"),
            "map": m.get("map", {}).get("mAP"), "garment": sem.get("garment_accuracy"),
            "colour": sem.get("colour_accuracy")}


def summary_table(state: PipelineState, metrics: dict, peak_gflops: float) -> str:
    """Markdown: one row per stage with its wall time, the total, the matmul peak and the metrics."""
    rows = ["| stage | wall time (min) |", "|---|---|"]
    rows += [f"| {s} | {state.seconds[s] / 60:.1f} |" for s in STAGES if s in state.seconds]
    rows.append(f"| **total** | **{sum(state.seconds.values()) / 60:.1f}** |")
    rows += ["", f"Measured fp32 matmul peak of this machine: {peak_gflops:.0f} GFLOP/s.", "",
             "| FID | IS | mAP | garment | colour |", "|---|---|---|---|---|",
             "| " + " | ".join("-" if v is None else f"{v:.3f}" for v in metrics.values()) + " |"]
    return "\n".join(rows) + "\n"


def summary_markdown(out: str | Path) -> str:
    """The ``summary.md`` of a finished run in ``out``."""
    return (Path(out) / "summary.md").read_text()


def check_shared_parts(options: PipelineOptions) -> None:
    """The shared SEN run and judges (``options.sen``, ``options.judges``) load.

    Raises:
        CheckpointError: naming the folder and what is wrong with it.
    """
    if options.sen:
        from speechvision.s2igan.sen import load_sen

        load_sen(options.sen)
    if options.judges:
        from speechvision.s2igan.classifier import load_classifier

        load_classifier(options.judges)


def run_pipeline(out: str | Path, options: PipelineOptions = PipelineOptions(), *, progress: bool = True,
                 stop_after: str | None = None) -> dict:
    """Run (or resume) every stage into ``out``; returns ``{"stage_seconds", "metrics", "matmul_peak_gflops"}``
    and writes ``summary.md``. ``stop_after`` ends after that stage (as a kill would; for tests).

    Raises:
        PipelineError: ``out`` was started with other options; or any error of the stages' own commands
            (DatasetError, CheckpointError, ...), after which a rerun resumes.
    """
    from speechvision.core.hardware import matmul_peak_flops

    out = Path(out)
    if options.data is None and options.preset != "spoken-fashion":
        raise PipelineError(f"--preset {options.preset}: give --data, a dataset built with `speechvision data "
                            f"{options.preset}` (only spoken-fashion is built by the pipeline)")
    check_shared_parts(options)  # before any stage: a wrong --sen or --judges fails in seconds, not after hours
    options.config()  # a wrong --set fails here, before the run folder is made
    out.mkdir(parents=True, exist_ok=True)
    state = PipelineState(out, options)
    for stage in STAGES:
        if stage not in state.seconds:
            state.run_stage(stage, lambda s=stage: STAGE_FUNCTIONS[s](out, state, progress))
        if stage == stop_after:
            return {"stage_seconds": dict(state.seconds)}
    metrics = headline_metrics(out / "eval" / "metrics.json")
    peak = matmul_peak_flops("cpu") / 1e9
    atomic_write_text(out / "summary.md", summary_table(state, metrics, peak))
    return {"stage_seconds": dict(state.seconds), "metrics": metrics, "matmul_peak_gflops": round(peak, 1)}
