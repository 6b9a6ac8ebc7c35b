"""``speechvision export``: the deployable bundle (SEN speech encoder + EMA generator + config, fp16 weights only)."""

from __future__ import annotations

from pathlib import Path

from speechvision.core.checkpoint import save_checkpoint
from speechvision.s2igan.pipeline import S2IGANPipeline


def export_bundle(gan_run: str | Path, out: str | Path, *, fp16: bool = True,
                  sen_checkpoint: str | Path | None = None) -> Path:
    """Write the deployable bundle: SEN speech encoder + EMA generator + config (weights only)."""
    pipe = S2IGANPipeline.load(gan_run, sen_checkpoint=sen_checkpoint)

    def cast(sd):
        return {k: (v.half() if fp16 and v.is_floating_point() else v).cpu().contiguous() for k, v in sd.items()}

    save_checkpoint(out, "s2igan", {"config": pipe.config.to_dict(), "source": str(gan_run),
                                    "speech_encoder": cast(pipe.speech_encoder.state_dict()),
                                    "generator": cast(pipe.generator.state_dict())})
    return Path(out)
