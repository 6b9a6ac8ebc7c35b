"""The image encoder the relation supervisor (RS) sees through (S2IGAN Sec. 2.3).

The RS compares image embeddings from the SEN's frozen image encoder: Inception-v3 pool features (B, 2048)
-> the SEN's trained Linear head -> (B, D) unit-norm. The paper and the official code feed Inception 299 px
images, so a 64 px fake is upsampled to 299 px for a forward *and* a backward pass every step; on 2 CPU
cores that costs about 15x the rest of the spoken-fashion step (docs/performance.md).

Three levers of :class:`~speechvision.s2igan.config.GANConfig`, all off in the paper presets:

* ``rs_image_size_px``: the Inception input side for the RS (299: the paper; at least 75, Inception-v3's
  smallest input). Real anchors and fakes are encoded at the same side, so the RS compares like with like;
  the real anchors are then encoded here (at 299 px they are the SEN's cached features).
* ``rs_bf16``: the RS's Inception pass under bfloat16 autocast (fast only where the CPU has AMX or
  AVX-512 BF16, or on a GPU); embeddings come back as fp32.
* ``rs_every`` (in :class:`~speechvision.s2igan.losses.S2IGANLoss`): the RS phases every k-th step, the
  generator's RS term with its own weight there (not scaled by k).

At 299 px in fp32 (the paper) the fakes take exactly :meth:`InceptionFeatures.differentiable`'s path.
"""

from __future__ import annotations

import torch

from speechvision.core.inception import INCEPTION_SIZE_PX, InceptionFeatures

MIN_SIZE_PX = 75  # Inception-v3's smallest input: the stem and the grid reductions leave a 1x1 map


class RelationImageEncoder:
    """Frozen images -> (B, D) embeddings for the RS, at ``size_px`` (``bf16``: the Inception pass in bfloat16).

    Args:
        inception: the frozen Inception-v3 (:class:`~speechvision.core.inception.InceptionFeatures`).
        head: the SEN's image head, (B, 2048) pool features -> (B, D) unit-norm (frozen by the caller).
        size_px: Inception input side, 75..299.
        bf16: bfloat16 autocast for the Inception pass.

    Raises:
        ValueError: ``size_px`` outside 75..299.
    """

    def __init__(self, inception: InceptionFeatures, head: torch.nn.Module, size_px: int = INCEPTION_SIZE_PX,
                 bf16: bool = False):
        if not MIN_SIZE_PX <= size_px <= INCEPTION_SIZE_PX:
            raise ValueError(f"rs_image_size_px={size_px}: must be in {MIN_SIZE_PX}..{INCEPTION_SIZE_PX}")
        self.inception, self.head, self.size_px, self.bf16 = inception, head, size_px, bf16
        self.paper = size_px == INCEPTION_SIZE_PX and not bf16

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 255] -> (B, 2048) fp32 pool features at ``size_px``."""
        x = self.inception.preprocess(x, self.size_px)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.inception.pool_features(x).float()

    def fake(self, images: torch.Tensor) -> torch.Tensor:
        """Generated images (B, 3, S, S) in [-1, 1] -> (B, D), with gradients to the images."""
        return self.head(self._features((images + 1.0) * 127.5))

    @torch.no_grad()
    def real(self, images: torch.Tensor, *, chunk: int = 64, progress: bool = False) -> torch.Tensor:
        """uint8 (N, 3, S, S) -> (N, D) on the CPU, or with views (N, K, 3, S, S) -> (N, K, D)."""
        from tqdm import tqdm

        flat = images.flatten(0, 1) if images.dim() == 5 else images
        device = next(self.head.parameters()).device
        out = [self.head(self._features(flat[s:s + chunk].to(device).float())).cpu()
               for s in tqdm(range(0, len(flat), chunk), desc=f"RS embeddings at {self.size_px} px",
                             disable=not progress)]
        return torch.cat(out).reshape(*images.shape[:-3], -1)
